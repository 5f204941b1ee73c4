//! The dispatcher's wall clock. In the gateway it is the system's; in tests
//! it is a fixed wall-clock moment advanced by tokio's (pausable) time, so
//! pacing, quiet hours and holds can be run through days in milliseconds.

use tokio::time::Instant;

#[derive(Clone, Debug)]
pub enum Clock {
    System,
    /// `origin_ms` at `origin`, then moving with tokio's clock.
    #[allow(dead_code)]
    Tokio {
        origin_ms: i64,
        origin: Instant,
    },
}

impl Clock {
    /// A clock reading `origin_ms` now and following tokio's time.
    #[cfg(test)]
    pub fn tokio_at(origin_ms: i64) -> Clock {
        Clock::Tokio {
            origin_ms,
            origin: Instant::now(),
        }
    }

    /// Unix milliseconds now.
    pub fn now_ms(&self) -> i64 {
        match self {
            Clock::System => crate::store::now_ms(),
            Clock::Tokio { origin_ms, origin } => {
                origin_ms + Instant::now().duration_since(*origin).as_millis() as i64
            }
        }
    }
}
