//! Liveness: "connected" means a frame arrived recently. One timer per org:
//! after `PROBE_AFTER` of silence the supervisor asks the engine for a sign of
//! life (a keep-alive ping); after `DEAD_AFTER` the link is declared dead. So
//! status turns within 30 s of a silent network death, while an idle healthy
//! link stays up.
//!
//! The library pings by itself once 15 s pass without a frame (it looks
//! every 15–30 s), and that ping's answer is a frame: on an idle healthy
//! link it is the library's keep-alive that keeps the link "alive" here, and
//! our probe, at 20 s of silence, is only the backstop — one probe per quiet
//! spell. (Probing at 10 s doubled the pings of 1,000 idle orgs: the
//! library's then never came due.) A probe gets 7 s to be answered.
//! Pure: the supervisor feeds it times and carries out the verdict.

use std::time::Duration;

use tokio::time::Instant;

/// With no frame for this long, ask the server for a sign of life.
pub const PROBE_AFTER: Duration = Duration::from_secs(20);
/// With no frame for this long, the link is dead: status leaves `connected`.
pub const DEAD_AFTER: Duration = Duration::from_secs(27);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Frames are recent; check again at `recheck_at`.
    Alive { recheck_at: Instant },
    /// Quiet since `since` (the last frame): probe now unless this spell was
    /// probed already, check again at `recheck_at`.
    Quiet {
        probe: bool,
        since: Instant,
        recheck_at: Instant,
    },
    /// Silent for `silent`: close the link and retry.
    Dead { silent: Duration },
}

/// The verdict at `now`, given the last frame (if any), when the link came up
/// and the quiet spell (its `since`) that was last probed, if any.
pub fn check(
    now: Instant,
    last_frame: Option<Instant>,
    up_since: Option<Instant>,
    probed_spell: Option<Instant>,
) -> Verdict {
    let last = last_frame.into_iter().chain(up_since).max().unwrap_or(now);
    let silent = now.saturating_duration_since(last);
    if silent >= DEAD_AFTER {
        Verdict::Dead { silent }
    } else if silent >= PROBE_AFTER {
        Verdict::Quiet {
            probe: probed_spell != Some(last),
            since: last,
            recheck_at: last + DEAD_AFTER,
        }
    } else {
        Verdict::Alive {
            recheck_at: last + PROBE_AFTER,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_then_probe_then_dead() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        // (seconds since the last frame, this spell already probed, verdict)
        let quiet = |probe| Verdict::Quiet {
            probe,
            since: t0,
            recheck_at: t0 + s(27),
        };
        let rows = [
            (
                0,
                false,
                Verdict::Alive {
                    recheck_at: t0 + s(20),
                },
            ),
            (
                19,
                false,
                Verdict::Alive {
                    recheck_at: t0 + s(20),
                },
            ),
            (20, false, quiet(true)),
            (26, true, quiet(false)),
            (27, true, Verdict::Dead { silent: s(27) }),
            (90, false, Verdict::Dead { silent: s(90) }),
        ];
        for (after, probed, want) in rows {
            let spell = probed.then_some(t0);
            assert_eq!(
                check(t0 + s(after), Some(t0), None, spell),
                want,
                "{after} s quiet"
            );
        }
    }

    #[test]
    fn each_quiet_spell_gets_its_own_probe() {
        // The probe at 20 s was answered at 20 s, and nothing came since. At
        // 40 s the link is quiet again: a new spell, so a new probe, not a
        // countdown to "dead".
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let answered = t0 + s(20);
        assert_eq!(
            check(t0 + s(40), Some(answered), None, Some(t0)),
            Verdict::Quiet {
                probe: true,
                since: answered,
                recheck_at: answered + DEAD_AFTER
            }
        );
        assert_eq!(
            check(t0 + s(41), Some(answered), None, Some(answered)),
            Verdict::Quiet {
                probe: false,
                since: answered,
                recheck_at: answered + DEAD_AFTER
            }
        );
    }

    #[test]
    fn a_link_that_just_came_up_counts_from_then() {
        let t0 = Instant::now();
        let up = t0 + Duration::from_secs(100);
        // An old frame from before the link came up does not make it dead.
        assert_eq!(
            check(up + Duration::from_secs(1), Some(t0), Some(up), None),
            Verdict::Alive {
                recheck_at: up + PROBE_AFTER
            }
        );
    }
}
