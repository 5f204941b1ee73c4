//! Each kind's JSON, as every surface sends it (a snapshot per kind, field
//! order included), decoding what is sent back into the same event, and
//! decoding the shapes older releases stored.

use serde_json::{json, Value};

use super::*;
use crate::link::Reason;

/// One example of every kind, and the exact JSON text it must give (keys
/// in the order every surface sends them: sorted).
fn examples() -> Vec<(Event, &'static str)> {
    vec![
        (
            Event::State(StateChanged::new(
                State::Connected,
                Reason::Connected {
                    phone: Some("573001112233".into()),
                },
                0,
                None,
                Some("573001112233".into()),
            )),
            r#"{"detail":"WhatsApp connected as +573001112233","next_retry_in_ms":null,"phone_number":"573001112233","reason":{"code":"connected","phone":"573001112233"},"reconnect_attempt":0,"state":"connected"}"#,
        ),
        (
            Event::Qr(QrOffered {
                qr: "2@abc".into(),
                expires_in_ms: 60_000,
            }),
            r#"{"expires_in_ms":60000,"qr":"2@abc"}"#,
        ),
        (
            Event::PairCode(PairCodeOffered {
                pair_code: "ABCDEFGH".into(),
                expires_in_ms: 180_000,
            }),
            r#"{"expires_in_ms":180000,"pair_code":"ABCDEFGH"}"#,
        ),
        (
            Event::MessageStatus(MessageStatus {
                id: "msg_1".into(),
                status: "queued".into(),
                to: Some("573001112233".into()),
                error: None,
                held_reason: Some("reachout_timelock".into()),
                retry_at: Some("2026-12-01T14:00:00.000Z".into()),
            }),
            r#"{"error":null,"held_reason":"reachout_timelock","id":"msg_1","retry_at":"2026-12-01T14:00:00.000Z","status":"queued","to":"573001112233"}"#,
        ),
        (
            Event::MessageReceived(MessageReceived {
                wa_id: "3EB0".into(),
                from: "573001112233".into(),
                from_lid: None,
                text: "Sí, confirmo".into(),
                received_at: Some("2026-12-01T14:00:00.123Z".into()),
                received_ms: 1_796_133_600_123,
                in_reply_to: Some("msg_1".into()),
                last_outbound_id: None,
                quoted_wa_id: Some("3EB1".into()),
            }),
            r#"{"from":"573001112233","from_lid":null,"in_reply_to":"msg_1","last_outbound_id":null,"quoted_wa_id":"3EB1","received_at":"2026-12-01T14:00:00.123Z","received_ms":1796133600123,"text":"Sí, confirmo","wa_id":"3EB0"}"#,
        ),
        (
            Event::MessageReaction(MessageReaction {
                wa_id: "3EB2".into(),
                from: "573001112233".into(),
                from_lid: Some("12345@lid".into()),
                emoji: "👍".into(),
                message_id: "msg_1".into(),
                received_at: Some("2026-12-01T14:00:00.123Z".into()),
                received_ms: 1_796_133_600_123,
            }),
            r#"{"emoji":"👍","from":"573001112233","from_lid":"12345@lid","message_id":"msg_1","received_at":"2026-12-01T14:00:00.123Z","received_ms":1796133600123,"wa_id":"3EB2"}"#,
        ),
        (
            Event::SendLimited(SendLimited {
                reason: "reachout_timelock".into(),
                active: true,
                until: Some("2026-12-02T14:00:00.000Z".into()),
                code: Some(463),
                message_id: Some("msg_1".into()),
                ..Default::default()
            }),
            r#"{"active":true,"capping_status":null,"code":463,"cycle_end":null,"enforcement_type":null,"held":null,"message_id":"msg_1","reason":"reachout_timelock","total":null,"until":"2026-12-02T14:00:00.000Z","used":null}"#,
        ),
        (
            Event::DecryptFailure(DecryptFailure {
                from: "573001112233".into(),
                count: 2,
            }),
            r#"{"count":2,"from":"573001112233"}"#,
        ),
    ]
}

