//! When a send may leave: `send_at` and `send_before` as a caller gives them
//! (RFC 3339 with an offset, or Unix milliseconds), checked and turned into
//! milliseconds. A `send_at` in the past means "now"; one more than a year
//! ahead is refused (almost always a unit mistake: seconds read as
//! milliseconds, or the wrong year); `send_before` must come after the moment
//! the message may leave.

use super::{AppError, ErrorCode};
use crate::outbox::Timing;

/// Farthest a `send_at` may lie ahead.
pub const MAX_AHEAD_MS: i64 = 365 * 24 * 3600 * 1000;
/// 9999-12-31T23:59:59Z: no later time is read.
const LAST_MS: i64 = 253_402_300_799_000;

/// A moment as a surface received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum When {
    /// RFC 3339 text.
    Text(String),
    /// Unix milliseconds.
    UnixMs(i64),
    /// Anything else the surface found (a fraction, a boolean …): refused.
    Unreadable,
}

const FORMAT: &str = "an RFC 3339 time with its offset (e.g. \"2026-12-01T09:00:00-05:00\") or Unix milliseconds (e.g. 1796130000000)";

/// A moment as Unix milliseconds; a refusal names `field` and carries `code`.
pub fn read(w: &When, field: &str, code: ErrorCode) -> Result<i64, AppError> {
    let bad = |why: String| AppError::new(code, why);
    match w {
        When::UnixMs(ms) if (0..=LAST_MS).contains(ms) => Ok(*ms),
        When::UnixMs(_) => Err(bad(format!(
            "{field} is out of range; it must be {FORMAT}"
        ))),
        When::Text(t) => chrono::DateTime::parse_from_rfc3339(t.trim())
            .map(|d| d.timestamp_millis())
            .map_err(|_| {
                let hint = if chrono::NaiveDateTime::parse_from_str(t.trim(), "%Y-%m-%dT%H:%M:%S%.f").is_ok()
                    || chrono::NaiveDateTime::parse_from_str(t.trim(), "%Y-%m-%d %H:%M:%S%.f").is_ok()
                {
                    " (it has no offset: say which time zone, e.g. add -05:00 for Bogotá or Z for UTC)"
                } else {
                    ""
                };
                bad(format!("{field} must be {FORMAT}{hint}"))
            })
            .and_then(|ms| {
                if (0..=LAST_MS).contains(&ms) {
                    Ok(ms)
                } else {
                    Err(bad(format!("{field} is out of range")))
                }
            }),
        When::Unreadable => Err(bad(format!("{field} must be {FORMAT}"))),
    }
}

/// The timing of a new send.
pub fn for_send(
    send_at: Option<&When>,
    send_before: Option<&When>,
    now_ms: i64,
) -> Result<Timing, AppError> {
    let at = send_at
        .map(|w| read(w, "send_at", ErrorCode::InvalidSendAt))
        .transpose()?;
    if let Some(at) = at {
        if at > now_ms + MAX_AHEAD_MS {
            return Err(AppError::new(
                ErrorCode::InvalidSendAt,
                "send_at is more than a year ahead; check the date (and that it is in milliseconds, not seconds)",
            ));
        }
    }
    let before = send_before
        .map(|w| read(w, "send_before", ErrorCode::InvalidSendBefore))
        .transpose()?;
    check_before(at, before, now_ms)?;
    Ok(Timing {
        send_at_ms: at,
        send_before_ms: before,
    })
}

/// A deadline must come after the moment the message may leave.
pub fn check_before(at: Option<i64>, before: Option<i64>, now_ms: i64) -> Result<(), AppError> {
    let Some(before) = before else {
        return Ok(());
    };
    let leaves = at.unwrap_or(now_ms).max(now_ms);
    if before <= now_ms {
        return Err(AppError::new(
            ErrorCode::InvalidSendBefore,
            "send_before has already passed; the message could never be sent",
        ));
    }
    if before <= leaves {
        return Err(AppError::new(
            ErrorCode::InvalidSendBefore,
            "send_before must be later than send_at",
        ));
    }
    Ok(())
}

