//! An org's sending policy: read it (its own or the server's default) and
//! change it. A change names only the fields it changes; every value is
//! checked, and a refusal names the field and what it accepts.

use serde_json::{Map, Value};

use super::{App, AppError, ErrorCode};
use crate::auth::Caller;
use crate::outbox::pacing::{clock, Policy, QuietHours};

/// Longest gap between two sends.
pub const MAX_GAP_MS: i64 = 3_600_000;

fn bad(field: &str, why: impl std::fmt::Display) -> AppError {
    AppError::new(ErrorCode::InvalidPolicy, format!("{field}: {why}"))
}

fn int(v: &Value, field: &str, lo: i64, hi: i64) -> Result<i64, AppError> {
    v.as_i64()
        .filter(|n| (lo..=hi).contains(n))
        .ok_or_else(|| bad(field, format!("must be a whole number from {lo} to {hi}")))
}

fn cap(v: &Value, field: &str) -> Result<Option<i64>, AppError> {
    match v {
        Value::Null => Ok(None),
        _ => int(v, field, 1, 1_000_000).map(Some),
    }
}

/// `policy` with the fields of `change` applied and checked.
pub fn apply(mut policy: Policy, change: &Map<String, Value>) -> Result<Policy, AppError> {
    for (k, v) in change {
        match k.as_str() {
            "min_gap_ms" => policy.min_gap_ms = int(v, k, 0, MAX_GAP_MS)?,
            "max_gap_ms" => policy.max_gap_ms = int(v, k, 0, MAX_GAP_MS)?,
            "hourly_cap" => policy.hourly_cap = cap(v, k)?,
            "daily_cap" => policy.daily_cap = cap(v, k)?,
            "new_contacts_per_day" => policy.new_contacts_per_day = cap(v, k)?,
            "typing" => {
                policy.typing = v
                    .as_bool()
                    .ok_or_else(|| bad(k, "must be true or false"))?
            }
            "typing_ms_per_char" => policy.typing_ms_per_char = int(v, k, 0, 1_000)?,
            "typing_max_ms" => policy.typing_max_ms = int(v, k, 0, 60_000)?,
            "timezone" => {
                let name = v
                    .as_str()
                    .ok_or_else(|| bad(k, "must be an IANA time zone name, e.g. \"America/Bogota\""))?;
                if jiff::tz::TimeZone::get(name).is_err() {
                    return Err(bad(
                        k,
                        format!("unknown time zone '{name}'; use an IANA name, e.g. \"America/Bogota\""),
                    ));
                }
                policy.timezone = name.to_string();
            }
            "quiet_hours" => {
                policy.quiet_hours = match v {
                    Value::Null => None,
                    Value::Object(q) => {
                        let read = |f: &str| {
                            q.get(f)
                                .and_then(Value::as_str)
                                .filter(|t| clock(t).is_some())
                                .map(str::to_string)
                                .ok_or_else(|| {
                                    bad(k, format!("{f} must be a 24-hour time \"HH:MM\", e.g. \"21:00\""))
                                })
                        };
                        let (start, end) = (read("start")?, read("end")?);
                        if let Some(extra) = q.keys().find(|f| *f != "start" && *f != "end") {
                            return Err(bad(k, format!("unknown field '{extra}' (start, end)")));
                        }
                        if start == end {
                            return Err(bad(k, "start and end must differ (null turns quiet hours off)"));
                        }
                        Some(QuietHours { start, end })
                    }
                    _ => return Err(bad(k, "must be {\"start\": \"HH:MM\", \"end\": \"HH:MM\"} or null")),
                }
            }
            other => {
                return Err(bad(
                    other,
                    "unknown field (min_gap_ms, max_gap_ms, hourly_cap, daily_cap, new_contacts_per_day, quiet_hours, timezone, typing, typing_ms_per_char, typing_max_ms)",
                ))
            }
        }
    }
    if policy.min_gap_ms > policy.max_gap_ms {
        return Err(bad(
            "min_gap_ms",
            format!(
                "must not be more than max_gap_ms ({} > {})",
                policy.min_gap_ms, policy.max_gap_ms
            ),
        ));
    }
    if let Err((field, why)) = policy.pacing() {
        return Err(bad(field, why));
    }
    Ok(policy)
}

impl App {
    pub async fn sending_policy(&self, caller: &Caller, org: &str) -> Result<Policy, AppError> {
        let a = self.authorize(caller, org)?;
        Ok(self.outbox.policy(a.org()).await?)
    }

    /// Change some fields of the org's policy; the rest keep their values.
    pub async fn set_sending_policy(
        &self,
        caller: &Caller,
        org: &str,
        change: &Map<String, Value>,
    ) -> Result<Policy, AppError> {
        let a = self.authorize(caller, org)?;
        let current = self.outbox.policy(a.org()).await?;
        let next = apply(current, change)?;
        self.outbox.set_policy(a.org(), next.clone()).await?;
        tracing::info!(org = %a.row.id, "sending policy changed");
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn change(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn a_change_keeps_what_it_does_not_name() {
        let p = apply(
            Policy::conservative("UTC"),
            &change(json!({"min_gap_ms": 1000, "max_gap_ms": 2000, "timezone": "America/Bogota"})),
        )
        .unwrap();
        assert_eq!((p.min_gap_ms, p.max_gap_ms), (1000, 2000));
        assert_eq!(p.timezone, "America/Bogota");
        assert_eq!(p.hourly_cap, Some(60));
        let p = apply(p, &change(json!({"quiet_hours": null, "daily_cap": null}))).unwrap();
        assert_eq!((p.quiet_hours, p.daily_cap), (None, None));
    }

    #[test]
    fn refusals_name_the_field() {
        let base = Policy::conservative("UTC");
        for (c, field) in [
            (json!({"min_gap_ms": 70_000}), "min_gap_ms"),
            (json!({"max_gap_ms": 3_600_001}), "max_gap_ms"),
            (json!({"min_gap_ms": -1}), "min_gap_ms"),
            (json!({"hourly_cap": 0}), "hourly_cap"),
            (json!({"daily_cap": "many"}), "daily_cap"),
            (json!({"timezone": "Mars/Olympus"}), "timezone"),
            (json!({"timezone": 5}), "timezone"),
            (
                json!({"quiet_hours": {"start": "25:00", "end": "08:00"}}),
                "quiet_hours",
            ),
            (
                json!({"quiet_hours": {"start": "9:00", "end": "08:00"}}),
                "quiet_hours",
            ),
            (
                json!({"quiet_hours": {"start": "08:00", "end": "08:00"}}),
                "quiet_hours",
            ),
            (json!({"quiet_hours": "night"}), "quiet_hours"),
            (json!({"typing": "yes"}), "typing"),
            (json!({"speed": 3}), "speed"),
        ] {
            let e = apply(base.clone(), &change(c.clone())).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidPolicy, "{c}");
            assert!(
                e.message.starts_with(&format!("{field}:")),
                "{c}: {}",
                e.message
            );
        }
        let e = apply(
            base,
            &change(json!({"min_gap_ms": 60_000, "max_gap_ms": 1_000})),
        )
        .unwrap_err();
        assert!(e.message.contains("max_gap_ms"), "{}", e.message);
    }
}
