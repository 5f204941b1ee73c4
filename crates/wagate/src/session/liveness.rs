//! Liveness: "connected" means a frame arrived recently. One timer per org:
//! after `PROBE_AFTER` of silence the supervisor asks the engine for a sign of
//! life (a keep-alive ping); after `DEAD_AFTER` the link is declared dead. So
//! status turns within 30 s of a silent network death, while an idle healthy
//! link stays up.
//!
//! The library pings by itself once 15 s pass without a frame (it looks
//! every 15–30 s), and that ping's answer is a frame: on an idle healthy
//! link it is the library's keep-alive that keeps the link "alive" here, and
//! our probe, at 22 s of silence, is only the backstop — one probe per quiet
//! spell. The later the probe, the fewer pings in all: at 1,000 idle orgs
//! wa-sim counted 3.06 pings per org per minute with the probe at 20 s, and a
//! model of the two timers gives 2.67 for the library alone, 3.08 at 20 s,
//! 2.85 at 22 s. (Probing at 10 s doubled them: the library's never came
//! due.) A probe gets 6 s to be answered, and its answer is looked at as it
//! comes (`ProbeAnswered`), not at the deadline. Dead at 28 s of silence
//! keeps status within 30 s of a silent network death.
//! Pure but for the grid's origin: the supervisor feeds it times and carries
//! out the verdict, and sets its timer on the grid (`on_grid`).

use std::time::Duration;

use tokio::time::Instant;

/// With no frame for this long, ask the server for a sign of life.
pub const PROBE_AFTER: Duration = Duration::from_secs(22);
/// With no frame for this long, the link is dead: status leaves `connected`.
pub const DEAD_AFTER: Duration = Duration::from_secs(28);
/// Every link's checks fall on one grid of this step, so that a thousand idle
/// links wake the gateway about once a step, each wake looking at the links
/// due then, instead of once per link per check (every wake is a thread
/// switch). A check comes at most one step late: dead at 29 s at worst.
pub const GRID: Duration = Duration::from_secs(1);

/// `t`, or the first point of the grid after it.
pub fn on_grid(t: Instant) -> Instant {
    static ORIGIN: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let origin = *ORIGIN.get_or_init(|| t);
    let step = GRID.as_nanos();
    let nanos = |n: u128| Duration::from_nanos(u64::try_from(n).unwrap_or(u64::MAX));
    match t.checked_duration_since(origin) {
        Some(since) => origin + nanos(since.as_nanos().div_ceil(step) * step),
        // Earlier than the origin (another runtime's clock, in tests).
        None => {
            let before = origin.duration_since(t).as_nanos();
            origin - nanos(before / step * step)
        }
    }
}

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
            recheck_at: t0 + s(28),
        };
        let rows = [
            (
                0,
                false,
                Verdict::Alive {
                    recheck_at: t0 + s(22),
                },
            ),
            (
                21,
                false,
                Verdict::Alive {
                    recheck_at: t0 + s(22),
                },
            ),
            (22, false, quiet(true)),
            (27, true, quiet(false)),
            (28, true, Verdict::Dead { silent: s(28) }),
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
    fn on_grid_rounds_up_to_the_next_step() {
        let t = Instant::now();
        let g = on_grid(t);
        assert!(g >= t && g - t < GRID, "{:?}", g - t);
        assert_eq!(on_grid(g), g, "a point of the grid stays");
        assert_eq!(on_grid(g + Duration::from_millis(1)), g + GRID);
        assert_eq!(on_grid(g - Duration::from_millis(1)), g);
        // Long before (maybe before the origin): the same grid.
        let early = g - Duration::from_secs(3600);
        assert_eq!(on_grid(early + Duration::from_millis(1)), early + GRID);
        assert_eq!(on_grid(early), early);
    }

    #[test]
    fn each_quiet_spell_gets_its_own_probe() {
        // The probe at 22 s was answered at 22 s, and nothing came since. At
        // 44 s the link is quiet again: a new spell, so a new probe, not a
        // countdown to "dead".
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let answered = t0 + s(22);
        assert_eq!(
            check(t0 + s(44), Some(answered), None, Some(t0)),
            Verdict::Quiet {
                probe: true,
                since: answered,
                recheck_at: answered + DEAD_AFTER
            }
        );
        assert_eq!(
            check(t0 + s(45), Some(answered), None, Some(answered)),
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
