//! Liveness: "connected" means a frame arrived recently. One timer per org:
//! after `PROBE_AFTER` of silence the supervisor asks the engine for a sign of
//! life (a keep-alive ping); after `DEAD_AFTER` the link is declared dead. So
//! status turns within 30 s of a silent network death, while an idle healthy
//! link (pinged by the library every 15–30 s, and by our probe) stays up.
//! Pure: the supervisor feeds it times and carries out the verdict.

use std::time::Duration;

use tokio::time::Instant;

/// With no frame for this long, ask the server for a sign of life.
pub const PROBE_AFTER: Duration = Duration::from_secs(10);
/// With no frame for this long, the link is dead: status leaves `connected`.
pub const DEAD_AFTER: Duration = Duration::from_secs(25);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Frames are recent; check again at `recheck_at`.
    Alive { recheck_at: Instant },
    /// Quiet: probe now (unless already probed), check again at `recheck_at`.
    Quiet { probe: bool, recheck_at: Instant },
    /// Silent for `silent`: close the link and retry.
    Dead { silent: Duration },
}

/// The verdict at `now`, given the last frame (if any), when the link came up
/// and whether a probe was already sent during this quiet spell.
pub fn check(
    now: Instant,
    last_frame: Option<Instant>,
    up_since: Option<Instant>,
    probed: bool,
) -> Verdict {
    let last = last_frame.into_iter().chain(up_since).max().unwrap_or(now);
    let silent = now.saturating_duration_since(last);
    if silent >= DEAD_AFTER {
        Verdict::Dead { silent }
    } else if silent >= PROBE_AFTER {
        Verdict::Quiet {
            probe: !probed,
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
        // (seconds since the last frame, already probed, verdict)
        let rows = [
            (
                0,
                false,
                Verdict::Alive {
                    recheck_at: t0 + s(10),
                },
            ),
            (
                9,
                false,
                Verdict::Alive {
                    recheck_at: t0 + s(10),
                },
            ),
            (
                10,
                false,
                Verdict::Quiet {
                    probe: true,
                    recheck_at: t0 + s(25),
                },
            ),
            (
                20,
                true,
                Verdict::Quiet {
                    probe: false,
                    recheck_at: t0 + s(25),
                },
            ),
            (25, true, Verdict::Dead { silent: s(25) }),
            (90, false, Verdict::Dead { silent: s(90) }),
        ];
        for (after, probed, want) in rows {
            assert_eq!(
                check(t0 + s(after), Some(t0), None, probed),
                want,
                "{after} s quiet"
            );
        }
    }

    #[test]
    fn a_link_that_just_came_up_counts_from_then() {
        let t0 = Instant::now();
        let up = t0 + Duration::from_secs(100);
        // An old frame from before the link came up does not make it dead.
        assert_eq!(
            check(up + Duration::from_secs(1), Some(t0), Some(up), false),
            Verdict::Alive {
                recheck_at: up + PROBE_AFTER
            }
        );
    }
}
