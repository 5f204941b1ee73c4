//! Link actions and what they show: status (with the queue), connect (QR or
//! pairing code), the QR on offer, logout, reset, and the recent state
//! changes with their reasons. Each action waits until the org's supervisor
//! has carried it out, so the status it answers with has already moved.

use std::time::Duration;

use super::{App, AppError, ErrorCode, OrgAccess};
use crate::auth::Caller;
use crate::events::{Event, Kind};
use crate::session::{Command, Reason, State, Status};
use crate::store;

/// How long `connect` with a phone number waits for the pairing code.
pub const PAIR_CODE_WAIT: Duration = Duration::from_secs(30);
/// How long an action waits for the supervisor to carry it out before
/// answering with the status as it stands.
const ACTION_WAIT: Duration = Duration::from_secs(15);
/// State changes shown in a history.
pub const HISTORY: i64 = 50;

/// What `connect` started.
pub enum Linking {
    /// Pairing by QR, or a reconnect: the status after the supervisor acted.
    Started(Box<Status>),
    /// A pairing code to type on the phone.
    PairCode { code: String, expires_in_ms: u64 },
}

/// One recorded state change.
pub struct StateChange {
    pub at_ms: i64,
    pub state: String,
    /// Absent on changes recorded before reasons were structured.
    pub reason: Option<Reason>,
    /// The sentence recorded with changes made before reasons existed.
    pub legacy_detail: Option<String>,
}

impl App {
    /// An authorized org's status, with its queue.
    pub(crate) async fn status_of(&self, a: &OrgAccess) -> Status {
        let mut s = self.link_status(&a.handle);
        let inc = a.row.inc;
        if let Ok((queued, held, limits)) = self
            .store
            .read(move |c| {
                Ok((
                    store::messages::count_queued(c, inc)?,
                    store::messages::count_held(c, inc)?,
                    store::limits::get(c, inc)?,
                ))
            })
            .await
        {
            s.queued_messages = Some(queued);
            s.held_messages = Some(held);
            s.limits = Some(limits);
        }
        if s.queued_messages.unwrap_or(0) > 0 {
            let last = self
                .store
                .read(move |c| store::messages::last_queued(c, inc))
                .await;
            if let Ok(Some(row)) = last {
                s.queue_empty_eta_ms = self
                    .outbox
                    .etas(a.org(), std::slice::from_ref(&row))
                    .await
                    .ok()
                    .and_then(|e| e.get(&row.id).copied());
            }
        }
        s
    }

    pub async fn status(&self, caller: &Caller, org: &str) -> Result<Status, AppError> {
        let a = self.authorize(caller, org)?;
        Ok(self.status_of(&a).await)
    }

    /// Start pairing or reconnect now; with `phone`, wait for a pairing code.
    pub async fn connect(
        &self,
        caller: &Caller,
        org: &str,
        phone: Option<String>,
    ) -> Result<Linking, AppError> {
        let a = self.authorize(caller, org)?;
        let h = &a.handle;
        let phone = match phone {
            None => None,
            Some(p) => Some(
                crate::phone::normalize(&p, a.row.default_country_code.as_deref())
                    .map_err(|e| AppError::new(ErrorCode::InvalidPhone, e.to_string()))?,
            ),
        };
        let Some(phone) = phone else {
            self.carry_out(&a, |done| Command::Connect {
                pair_phone: None,
                done,
            })
            .await?;
            return Ok(Linking::Started(Box::new(self.status_of(&a).await)));
        };
        if h.snapshot().state == State::Connected {
            return Err(AppError::new(
                ErrorCode::AlreadyLinked,
                "this organization is already linked and connected",
            ));
        }
        let mut rx = h.status.clone();
        rx.borrow_and_update();
        self.carry_out(&a, |done| Command::Connect {
            pair_phone: Some(phone),
            done,
        })
        .await?;
        let deadline = tokio::time::Instant::now() + PAIR_CODE_WAIT;
        loop {
            let s = h.status();
            if let (Some(code), Some(ms)) = (s.pair_code.clone(), s.pair_code_expires_in_ms) {
                return Ok(Linking::PairCode {
                    code,
                    expires_in_ms: ms,
                });
            }
            if matches!(
                s.state,
                State::NeedsQr | State::Connected | State::Banned | State::Outdated | State::Error
            ) {
                return Err(AppError::new(
                    ErrorCode::NoPairCode,
                    format!(
                        "no pairing code could be obtained (state: {})",
                        s.state.as_str()
                    ),
                ));
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                _ => {
                    return Err(AppError::new(
                        ErrorCode::PairCodeTimeout,
                        format!(
                            "WhatsApp did not hand out a pairing code within {} s (state: {})",
                            PAIR_CODE_WAIT.as_secs(),
                            s.state.as_str()
                        ),
                    ))
                }
            }
        }
    }

