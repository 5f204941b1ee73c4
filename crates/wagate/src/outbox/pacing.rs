//! Human pacing for one number: when its next message may leave, given the
//! org's sending policy and the moments its recent messages were handed to
//! WhatsApp. A random gap after the previous send, at most `hourly_cap`
//! sends in any hour and `daily_cap` in any 24 hours, nothing in the quiet
//! hours of the org's time zone (a message due then waits for their end),
//! and "typing…" for a time that grows with the text. Pure: the dispatcher
//! feeds it times and sleeps until the answer.

use jiff::civil::Time;
use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

pub const HOUR_MS: i64 = 3_600_000;
pub const DAY_MS: i64 = 24 * HOUR_MS;

/// Quiet hours, as local wall-clock times; `start > end` spans midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quiet {
    pub start: Time,
    pub end: Time,
}

/// How one org's number sends (see the README for the defaults' reasons).
#[derive(Debug, Clone, PartialEq)]
pub struct Pacing {
    pub min_gap_ms: i64,
    pub max_gap_ms: i64,
    pub hourly_cap: usize,
    pub daily_cap: usize,
    /// First messages to new contacts in any 24 hours.
    pub new_contacts_per_day: usize,
    pub quiet: Option<Quiet>,
    pub tz: TimeZone,
    pub typing: bool,
    pub typing_ms_per_char: i64,
    pub typing_max_ms: i64,
}

impl Pacing {
    /// No pacing at all (tests and benchmarks that measure raw throughput).
    pub fn none() -> Pacing {
        Pacing {
            min_gap_ms: 0,
            max_gap_ms: 0,
            hourly_cap: usize::MAX,
            daily_cap: usize::MAX,
            new_contacts_per_day: usize::MAX,
            quiet: None,
            tz: TimeZone::UTC,
            typing: false,
            typing_ms_per_char: 0,
            typing_max_ms: 0,
        }
    }

    /// Sends with no gap, cap, quiet hours or typing.
    pub fn is_unpaced(&self) -> bool {
        self.max_gap_ms <= 0
            && self.hourly_cap == usize::MAX
            && self.daily_cap == usize::MAX
            && self.quiet.is_none()
            && !self.typing
    }

    /// How many of the newest hand-overs `next_slot` needs to see: the
    /// larger finite cap, or just the last one.
    pub fn history_needed(&self) -> i64 {
        [self.hourly_cap, self.daily_cap]
            .into_iter()
            .filter(|c| *c != usize::MAX)
            .max()
            .unwrap_or(1)
            .clamp(1, 1_000_000) as i64
    }

    /// The earliest moment at or after `now_ms` at which the next message
    /// may leave: `gap_ms` (drawn by the caller from min..=max) after
    /// `last_ms`, with room under both caps (`recent`: the hand-over times
    /// of the last 24 h, ascending), outside the quiet hours.
    pub fn next_slot(&self, now_ms: i64, last_ms: Option<i64>, recent: &[i64], gap_ms: i64) -> i64 {
        let mut t = match last_ms {
            Some(l) => now_ms.max(l.saturating_add(gap_ms)),
            None => now_ms,
        };
        // Each rule can only push the moment later; a few rounds settle it
        // (a quiet-hours end can land on a full hour, and so on).
        for _ in 0..16 {
            let before = t;
            t = t.max(room_at(recent, t, HOUR_MS, self.hourly_cap));
            t = t.max(room_at(recent, t, DAY_MS, self.daily_cap));
            t = self.after_quiet(t);
            if t == before {
                break;
            }
        }
        t
    }

    /// `t`, or the end of the quiet hours `t` falls in.
    pub fn after_quiet(&self, t: i64) -> i64 {
        let Some(q) = self.quiet else {
            return t;
        };
        let Ok(ts) = Timestamp::from_millisecond(t) else {
            return t;
        };
        let local = ts.to_zoned(self.tz.clone());
        let (now, date) = (local.time(), local.date());
        let end_day = if q.start < q.end {
            if now >= q.start && now < q.end {
                Some(date)
            } else {
                None
            }
        } else if now >= q.start {
            date.tomorrow().ok()
        } else if now < q.end {
            Some(date)
        } else {
            None
        };
        let Some(day) = end_day else {
            return t;
        };
        // A wall-clock end that does not exist that day (a DST gap) is read
        // forward, as clocks are set: 02:30 on a spring-forward night is 03:30.
        match day.to_datetime(q.end).to_zoned(self.tz.clone()) {
            Ok(z) => z.timestamp().as_millisecond().max(t),
            Err(_) => t,
        }
    }

