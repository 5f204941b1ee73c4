//! The one-file device store: devices kept apart, each kind of state read
//! back as written, the library's rules (newest token wins, merged secret
//! deadlines, no pre-key brought back), a device copied out and back in,
//! and a per-org `wa.db` written by the library's own store carried over.

use std::sync::Arc;

use bytes::Bytes;
use whatsapp_rust::store::SqliteStore;
use whatsapp_rust::wacore::store::traits::*;

use super::copy::{export, import, import_legacy};
use super::Devices;

fn open() -> (tempfile::TempDir, Devices) {
    let d = tempfile::tempdir().unwrap();
    let devices = Devices::open(&d.path().join("devices.db")).unwrap();
    (d, devices)
}

fn lid(l: &str, pn: &str, at: i64) -> LidPnMappingEntry {
    LidPnMappingEntry {
        lid: l.into(),
        phone_number: pn.into(),
        created_at: at,
        updated_at: at,
        learning_source: "usync".into(),
    }
}

#[tokio::test]
async fn devices_in_one_file_never_see_each_others_rows() {
    let (_d, devices) = open();
    let (a, b) = (devices.device(1), devices.device(2));
    a.put_session("573001@s.whatsapp.net", b"a-session")
        .await
        .unwrap();
    b.put_session("573001@s.whatsapp.net", b"b-session")
        .await
        .unwrap();
    a.put_identity("573001@s.whatsapp.net", [1; 32])
        .await
        .unwrap();
    assert_eq!(
        a.get_session("573001@s.whatsapp.net")
            .await
            .unwrap()
            .as_deref(),
        Some(&b"a-session"[..])
    );
    assert_eq!(
        b.get_session("573001@s.whatsapp.net")
            .await
            .unwrap()
            .as_deref(),
        Some(&b"b-session"[..])
    );
    assert!(b
        .load_identity("573001@s.whatsapp.net")
        .await
        .unwrap()
        .is_none());
    assert!(a.has_signal_state_for_user("573001").await.unwrap());
    assert!(!a.has_signal_state_for_user("57300").await.unwrap());
    devices.delete(1).await.unwrap();
    assert!(a
        .get_session("573001@s.whatsapp.net")
        .await
        .unwrap()
        .is_none());
    assert!(b.has_session("573001@s.whatsapp.net").await.unwrap());
}

#[tokio::test]
async fn a_device_round_trips_with_its_keys_and_login_properties() {
    let (_d, devices) = open();
    let dev = devices.device(7);
    assert!(!dev.exists().await.unwrap());
    assert_eq!(dev.create().await.unwrap(), 7);
    assert!(dev.exists().await.unwrap());
    let mut d = dev.load().await.unwrap().expect("created");
    d.pn = Some("573001112233@s.whatsapp.net".parse().unwrap());
    d.push_name = "Óptica Océano".into();
    d.login_counter = 3;
    dev.save(&d).await.unwrap();
    let back = dev.load().await.unwrap().unwrap();
    assert_eq!(back.pn, d.pn);
    assert_eq!(back.push_name, "Óptica Océano");
    assert_eq!(back.login_counter, 3);
    assert_eq!(back.registration_id, d.registration_id);
    assert_eq!(
        back.noise_key.public_key.public_key_bytes(),
        d.noise_key.public_key.public_key_bytes()
    );
    assert_eq!(back.signed_pre_key_signature, d.signed_pre_key_signature);
    // What is not stored is set as the library's own store sets it.
    assert_eq!(
        *back.device_props,
        whatsapp_rust::wacore::store::device::DEVICE_PROPS.clone()
    );
    // create() again does not replace a device.
    dev.create().await.unwrap();
    assert_eq!(dev.load().await.unwrap().unwrap().login_counter, 3);
}

#[tokio::test]
async fn pre_keys_count_up_and_a_removed_one_stays_removed() {
    let (_d, devices) = open();
    let dev = devices.device(1);
    assert_eq!(dev.get_max_prekey_id().await.unwrap(), 0);
    let keys: Vec<(u32, Bytes)> = (1..=5)
        .map(|i| (i, Bytes::from(vec![i as u8; 8])))
        .collect();
    dev.store_prekeys_batch(&keys, false).await.unwrap();
    assert_eq!(dev.get_max_prekey_id().await.unwrap(), 5);
    dev.remove_prekey(2).await.unwrap();
    dev.mark_prekeys_uploaded(&[1, 2, 3]).await.unwrap();
    assert!(dev.load_prekey(2).await.unwrap().is_none());
    let got = dev.load_prekeys_batch(&[1, 2, 3, 9]).await.unwrap();
    assert_eq!(got.iter().map(|(i, _)| *i).collect::<Vec<_>>(), vec![1, 3]);
    assert_eq!(got[1].1.as_ref(), &[3u8; 8]);
    dev.store_signed_prekey(4, b"spk4").await.unwrap();
    dev.store_signed_prekey(2, b"spk2").await.unwrap();
    assert_eq!(
        dev.load_all_signed_prekeys().await.unwrap(),
        vec![(2, b"spk2".to_vec()), (4, b"spk4".to_vec())]
    );
}

