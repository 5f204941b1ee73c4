//! Telling systemd how the service is (its notify protocol, our own
//! implementation): `READY=1` once the API listens, `WATCHDOG=1` every half
//! watchdog period while the gateway is healthy (the runtime turns, every
//! supervisor is running, the database answers), `STOPPING=1` when it shuts
//! down. Without `NOTIFY_SOCKET` (not under systemd) nothing is sent.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// Where to send notifications, if anywhere.
pub struct Notifier {
    socket: Option<(UnixDatagram, std::os::unix::net::SocketAddr)>,
}

impl Notifier {
    /// From `NOTIFY_SOCKET`: a path, or `@name` for an abstract socket.
    pub fn from_env() -> Notifier {
        let socket = std::env::var_os("NOTIFY_SOCKET").and_then(|p| {
            let p = p.to_string_lossy().into_owned();
            let addr = address(&p)?;
            let s = UnixDatagram::unbound().ok()?;
            Some((s, addr))
        });
        Notifier { socket }
    }

    /// Whether notifications go anywhere.
    pub fn active(&self) -> bool {
        self.socket.is_some()
    }

    /// Send one notification (`KEY=value` lines); failures are logged only.
    pub fn send(&self, msg: &str) {
        if let Some((s, addr)) = &self.socket {
            if let Err(e) = s.send_to_addr(msg.as_bytes(), addr) {
                tracing::warn!(error = %e, "cannot notify systemd");
            }
        }
    }
}

fn address(p: &str) -> Option<std::os::unix::net::SocketAddr> {
    if let Some(name) = p.strip_prefix('@') {
        #[cfg(target_os = "linux")]
        {
            use std::os::linux::net::SocketAddrExt;
            return std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).ok();
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = name;
            return None;
        }
    }
    if p.starts_with('/') {
        return std::os::unix::net::SocketAddr::from_pathname(p).ok();
    }
    None
}

/// How often to say `WATCHDOG=1`: half of `WATCHDOG_USEC`, when it is set
/// for this process (`WATCHDOG_PID` absent or ours).
pub fn watchdog_every() -> Option<Duration> {
    if let Some(pid) = std::env::var_os("WATCHDOG_PID") {
        if pid.to_string_lossy().trim() != std::process::id().to_string() {
            return None;
        }
    }
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.trim().parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_abstract_names_are_addresses_and_nothing_else_is() {
        assert!(address("/run/systemd/notify").is_some());
        #[cfg(target_os = "linux")]
        assert!(address("@/org/freedesktop/systemd1/notify/1").is_some());
        assert!(address("relative/path").is_none());
        assert!(address("").is_none());
    }
}