    /// How long "typing…" shows before a text of `chars` characters.
    pub fn typing_ms(&self, chars: usize) -> i64 {
        if !self.typing {
            return 0;
        }
        (chars as i64)
            .saturating_mul(self.typing_ms_per_char)
            .clamp(0, self.typing_max_ms)
    }
}

/// An org's sending policy as stored and shown (`GET/PUT …/sending-policy`):
/// plain fields, checked by the service layer before they are stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Policy {
    pub min_gap_ms: i64,
    pub max_gap_ms: i64,
    /// `None`: no cap.
    pub hourly_cap: Option<i64>,
    pub daily_cap: Option<i64>,
    /// First messages to contacts that never wrote to the number and were
    /// never sent one, in any 24 hours (`None`: no cap).
    #[serde(default = "default_new_contacts")]
    pub new_contacts_per_day: Option<i64>,
    /// `None`: no quiet hours.
    pub quiet_hours: Option<QuietHours>,
    /// An IANA zone name (`America/Bogota`).
    pub timezone: String,
    pub typing: bool,
    pub typing_ms_per_char: i64,
    pub typing_max_ms: i64,
}

/// What a policy stored before the new-contact cap existed gets.
fn default_new_contacts() -> Option<i64> {
    Some(DEFAULT_NEW_CONTACTS_PER_DAY)
}

/// The default cap on first messages to new contacts a day.
pub const DEFAULT_NEW_CONTACTS_PER_DAY: i64 = 50;

/// `"HH:MM"` local times.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct QuietHours {
    pub start: String,
    pub end: String,
}

impl Policy {
    /// The defaults, with their reasons in the README: a random 30–60 s
    /// between two messages (the one written anti-blocking guide among the
    /// peers, WAHA's), at most 60 an hour and 500 a day, nothing between
    /// 21:00 and 08:00 local time, "typing…" before each.
    pub fn conservative(timezone: &str) -> Policy {
        Policy {
            min_gap_ms: 30_000,
            max_gap_ms: 60_000,
            hourly_cap: Some(60),
            daily_cap: Some(500),
            new_contacts_per_day: Some(DEFAULT_NEW_CONTACTS_PER_DAY),
            quiet_hours: Some(QuietHours {
                start: "21:00".into(),
                end: "08:00".into(),
            }),
            timezone: timezone.to_string(),
            typing: true,
            typing_ms_per_char: 50,
            typing_max_ms: 5_000,
        }
    }

    /// As fast as the link allows (`serve --unpaced`: tests, benchmarks).
    pub fn unpaced(timezone: &str) -> Policy {
        Policy {
            min_gap_ms: 0,
            max_gap_ms: 0,
            hourly_cap: None,
            daily_cap: None,
            new_contacts_per_day: None,
            quiet_hours: None,
            timezone: timezone.to_string(),
            typing: false,
            typing_ms_per_char: 0,
            typing_max_ms: 0,
        }
    }

    /// What the dispatcher uses; `Err` names the field that cannot be used.
    pub fn pacing(&self) -> Result<Pacing, (&'static str, String)> {
        let tz = TimeZone::get(&self.timezone)
            .map_err(|_| ("timezone", format!("unknown time zone '{}'", self.timezone)))?;
        let quiet = match &self.quiet_hours {
            None => None,
            Some(q) => Some(Quiet {
                start: clock(&q.start)
                    .ok_or(("quiet_hours", format!("start '{}' is not HH:MM", q.start)))?,
                end: clock(&q.end)
                    .ok_or(("quiet_hours", format!("end '{}' is not HH:MM", q.end)))?,
            }),
        };
        let cap = |c: Option<i64>| c.map_or(usize::MAX, |n| n.max(1) as usize);
        Ok(Pacing {
            min_gap_ms: self.min_gap_ms,
            max_gap_ms: self.max_gap_ms,
            hourly_cap: cap(self.hourly_cap),
            daily_cap: cap(self.daily_cap),
            new_contacts_per_day: cap(self.new_contacts_per_day),
            quiet,
            tz,
            typing: self.typing,
            typing_ms_per_char: self.typing_ms_per_char,
            typing_max_ms: self.typing_max_ms,
        })
    }
}

