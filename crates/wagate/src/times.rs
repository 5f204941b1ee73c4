//! The one rule for times on the wire: RFC 3339 in UTC with milliseconds
//! (`2026-12-01T14:00:00.123Z`). Integers of milliseconds appear only where
//! a field's name says so (`_ms`: a duration, or a time kept for older
//! clients beside its RFC 3339 twin).

/// Milliseconds since the epoch as RFC 3339 (UTC, milliseconds).
pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}