    /// The QR code on offer now and its remaining life in ms.
    pub fn qr(&self, caller: &Caller, org: &str) -> Result<(String, u64), AppError> {
        let a = self.authorize(caller, org)?;
        let snap = a.handle.snapshot();
        snap.live_qr()
            .map(|(code, left)| (code, left.as_millis() as u64))
            .ok_or_else(|| {
                AppError::new(
                    ErrorCode::NoQr,
                    format!(
                        "no QR code is on offer now (state: {}); start pairing first",
                        snap.state.as_str()
                    ),
                )
            })
    }

    pub async fn logout(&self, caller: &Caller, org: &str) -> Result<Status, AppError> {
        let a = self.authorize(caller, org)?;
        self.carry_out(&a, |done| Command::Logout { done }).await?;
        Ok(self.status_of(&a).await)
    }

    pub async fn reset(&self, caller: &Caller, org: &str) -> Result<Status, AppError> {
        let a = self.authorize(caller, org)?;
        self.carry_out(&a, |done| Command::Reset { done }).await?;
        Ok(self.status_of(&a).await)
    }

    /// Several nodes: a link action runs only on the org's owner (requests
    /// reach it through `server::to_owner`; one that arrives as the org
    /// moves is refused, never carried out by a node without the lease).
    pub(crate) fn owned_here(&self, a: &OrgAccess) -> Result<(), AppError> {
        match self.cluster() {
            Some(c) if !c.ownership.owns_inc(a.row.inc) => Err(AppError::new(
                ErrorCode::OwnerUnreachable,
                format!(
                    "organization '{}' is being moved between nodes (owner now: {}); ask again in a few seconds",
                    a.row.id,
                    c.owner_of(&a.row.id).unwrap_or_else(|| "none yet".into())
                ),
            )),
            _ => Ok(()),
        }
    }

    /// Order the supervisor and wait (a while) until it has carried it out.
    async fn carry_out(
        &self,
        a: &OrgAccess,
        cmd: impl FnOnce(tokio::sync::oneshot::Sender<()>) -> Command,
    ) -> Result<(), AppError> {
        self.owned_here(a)?;
        match tokio::time::timeout(ACTION_WAIT, a.handle.ask(cmd)).await {
            Ok(r) => r.map_err(AppError::from),
            // Still under way (a close the server has not confirmed): the
            // status says where it stands.
            Err(_) => Ok(()),
        }
    }

    /// What the org's WhatsApp client holds in memory (admin): the
    /// library's report, or `None` when no client is open (never linked).
    pub async fn memory_report(
        &self,
        caller: &Caller,
        org: &str,
    ) -> Result<Option<String>, AppError> {
        self.require_admin(caller)?;
        let a = self.authorize(caller, org)?;
        let engine = a.handle.engine.lock().clone();
        Ok(match engine {
            Some(e) => e.memory_report().await,
            None => None,
        })
    }

    /// The last state changes, newest first.
    pub async fn history(&self, caller: &Caller, org: &str) -> Result<Vec<StateChange>, AppError> {
        let a = self.authorize(caller, org)?;
        self.changes(&a).await
    }

    pub(crate) async fn changes(&self, a: &OrgAccess) -> Result<Vec<StateChange>, AppError> {
        let (inc, id) = (a.row.inc, a.row.id.clone());
        let rows = self
            .store
            .read(move |c| store::events::latest(c, inc, &id, Kind::State.as_str(), HISTORY))
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|r| match Event::decode(&r.kind, &r.data) {
                Some(Event::State(s)) => Some(StateChange {
                    at_ms: r.ts_ms,
                    legacy_detail: s
                        .reason
                        .is_none()
                        .then(|| s.detail.clone())
                        .filter(|d| !d.is_empty()),
                    state: s.state,
                    reason: s.reason,
                }),
                _ => None,
            })
            .collect())
    }
}