#[test]
fn every_kind_has_a_snapshot_of_its_json() {
    let examples = examples();
    for k in Kind::ALL {
        assert!(
            examples.iter().any(|(e, _)| e.kind() == k),
            "no example of {}",
            k.as_str()
        );
    }
    for (event, want) in examples {
        assert_eq!(event.data().to_string(), want, "{}", event.kind().as_str());
    }
}

#[test]
fn what_is_sent_decodes_back_into_the_same_event() {
    for (event, _) in examples() {
        let back = Event::decode(event.kind().as_str(), &event.data());
        assert_eq!(back.as_ref(), Some(&event));
        assert_eq!(wire(event.kind().as_str(), &event.data()), event.data());
    }
}

#[test]
fn kinds_are_one_closed_list() {
    for k in Kind::ALL {
        assert_eq!(Kind::parse(k.as_str()), Some(k));
    }
    assert_eq!(
        Kind::parse("status"),
        None,
        "the stream's status is not an event kind"
    );
    assert_eq!(Event::decode("nonsense", &json!({})), None);
}

#[test]
fn events_stored_by_older_releases_decode_with_todays_fields() {
    // A state event before `detail` was recorded: it gains it from its reason.
    let old = json!({"state": "reconnecting", "reason": {"code": "connected", "phone": null},
                     "reconnect_attempt": 1, "next_retry_in_ms": 2000, "phone_number": null});
    let Some(Event::State(s)) = Event::decode("state", &old) else {
        panic!("does not decode");
    };
    assert_eq!(s.detail, "WhatsApp connected");
    // Before reasons: the sentence it was stored with is kept.
    let older = json!({"state": "connected", "detail": "WhatsApp connected as +573001112233"});
    let Some(Event::State(s)) = Event::decode("state", &older) else {
        panic!("does not decode");
    };
    assert_eq!(
        (s.reason, s.detail.as_str()),
        (None, "WhatsApp connected as +573001112233")
    );
    // A received message before `received_at`: made from `received_ms`.
    let v = wire(
        "message.received",
        &json!({"wa_id": "w", "from": "5730", "from_lid": null, "text": "hola",
                "received_ms": 1_796_133_600_123_i64, "in_reply_to": null,
                "last_outbound_id": null, "quoted_wa_id": null}),
    );
    assert_eq!(v["received_at"], "2026-12-01T14:00:00.123Z");
    // A message.status of the old shapes: the fields it lacked are null.
    let v = wire(
        "message.status",
        &json!({"id": "msg_1", "status": "sent", "error": null}),
    );
    assert_eq!(v["to"], Value::Null);
    assert_eq!(v["status"], "sent");
    // Data that is not of its kind is shown as stored.
    let odd = json!({"unexpected": true});
    assert_eq!(wire("qr", &odd), odd);
}

#[test]
fn the_docs_event_table_lists_every_kind_with_its_fields() {
    let doc = include_str!("../../../../docs/api.md");
    let start = doc
        .find("| event | data |")
        .expect("docs/api.md has the event table");
    let rows: Vec<(&str, &str)> = doc[start..]
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').collect();
            Some((cells.get(1)?.trim().trim_matches('`'), *cells.get(2)?))
        })
        .filter(|(k, _)| !matches!(*k, "status" | "lagged"))
        .collect();
    let listed: Vec<&str> = rows.iter().map(|(k, _)| *k).collect();
    let kinds: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
    assert_eq!(
        listed, kinds,
        "the table lists the kinds of Kind::ALL, in order"
    );
    for (event, _) in examples() {
        let kind = event.kind().as_str();
        let row = rows.iter().find(|(k, _)| *k == kind).map_or("", |r| r.1);
        let data = event.data();
        for field in data.as_object().into_iter().flat_map(|o| o.keys()) {
            assert!(
                row.contains(&format!("`{field}`")),
                "{kind}: `{field}` missing from docs/api.md"
            );
        }
    }
}
