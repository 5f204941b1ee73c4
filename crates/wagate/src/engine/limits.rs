//! Reading the sending limits the server announces. WhatsApp pushes them as
//! `<notification type="mex"><update op_name="…">{json}</update>`, the JSON
//! a GraphQL result (`{"data": {<field>: {…}}}`); the library hands us the
//! op name and the JSON. Two matter to a sender:
//! - `NotificationUserReachoutTimelockUpdate`, field
//!   `xwa2_notify_account_reachout_timelock`: `is_active`,
//!   `time_enforcement_ends` (Unix seconds, as a string or a number),
//!   `enforcement_type`;
//! - `MessageCappingInfoNotification`, field
//!   `xwa2_notify_new_chat_messages_capping_info_update`: `used_quota`,
//!   `total_quota` (-1: no cap), `cycle_end_timestamp`, `capping_status`.
//!
//! An active timelock with no end is read as ending in 60 s, as Baileys
//! does; the dispatcher then backs off on further refusals. Ends come in
//! whole seconds while the server's own clock is finer: an end is read as
//! one second later, so nothing is tried in the last fraction of the limit.

use serde_json::Value;

use super::LimitNotice;

const REACHOUT_OP: &str = "NotificationUserReachoutTimelockUpdate";
const REACHOUT_FIELD: &str = "xwa2_notify_account_reachout_timelock";
const CAPPING_OP: &str = "MessageCappingInfoNotification";
const CAPPING_FIELD: &str = "xwa2_notify_new_chat_messages_capping_info_update";
/// An active timelock the server gave no end for lasts this long, for now.
const UNNAMED_END_MS: i64 = 60_000;

/// The notice in a mex notification, if it announces a sending limit.
pub fn parse(op_name: &str, payload: &Value, now_ms: i64) -> Option<LimitNotice> {
    let field = match op_name {
        REACHOUT_OP => REACHOUT_FIELD,
        CAPPING_OP => CAPPING_FIELD,
        _ => return None,
    };
    let body = payload
        .get("data")
        .and_then(|d| d.get(field))
        .or_else(|| payload.get(field))?;
    if op_name == REACHOUT_OP {
        let active = flag(body.get("is_active")).unwrap_or(false);
        let until_ms = active.then(|| {
            number(body.get("time_enforcement_ends"))
                .filter(|&s| s > 0)
                .map(end_ms)
                .unwrap_or(now_ms + UNNAMED_END_MS)
        });
        return Some(LimitNotice::Reachout {
            active,
            until_ms,
            kind: text(body.get("enforcement_type")),
        });
    }
    Some(LimitNotice::Capping {
        used: number(body.get("used_quota")),
        total: number(body.get("total_quota")),
        cycle_end_ms: number(body.get("cycle_end_timestamp"))
            .filter(|&s| s > 0)
            .map(end_ms),
        status: text(body.get("capping_status")),
    })
}

/// An end in whole Unix seconds as the first millisecond surely past it.
fn end_ms(secs: i64) -> i64 {
    secs.saturating_add(1).saturating_mul(1000)
}

fn flag(v: Option<&Value>) -> Option<bool> {
    match v? {
        Value::Bool(b) => Some(*b),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn number(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn text(v: Option<&Value>) -> Option<String> {
    v?.as_str().map(|s| s.chars().take(64).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_timelock_with_its_end_in_seconds() {
        let p = json!({"data": {REACHOUT_FIELD: {"is_active": true, "time_enforcement_ends": "1900000000", "enforcement_type": "DEFAULT"}}});
        assert_eq!(
            parse(REACHOUT_OP, &p, 5),
            Some(LimitNotice::Reachout {
                active: true,
                until_ms: Some(1_900_000_001_000),
                kind: Some("DEFAULT".into())
            })
        );
    }

    #[test]
    fn a_timelock_without_an_end_lasts_a_minute_and_a_lifted_one_none() {
        let p = json!({"data": {REACHOUT_FIELD: {"is_active": "true"}}});
        assert!(matches!(
            parse(REACHOUT_OP, &p, 1_000),
            Some(LimitNotice::Reachout {
                active: true,
                until_ms: Some(61_000),
                ..
            })
        ));
        let p =
            json!({"data": {REACHOUT_FIELD: {"is_active": false, "time_enforcement_ends": "0"}}});
        assert!(matches!(
            parse(REACHOUT_OP, &p, 1_000),
            Some(LimitNotice::Reachout {
                active: false,
                until_ms: None,
                ..
            })
        ));
    }

    #[test]
    fn capping_quota_and_cycle() {
        let p = json!({"data": {CAPPING_FIELD: {"used_quota": "5", "total_quota": 5, "cycle_end_timestamp": "1900000000", "capping_status": "CAPPED"}}});
        assert_eq!(
            parse(CAPPING_OP, &p, 0),
            Some(LimitNotice::Capping {
                used: Some(5),
                total: Some(5),
                cycle_end_ms: Some(1_900_000_001_000),
                status: Some("CAPPED".into())
            })
        );
    }

    #[test]
    fn other_operations_and_bad_shapes_are_ignored() {
        assert_eq!(parse("LidChangeNotification", &json!({}), 0), None);
        assert_eq!(parse(REACHOUT_OP, &json!({"data": null}), 0), None);
        assert_eq!(parse(CAPPING_OP, &json!([1, 2]), 0), None);
    }
}