/// The new timing of a scheduled message: what the caller gave over what it had.
pub fn for_reschedule(
    send_at: Option<&When>,
    send_before: Option<&When>,
    had: Timing,
    now_ms: i64,
) -> Result<Timing, AppError> {
    if send_at.is_none() && send_before.is_none() {
        return Err(AppError::new(
            ErrorCode::InvalidSendAt,
            "nothing to change: give send_at, send_before or both",
        ));
    }
    let asked = for_send(send_at, None, now_ms)?;
    let at = asked.send_at_ms.or(had.send_at_ms);
    let before = match send_before {
        Some(w) => Some(read(w, "send_before", ErrorCode::InvalidSendBefore)?),
        None => had.send_before_ms,
    };
    check_before(at, before, now_ms)?;
    Ok(Timing {
        send_at_ms: at,
        send_before_ms: before,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000_000;

    fn text(s: &str) -> When {
        When::Text(s.into())
    }

    #[test]
    fn rfc3339_with_an_offset_or_unix_ms() {
        let t = for_send(Some(&text("2027-01-15T09:00:00-05:00")), None, NOW).unwrap();
        let utc = chrono::DateTime::parse_from_rfc3339("2027-01-15T14:00:00Z").unwrap();
        assert_eq!(
            t.send_at_ms,
            Some(utc.timestamp_millis()),
            "09:00 at -05:00 is 14:00 UTC"
        );
        let t = for_send(Some(&When::UnixMs(NOW + 5_000)), None, NOW).unwrap();
        assert_eq!(t.send_at_ms, Some(NOW + 5_000));
        // Z is an offset.
        assert!(for_send(Some(&text("2027-01-15T14:00:00Z")), None, NOW).is_ok());
    }

    #[test]
    fn refusals_name_the_field_and_the_fix() {
        let no_offset = for_send(Some(&text("2027-01-15T09:00:00")), None, NOW).unwrap_err();
        assert_eq!(no_offset.code, ErrorCode::InvalidSendAt);
        assert!(
            no_offset.message.contains("no offset"),
            "{}",
            no_offset.message
        );
        for bad in [text("mañana"), text(""), When::UnixMs(-1), When::Unreadable] {
            assert_eq!(
                for_send(Some(&bad), None, NOW).unwrap_err().code,
                ErrorCode::InvalidSendAt,
                "{bad:?}"
            );
        }
        let far = for_send(Some(&When::UnixMs(NOW + MAX_AHEAD_MS + 1)), None, NOW).unwrap_err();
        assert!(far.message.contains("more than a year"), "{}", far.message);
        // Seconds instead of milliseconds read as 1970: "now", not refused —
        // but a deadline then makes no sense.
        let early = for_send(
            Some(&When::UnixMs(NOW + 60_000)),
            Some(&When::UnixMs(NOW + 30_000)),
            NOW,
        )
        .unwrap_err();
        assert_eq!(early.code, ErrorCode::InvalidSendBefore);
        let passed = for_send(None, Some(&When::UnixMs(NOW - 1)), NOW).unwrap_err();
        assert!(
            passed.message.contains("already passed"),
            "{}",
            passed.message
        );
        assert_eq!(
            for_send(None, Some(&text("x")), NOW).unwrap_err().code,
            ErrorCode::InvalidSendBefore
        );
    }

    #[test]
    fn the_past_means_now() {
        let t = for_send(
            Some(&When::UnixMs(NOW - 3_600_000)),
            Some(&When::UnixMs(NOW + 1)),
            NOW,
        )
        .unwrap();
        assert_eq!(t.send_at_ms, Some(NOW - 3_600_000));
        assert_eq!(t.send_before_ms, Some(NOW + 1));
    }

    #[test]
    fn a_reschedule_keeps_what_it_does_not_change() {
        let had = Timing {
            send_at_ms: Some(NOW + 60_000),
            send_before_ms: Some(NOW + 120_000),
        };
        let t = for_reschedule(Some(&When::UnixMs(NOW + 90_000)), None, had, NOW).unwrap();
        assert_eq!(t.send_at_ms, Some(NOW + 90_000));
        assert_eq!(t.send_before_ms, Some(NOW + 120_000));
        // Past the kept deadline: refused.
        assert_eq!(
            for_reschedule(Some(&When::UnixMs(NOW + 200_000)), None, had, NOW)
                .unwrap_err()
                .code,
            ErrorCode::InvalidSendBefore
        );
        assert_eq!(
            for_reschedule(None, None, had, NOW).unwrap_err().code,
            ErrorCode::InvalidSendAt
        );
    }
}
