//! The API's words for a link's reason: the English `detail` sentence that
//! goes with every status, state event and history entry (the structured
//! `reason` goes with it, for programs).

use super::{Cause, Purpose, Reason};

fn secs(ms: u64) -> String {
    format!("{:.1} s", ms as f64 / 1000.0)
}

fn cause(c: &Cause) -> String {
    match c {
        Cause::RestartStorm { count } => {
            format!("WhatsApp asked for a restart (515) {count} times within a minute")
        }
        Cause::ServerError { code, text } if text.is_empty() => {
            format!("WhatsApp server error {code}")
        }
        Cause::ServerError { code, text } => format!("WhatsApp server error {code}: {text}"),
        Cause::Network { text } => format!("connection lost: {text}"),
        Cause::Requested => "connection closed by the gateway".into(),
        Cause::LoginTimeout { secs } => {
            format!("WhatsApp did not complete the login within {secs} s")
        }
        Cause::KeepaliveLate { silent_s } => {
            format!("no sign of life from WhatsApp for {silent_s} s (keep-alive late)")
        }
    }
}

fn phone(p: &str) -> String {
    format!("+{p}")
}

/// The English sentence for `reason`, plus a note on decryption failures.
pub fn detail(reason: &Reason, decrypt_failures: u64) -> String {
    let base = match reason {
        Reason::Starting => "Opening the org's stored WhatsApp state".to_string(),
        Reason::WaitingForTurn => "Linked before; waiting for its turn to reconnect".into(),
        Reason::OwnerSilent { node } => format!(
            "The gateway node that held this link ({node}) stopped answering; another node takes it over within seconds, with no QR"
        ),
        Reason::NotLinked => {
            "Not linked yet: ask for a QR code (POST …/session/connect)".into()
        }
        Reason::Connecting {
            purpose: Purpose::Login,
            attempt: 0,
        } => "Connecting to WhatsApp".into(),
        Reason::Connecting {
            purpose: Purpose::Login,
            attempt,
        } => format!("Reconnecting to WhatsApp (attempt {attempt})"),
        Reason::Connecting {
            purpose: Purpose::Qr,
            ..
        } => "Connecting to WhatsApp to get a QR code".into(),
        Reason::Connecting {
            purpose: Purpose::PairCode,
            ..
        } => "Connecting to WhatsApp to get a pairing code".into(),
        Reason::ScanQr => {
            "Scan the QR code with WhatsApp: Settings → Linked devices → Link a device".into()
        }
        Reason::TypePairCode => "Type the pairing code in WhatsApp: Settings → Linked devices → Link a device → Link with phone number instead".into(),
        Reason::Paired { phone: p } => format!("Linked to {}; logging in", phone(p)),
        Reason::Connected { phone: Some(p) } => format!("WhatsApp connected as {}", phone(p)),
        Reason::Connected { phone: None } => "WhatsApp connected".into(),
        Reason::RetryScheduled {
            cause: c,
            delay_ms,
            attempt,
        } => format!(
            "{}; retrying in {} (attempt {attempt})",
            capitalized(&cause(c)),
            secs(*delay_ms)
        ),
        Reason::NoCodeAfterTries { tries, cause: c } => format!(
            "Could not get a QR code after {tries} tries ({}). Ask again with POST …/session/connect.",
            cause(c)
        ),
        Reason::CodesUnused { rounds } => format!(
            "No one linked the device after {rounds} rounds of codes. Ask for a new code with POST …/session/connect."
        ),
        Reason::PhoneUnlinked { detail } => {
            format!("The phone unlinked this device ({detail}). Link again with a new QR code.")
        }
        Reason::LoggedOutOnRequest => {
            "Logged out on request; the device was unlinked. Link again with a new QR code.".into()
        }
        Reason::Replaced => "Another WhatsApp Web session took over this link; wagate will not fight it. Use POST …/session/connect to take it back.".into(),
        Reason::Banned {
            expires_in_s: Some(s),
            detail,
        } => format!("WhatsApp temporarily banned this number ({detail}); retrying in {s} s. Messages stay queued."),
        Reason::Banned {
            expires_in_s: None,
            detail,
        } => format!("WhatsApp temporarily banned this number ({detail}). Messages stay queued."),
        Reason::Outdated => {
            "WhatsApp refused this client version as outdated (405): upgrade wagate.".into()
        }
        Reason::CredentialsUnreadable {
            why,
            aside,
            fresh_failed,
        } => {
            let mut s = format!(
                "The stored WhatsApp credentials could not be read ({why}); they were moved aside to {}. Link again with a new QR code.",
                aside.as_deref().unwrap_or("the aside folder")
            );
            if let Some(f) = fresh_failed {
                s.push_str(&format!(" (opening a fresh device failed: {f})"));
            }
            s
        }
        Reason::StoreUnavailable {
            error,
            delay_ms,
            attempt,
        } => format!(
            "The org's WhatsApp state could not be opened ({error}); its credentials are kept. Retrying in {} (attempt {attempt}).",
            secs(*delay_ms)
        ),
        Reason::Stopped => "Supervisor stopped".into(),
    };
    match decrypt_failures {
        0 => base,
        n => format!(
            "{base} ({n} incoming message(s) could not be decrypted; WhatsApp asked the senders to resend)"
        ),
    }
}

fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_has_a_sentence() {
        for r in Reason::samples() {
            let d = detail(&r, 0);
            assert!(d.len() > 5, "{r:?}: {d}");
        }
        let d = detail(&Reason::Connected { phone: None }, 2);
        assert!(
            d.contains("2 incoming message(s) could not be decrypted"),
            "{d}"
        );
    }
}