#[tokio::test]
async fn a_number_resolves_to_its_newest_lid() {
    let (_d, devices) = open();
    let dev = devices.device(1);
    dev.put_lid_mapping(&lid("111", "573001", 10))
        .await
        .unwrap();
    dev.put_lid_mappings(&[lid("222", "573001", 20), lid("333", "573002", 20)])
        .await
        .unwrap();
    assert_eq!(
        dev.get_pn_mapping("573001").await.unwrap().unwrap().lid,
        "222"
    );
    assert_eq!(
        dev.get_lid_mapping("111")
            .await
            .unwrap()
            .unwrap()
            .phone_number,
        "573001"
    );
    // Re-learning the first LID makes it the newest again.
    dev.put_lid_mapping(&lid("111", "573001", 30))
        .await
        .unwrap();
    assert_eq!(
        dev.get_pn_mapping("573001").await.unwrap().unwrap().lid,
        "111"
    );
    assert_eq!(dev.get_all_lid_mappings().await.unwrap().len(), 3);
    assert!(devices
        .device(2)
        .get_pn_mapping("573001")
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn tokens_keep_the_newest_and_expire_only_when_both_windows_passed() {
    let (_d, devices) = open();
    let dev = devices.device(1);
    dev.store_received_tc_token("a@s.whatsapp.net", b"new", 200)
        .await
        .unwrap();
    dev.store_received_tc_token("a@s.whatsapp.net", b"old", 100)
        .await
        .unwrap();
    let t = dev.get_tc_token("a@s.whatsapp.net").await.unwrap().unwrap();
    assert_eq!((t.token.as_slice(), t.token_timestamp), (&b"new"[..], 200));
    dev.touch_tc_token_sender_timestamp("a@s.whatsapp.net", 500)
        .await
        .unwrap();
    dev.touch_tc_token_sender_timestamp("a@s.whatsapp.net", 400)
        .await
        .unwrap();
    assert_eq!(
        dev.get_tc_token("a@s.whatsapp.net")
            .await
            .unwrap()
            .unwrap()
            .sender_timestamp,
        Some(500)
    );
    // A touch of an unknown contact makes a placeholder without a token.
    dev.touch_tc_token_sender_timestamp("b@s.whatsapp.net", 50)
        .await
        .unwrap();
    // Token stale (200 < 300) but sender live (500 >= 450): kept. b: both stale.
    assert_eq!(dev.delete_expired_tc_tokens(300, 450).await.unwrap(), 1);
    assert_eq!(
        dev.get_all_tc_token_jids().await.unwrap(),
        vec!["a@s.whatsapp.net".to_string()]
    );
}

#[tokio::test]
async fn message_secrets_merge_their_deadlines() {
    let (_d, devices) = open();
    let dev = devices.device(1);
    let e = |exp: i64, ts: i64, s: u8| MsgSecretEntry {
        chat: Arc::from("c@s.whatsapp.net"),
        sender: Arc::from("s@s.whatsapp.net"),
        msg_id: Arc::from("M1"),
        secret: [s; 32],
        expires_at: exp,
        message_ts: ts,
    };
    assert_eq!(dev.put_msg_secrets(vec![e(100, 5, 1)]).await.unwrap(), 1);
    dev.put_msg_secrets(vec![e(300, 3, 2)]).await.unwrap();
    let (secret, ts) = dev
        .get_msg_secret_with_ts("c@s.whatsapp.net", "s@s.whatsapp.net", "M1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((secret, ts), (vec![2; 32], 5));
    assert_eq!(dev.delete_expired_msg_secrets(299).await.unwrap(), 0);
    dev.put_msg_secrets(vec![e(0, 0, 3)]).await.unwrap(); // never expires now
    assert_eq!(dev.delete_expired_msg_secrets(10_000).await.unwrap(), 0);
    assert!(dev
        .get_msg_secret("c@s.whatsapp.net", "s@s.whatsapp.net", "M1")
        .await
        .unwrap()
        .is_some());
}

#[tokio::test]
async fn a_sent_message_is_taken_once() {
    let (_d, devices) = open();
    let dev = devices.device(1);
    dev.store_sent_message("c@s.whatsapp.net", "M1", b"payload")
        .await
        .unwrap();
    assert_eq!(
        dev.take_sent_message("c@s.whatsapp.net", "M1")
            .await
            .unwrap(),
        Some(b"payload".to_vec())
    );
    assert_eq!(
        dev.take_sent_message("c@s.whatsapp.net", "M1")
            .await
            .unwrap(),
        None
    );
    dev.store_pending_inbound("c", "s", "I1", b"msg")
        .await
        .unwrap();
    assert_eq!(
        dev.get_pending_inbound("c", "s", "I1").await.unwrap(),
        Some(b"msg".to_vec())
    );
    dev.delete_pending_inbound("c", "s", "I1").await.unwrap();
    assert_eq!(dev.get_pending_inbound("c", "s", "I1").await.unwrap(), None);
}

#[tokio::test]
async fn a_device_copied_aside_comes_back_whole_under_any_number() {
    let (d, devices) = open();
    let dev = devices.device(3);
    dev.create().await.unwrap();
    dev.put_session("x@s.whatsapp.net", b"sess").await.unwrap();
    dev.put_lid_mapping(&lid("111", "573001", 10))
        .await
        .unwrap();
    dev.set_sync_key(
        b"k1",
        AppStateSyncKey {
            key_data: vec![9; 32],
            fingerprint: vec![1],
            timestamp: 5,
        },
    )
    .await
    .unwrap();
    devices
        .device(4)
        .put_session("y@s.whatsapp.net", b"other")
        .await
        .unwrap();
    let aside = d.path().join("aside-3.db");
    let rows = export(&devices, 3, &aside).await.unwrap();
    assert_eq!(rows, 4, "device, session, LID, sync key");
    assert!(
        export(&devices, 3, &aside).await.is_err(),
        "never overwrites a copy"
    );
    devices.delete(3).await.unwrap();
    assert!(!dev.exists().await.unwrap());
    assert_eq!(import(&devices, &aside, 9).await.unwrap(), 4);
    let back = devices.device(9);
    assert!(back.exists().await.unwrap());
    assert_eq!(
        back.get_session("x@s.whatsapp.net")
            .await
            .unwrap()
            .as_deref(),
        Some(&b"sess"[..])
    );
    assert_eq!(
        back.get_latest_sync_key_id().await.unwrap(),
        Some(b"k1".to_vec())
    );
    assert!(back
        .get_session("y@s.whatsapp.net")
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn a_per_org_wa_db_of_the_library_is_carried_over() {
    let (d, devices) = open();
    let legacy = d.path().join("wa.db");
    {
        let old = SqliteStore::new(legacy.to_str().unwrap()).await.unwrap();
        old.create().await.unwrap();
        let mut dev = old.load().await.unwrap().unwrap();
        dev.pn = Some("573001112233@s.whatsapp.net".parse().unwrap());
        old.save(&dev).await.unwrap();
        old.put_identity("573009@s.whatsapp.net", [7; 32])
            .await
            .unwrap();
        old.put_session("573009@s.whatsapp.net", b"ratchet")
            .await
            .unwrap();
        old.store_prekey(11, b"pk11", true).await.unwrap();
        old.store_signed_prekey(1, b"spk").await.unwrap();
        old.put_lid_mapping(&lid("188", "573009", 10))
            .await
            .unwrap();
        old.set_sync_key(
            b"key-1",
            AppStateSyncKey {
                key_data: vec![3; 32],
                fingerprint: vec![],
                timestamp: 1,
            },
        )
        .await
        .unwrap();
        old.update_device_list(DeviceListRecord {
            user: "573009".into(),
            devices: vec![DeviceInfo::new(0, None)],
            timestamp: 5,
            phash: None,
            raw_id: None,
        })
        .await
        .unwrap();
    }
    let before = std::fs::read(&legacy).unwrap();
    let carried = import_legacy(&devices, &legacy, 12).await.unwrap();
    assert!(carried.linked);
    assert!(carried.rows >= 8, "{carried:?}");
    let dev = devices.device(12);
    let d12 = dev.load().await.unwrap().unwrap();
    assert_eq!(
        d12.pn.map(|j| j.user.to_string()).as_deref(),
        Some("573001112233")
    );
    assert_eq!(
        dev.load_identity("573009@s.whatsapp.net").await.unwrap(),
        Some([7; 32])
    );
    assert_eq!(
        dev.get_session("573009@s.whatsapp.net")
            .await
            .unwrap()
            .as_deref(),
        Some(&b"ratchet"[..])
    );
    assert_eq!(
        dev.load_prekey(11).await.unwrap().as_deref(),
        Some(&b"pk11"[..])
    );
    assert_eq!(
        dev.load_signed_prekey(1).await.unwrap(),
        Some(b"spk".to_vec())
    );
    assert_eq!(
        dev.get_pn_mapping("573009").await.unwrap().unwrap().lid,
        "188"
    );
    assert_eq!(
        dev.get_sync_key(b"key-1").await.unwrap().unwrap().key_data,
        vec![3; 32]
    );
    assert_eq!(
        dev.get_devices("573009")
            .await
            .unwrap()
            .unwrap()
            .devices
            .len(),
        1
    );
    // The original is read from a copy: it is as it was.
    assert!(
        std::fs::read(&legacy).unwrap() == before,
        "the original was changed"
    );
    // A store with no device carries nothing; no file at all is an error.
    let empty = d.path().join("empty.db");
    drop(SqliteStore::new(empty.to_str().unwrap()).await.unwrap());
    let none = import_legacy(&devices, &empty, 13).await.unwrap();
    assert!(!none.linked);
    assert!(!devices.device(13).exists().await.unwrap());
    let missing = import_legacy(&devices, &d.path().join("none.db"), 14).await;
    assert!(missing.is_err(), "{missing:?}");
}
