//! Credentials kept aside — on logout, reset, corruption, deletion, an
//! upgrade, or replaced by a restore — listed by org and put back. Only the
//! admin token may do either: it is the operator's tool for "the clinic
//! reset the wrong number". A copy's name is `<org>-<why>-<UTC time>`
//! (`.db` for a device copy, a folder for an earlier version's files).

use super::{App, AppError, ErrorCode};
use crate::auth::Caller;
use crate::session::status::Status;

/// One copy kept aside.
#[derive(Debug, Clone)]
pub struct Kept {
    pub name: String,
    /// Why it was set aside (`logged_out`, `reset`, `corrupt`, `deleted`,
    /// `replaced`, `migrated`, …).
    pub reason: String,
    /// When, as in its name (`20261129T091500.123Z`).
    pub at: String,
    pub bytes: u64,
}

/// (org, why, time) of a copy's name, if it is one.
fn parse(name: &str) -> Option<(&str, &str, &str)> {
    let stem = name.strip_suffix(".db").unwrap_or(name);
    let mut parts = stem.rsplitn(3, '-');
    let at = parts.next()?;
    let why = parts.next()?;
    let org = parts.next()?;
    (!org.is_empty() && at.ends_with('Z') && at.contains('T')).then_some((org, why, at))
}

fn size(p: &std::path::Path) -> u64 {
    if p.is_dir() {
        std::fs::read_dir(p)
            .map(|d| d.filter_map(|e| e.ok()).map(|e| size(&e.path())).sum())
            .unwrap_or(0)
    } else {
        std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
    }
}

impl App {
    /// The copies of `org`'s credentials kept aside, newest first.
    pub fn aside_copies(&self, caller: &Caller, org: &str) -> Result<Vec<Kept>, AppError> {
        self.require_admin(caller)?;
        self.authorize(caller, org)?;
        let dir = self.sessions.aside_dir();
        let mut kept: Vec<Kept> = match std::fs::read_dir(dir) {
            Ok(d) => d
                .filter_map(|e| e.ok())
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let (o, why, at) = parse(&name)?;
                    let (reason, at) = (why.to_string(), at.to_string());
                    (o == org).then(|| Kept {
                        reason,
                        at,
                        bytes: size(&e.path()),
                        name: name.clone(),
                    })
                })
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => vec![],
            Err(e) => return Err(AppError::internal("cannot read the aside folder", e)),
        };
        kept.sort_by(|a, b| b.at.cmp(&a.at));
        Ok(kept)
    }

    /// Put the copy `name` back as `org`'s credentials; the current ones
    /// are set aside as `replaced`. Answers where they went and the status.
    pub async fn restore_credentials(
        &self,
        caller: &Caller,
        org: &str,
        name: &str,
    ) -> Result<(Option<String>, Status), AppError> {
        let copies = self.aside_copies(caller, org)?;
        let a = self.authorize(caller, org)?;
        let Some(copy) = copies.iter().find(|k| k.name == name) else {
            return Err(AppError::new(
                ErrorCode::CopyNotFound,
                format!("no copy named '{name}' for '{org}' (GET /v1/orgs/{org}/credentials lists them)"),
            ));
        };
        self.owned_here(&a)?;
        let from = self.sessions.aside_dir().join(&copy.name);
        let (tx, rx) = tokio::sync::oneshot::channel();
        a.handle
            .send(crate::session::Command::Reinstate { from, done: tx })
            .await
            .map_err(AppError::from)?;
        let replaced = rx
            .await
            .map_err(|_| AppError::from(crate::session::Stopped))?
            .map_err(|e| {
                AppError::new(
                    ErrorCode::RestoreFailed,
                    format!("'{name}' could not be restored: {e}"),
                )
            })?;
        Ok((
            replaced.map(|p| {
                p.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned()
            }),
            self.status_of(&a).await,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn copy_names_are_read_from_the_right() {
        assert_eq!(
            parse("4-logged_out-20261129T091500.123Z.db"),
            Some(("4", "logged_out", "20261129T091500.123Z"))
        );
        assert_eq!(
            parse("clinica-norte-reset-20261129T091500.123Z"),
            Some(("clinica-norte", "reset", "20261129T091500.123Z"))
        );
        assert_eq!(parse("notes.txt"), None);
        assert_eq!(parse("-reset-20261129T091500.123Z"), None);
    }
}