/// The default zone of sending policies: the one given (checked), else the
/// server's own (`TZ`, `/etc/localtime`), else UTC.
pub fn default_timezone(given: Option<&str>) -> anyhow::Result<String> {
    if let Some(name) = given {
        TimeZone::get(name)
            .map_err(|_| anyhow::anyhow!("--default-timezone: unknown time zone '{name}' (an IANA name such as America/Bogota)"))?;
        return Ok(name.to_string());
    }
    let system = TimeZone::try_system()
        .ok()
        .and_then(|tz| tz.iana_name().map(str::to_string))
        .filter(|n| TimeZone::get(n).is_ok());
    Ok(system.unwrap_or_else(|| "UTC".to_string()))
}

/// `"HH:MM"` as a wall-clock time.
pub fn clock(s: &str) -> Option<Time> {
    let (h, m) = s.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    Time::new(h.parse().ok()?, m.parse().ok()?, 0, 0).ok()
}

/// The first moment ≥ `t` at which fewer than `cap` of `recent` lie in the
/// window ending then.
fn room_at(recent: &[i64], t: i64, window: i64, cap: usize) -> i64 {
    let inside: Vec<i64> = recent
        .iter()
        .copied()
        .filter(|&x| x > t - window && x <= t)
        .collect();
    if cap == 0 || inside.len() < cap {
        return t;
    }
    // When this one leaves the window, cap - 1 remain.
    inside[inside.len() - cap] + window
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> i64 {
        s.parse::<Timestamp>().unwrap().as_millisecond()
    }

    fn base() -> Pacing {
        Pacing {
            min_gap_ms: 30_000,
            max_gap_ms: 60_000,
            hourly_cap: 3,
            daily_cap: 5,
            new_contacts_per_day: usize::MAX,
            quiet: Some(Quiet {
                start: Time::constant(21, 0, 0, 0),
                end: Time::constant(8, 0, 0, 0),
            }),
            tz: TimeZone::get("America/Bogota").unwrap(),
            typing: true,
            typing_ms_per_char: 50,
            typing_max_ms: 4_000,
        }
    }

    #[test]
    fn the_gap_follows_the_previous_send() {
        let p = base();
        let now = ms("2026-12-01T15:00:00Z"); // 10:00 in Bogotá
        assert_eq!(p.next_slot(now, None, &[], 40_000), now);
        assert_eq!(
            p.next_slot(now, Some(now - 10_000), &[now - 10_000], 40_000),
            now + 30_000
        );
        assert_eq!(
            p.next_slot(now, Some(now - 50_000), &[now - 50_000], 40_000),
            now
        );
    }

    #[test]
    fn caps_wait_for_the_oldest_send_to_leave_the_window() {
        let p = base();
        let now = ms("2026-12-01T15:00:00Z");
        let m = 60_000;
        // Three in the last hour: the next waits until the first is an hour old.
        let recent = [now - 50 * m, now - 20 * m, now - 5 * m];
        assert_eq!(
            p.next_slot(now, Some(now - 5 * m), &recent, 0),
            now + 10 * m
        );
        // Five in the last day (spread over hours): the next waits a day from the first.
        let day = [
            now - 20 * HOUR_MS,
            now - 10 * HOUR_MS,
            now - 5 * HOUR_MS,
            now - 3 * HOUR_MS,
            now - 2 * HOUR_MS,
        ];
        let next = p.next_slot(now, Some(now - 2 * HOUR_MS), &day, 0);
        assert_eq!(
            next,
            now + 4 * HOUR_MS,
            "when the send of 20 h ago turns 24 h old"
        );
    }

    #[test]
    fn a_message_due_at_22_in_bogota_leaves_at_8_next_morning() {
        let p = base();
        let due = ms("2026-12-02T03:00:00Z"); // 22:00 on Dec 1 in Bogotá (UTC-5)
        assert_eq!(p.next_slot(due, None, &[], 0), ms("2026-12-02T13:00:00Z"));
        // 07:59 is still quiet; 08:00 is not.
        assert_eq!(
            p.after_quiet(ms("2026-12-02T12:59:00Z")),
            ms("2026-12-02T13:00:00Z")
        );
        assert_eq!(
            p.after_quiet(ms("2026-12-02T13:00:00Z")),
            ms("2026-12-02T13:00:00Z")
        );
        // 20:59 is not quiet.
        assert_eq!(
            p.after_quiet(ms("2026-12-02T01:59:00Z")),
            ms("2026-12-02T01:59:00Z")
        );
    }

    #[test]
    fn quiet_hours_follow_the_zone_across_a_dst_change() {
        // New York springs forward at 02:00 on 2026-03-08 (EST -5 → EDT -4).
        let mut p = base();
        p.tz = TimeZone::get("America/New_York").unwrap();
        // Due 22:00 EST on Mar 7: the window ends at 08:00 EDT on Mar 8 = 12:00 UTC,
        // an hour earlier in UTC than the night before.
        let due = ms("2026-03-08T03:00:00Z");
        assert_eq!(p.next_slot(due, None, &[], 0), ms("2026-03-08T12:00:00Z"));
        let night_before = ms("2026-03-07T03:00:00Z"); // 22:00 EST on Mar 6
        assert_eq!(
            p.next_slot(night_before, None, &[], 0),
            ms("2026-03-07T13:00:00Z")
        );
        // A window ending at 02:30, a time that does not exist on Mar 8: 03:30 EDT.
        p.quiet = Some(Quiet {
            start: Time::constant(22, 0, 0, 0),
            end: Time::constant(2, 30, 0, 0),
        });
        assert_eq!(p.after_quiet(due), ms("2026-03-08T07:30:00Z"));
        // And in autumn (Nov 1, 2026, 02:00 EDT → 01:00 EST) 08:00 is EST again.
        p.quiet = base().quiet;
        assert_eq!(
            p.after_quiet(ms("2026-11-01T03:00:00Z")),
            ms("2026-11-01T13:00:00Z")
        );
    }

    #[test]
    fn a_daytime_window_and_no_window() {
        let mut p = base();
        p.quiet = Some(Quiet {
            start: Time::constant(12, 0, 0, 0),
            end: Time::constant(14, 0, 0, 0),
        });
        let lunch = ms("2026-12-01T18:30:00Z"); // 13:30 in Bogotá
        assert_eq!(p.after_quiet(lunch), ms("2026-12-01T19:00:00Z"));
        p.quiet = None;
        assert_eq!(p.after_quiet(lunch), lunch);
        assert_eq!(
            Pacing::none().next_slot(lunch, Some(lunch), &[lunch; 100], 0),
            lunch
        );
    }

    #[test]
    fn only_as_much_history_as_the_caps_need() {
        assert!(Pacing::none().is_unpaced());
        assert!(!base().is_unpaced());
        assert_eq!(base().history_needed(), 5, "the larger cap");
        let mut p = base();
        p.hourly_cap = usize::MAX;
        p.daily_cap = usize::MAX;
        assert_eq!(p.history_needed(), 1, "just the last send, for the gap");
        // The newest `history_needed` sends decide the slot as all of them would.
        let now = 1_800_000_000_000;
        let all: Vec<i64> = (0..40)
            .map(|i| now - 20 * HOUR_MS + i * HOUR_MS / 2)
            .collect();
        let newest = &all[all.len() - base().history_needed() as usize..];
        assert_eq!(
            base().next_slot(now, all.last().copied(), &all, 0),
            base().next_slot(now, newest.last().copied(), newest, 0)
        );
    }

    #[test]
    fn typing_grows_with_the_text_up_to_a_cap() {
        let p = base();
        assert_eq!(p.typing_ms(20), 1_000);
        assert_eq!(p.typing_ms(10_000), 4_000);
        let mut off = base();
        off.typing = false;
        assert_eq!(off.typing_ms(20), 0);
    }
}
