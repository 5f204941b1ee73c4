//! Messages: accept a send, now or at `send_at` (validated, then written
//! durably before the answer), cancel or move one not yet sent, read one,
//! list them in acceptance order (scheduled ones by due time) with a cursor,
//! list received messages. An idempotency key makes a repeat of the same
//! request return the first message; the same key with a different request
//! is refused.

use super::timing::{self, When};
use super::{App, AppError, ErrorCode, OrgAccess};
use crate::auth::Caller;
use crate::outbox::{Change, Timing};
use crate::store::inbound::InboundRow;
use crate::store::messages::Inserted;
use crate::store::{self, MessageRow, MessageStatus};

/// Longest text accepted (WhatsApp's own limit is about 65,536 characters).
pub const MAX_TEXT_CHARS: usize = 60_000;
/// Longest idempotency key, in characters.
pub const MAX_IDEMPOTENCY_KEY: usize = 200;
/// Largest page of a listing.
pub const MAX_PAGE: i64 = 1000;
/// Page size when none is asked for.
pub const DEFAULT_PAGE: i64 = 100;

/// A send as a surface received it.
#[derive(Default)]
pub struct SendRequest {
    pub to: Option<String>,
    pub text: Option<String>,
    pub idempotency_key: Option<String>,
    pub send_at: Option<When>,
    pub send_before: Option<When>,
}

/// An accepted send.
pub struct Accepted {
    pub message: MessageRow,
    /// The idempotency key was used before for this same request: this is
    /// the first message, nothing new was queued.
    pub replayed: bool,
}

/// Where a listing starts and how much it returns. A listing by due time
/// (scheduled messages) has a two-part cursor, `<send_at_ms>.<seq>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub after: i64,
    pub after_due: Option<i64>,
    pub limit: i64,
}

impl Page {
    /// From a listing's `limit` (1-1000, default 100) and `cursor`.
    pub fn parse(limit: Option<&str>, cursor: Option<&str>) -> Result<Page, AppError> {
        let limit = match limit {
            None => DEFAULT_PAGE,
            Some(l) => l
                .parse::<i64>()
                .ok()
                .filter(|n| (1..=MAX_PAGE).contains(n))
                .ok_or_else(|| {
                    AppError::new(
                        ErrorCode::InvalidLimit,
                        format!("limit must be a whole number from 1 to {MAX_PAGE}"),
                    )
                })?,
        };
        let bad = || {
            AppError::new(
                ErrorCode::InvalidCursor,
                "cursor must be a value returned as next_cursor",
            )
        };
        let whole = |t: &str| t.parse::<i64>().ok().filter(|n| *n >= 0);
        let (after_due, after) = match cursor {
            None => (None, 0),
            Some(c) => match c.split_once('.') {
                Some((due, seq)) => (
                    Some(whole(due).ok_or_else(bad)?),
                    whole(seq).ok_or_else(bad)?,
                ),
                None => (None, whole(c).ok_or_else(bad)?),
            },
        };
        Ok(Page {
            after,
            after_due,
            limit,
        })
    }

    /// The cursor for the next page: the last row's sequence when the page is full.
    pub fn next(&self, len: usize, last_seq: Option<i64>) -> Option<String> {
        if len as i64 == self.limit {
            last_seq.map(|s| s.to_string())
        } else {
            None
        }
    }

    /// A plain (sequence) cursor is required.
    fn plain(&self) -> Result<i64, AppError> {
        match self.after_due {
            None => Ok(self.after),
            Some(_) => Err(AppError::new(
                ErrorCode::InvalidCursor,
                "that cursor belongs to the listing of scheduled messages",
            )),
        }
    }
}

/// A page of rows and the cursor of the next one.
pub struct Listing<T> {
    pub rows: Vec<T>,
    pub next_cursor: Option<String>,
}

fn not_found(id: &str) -> AppError {
    AppError::new(
        ErrorCode::MessageNotFound,
        format!("no message '{id}' in this organization"),
    )
}

fn check_key(k: &str) -> Result<(), AppError> {
    let n = k.chars().count();
    if n == 0 || n > MAX_IDEMPOTENCY_KEY || k.chars().any(char::is_control) {
        return Err(AppError::new(
            ErrorCode::InvalidIdempotencyKey,
            format!(
                "an idempotency key must be 1-{MAX_IDEMPOTENCY_KEY} characters without control characters"
            ),
        ));
    }
    Ok(())
}

impl App {
    /// Validate and accept one send (202 after the durable write).
    pub async fn send(
        &self,
        caller: &Caller,
        org: &str,
        req: SendRequest,
    ) -> Result<Accepted, AppError> {
        let a = self.authorize(caller, org)?;
        let to = req.to.ok_or_else(|| {
            AppError::new(
                ErrorCode::InvalidPhone,
                "the recipient phone number is required",
            )
        })?;
        let phone = crate::phone::normalize(&to, a.row.default_country_code.as_deref())
            .map_err(|e| AppError::new(ErrorCode::InvalidPhone, e.to_string()))?;
        let text = req.text.unwrap_or_default();
        if text.trim().is_empty() {
            return Err(AppError::new(
                ErrorCode::EmptyText,
                "the message text is required and must not be blank",
            ));
        }
        if text.chars().count() > MAX_TEXT_CHARS {
            return Err(AppError::new(
                ErrorCode::TextTooLong,
                format!("the message text is longer than {MAX_TEXT_CHARS} characters"),
            ));
        }
        if let Some(k) = &req.idempotency_key {
            check_key(k)?;
        }
        let timing = timing::for_send(
            req.send_at.as_ref(),
            req.send_before.as_ref(),
            store::now_ms(),
        )?;
        let inserted = self
            .outbox
            .accept(
                a.org(),
                phone.clone(),
                text.clone(),
                req.idempotency_key,
                timing,
            )
            .await
            .map_err(|e| {
                if e.is_org_gone() {
                    AppError::new(ErrorCode::OrgNotFound, format!("no organization '{org}'"))
                } else {
                    AppError::from(e)
                }
            })?;
        match inserted {
            Inserted::New(message) => {
                tracing::info!(org = %a.row.id, id = %message.id, "message accepted");
                Ok(Accepted {
                    message,
                    replayed: false,
                })
            }
            Inserted::Existing(first)
                if first.to == phone
                    && first.text == text
                    && first.send_at_ms == timing.send_at_ms
                    && first.send_before_ms == timing.send_before_ms =>
            {
                Ok(Accepted {
                    message: first,
                    replayed: true,
                })
            }
            Inserted::Existing(first) => Err(AppError::new(
                ErrorCode::IdempotencyKeyReused,
                format!(
                    "this idempotency key was used for another message ({}); use a new key for a new message",
                    first.id
                ),
            )),
        }
    }

    pub async fn message(
        &self,
        caller: &Caller,
        org: &str,
        id: &str,
    ) -> Result<MessageRow, AppError> {
        let a = self.authorize(caller, org)?;
        self.row_of(&a, id).await
    }

    /// Message `id` of an authorized org.
    async fn row_of(&self, a: &OrgAccess, id: &str) -> Result<MessageRow, AppError> {
        let (inc, mid) = (a.row.inc, id.to_string());
        self.store
            .read(move |c| store::messages::get(c, inc, &mid))
            .await?
            .ok_or_else(|| not_found(id))
    }

    /// Messages in acceptance order, oldest first, optionally in one status;
    /// scheduled ones by due time, soonest first.
    pub async fn messages(
        &self,
        caller: &Caller,
        org: &str,
        status: Option<&str>,
        page: Page,
    ) -> Result<Listing<MessageRow>, AppError> {
        let a = self.authorize(caller, org)?;
        let status = match status {
            None => None,
            Some(s) => Some(MessageStatus::parse(s).ok_or_else(|| {
                let all: Vec<&str> = MessageStatus::ALL.iter().map(|m| m.as_str()).collect();
                AppError::new(
                    ErrorCode::InvalidStatus,
                    format!("status must be one of {}", all.join(", ")),
                )
            })?),
        };
        let inc = a.row.inc;
        if status == Some(MessageStatus::Scheduled) {
            let after = (page.after_due.unwrap_or(i64::MIN), page.after);
            let rows = self
                .store
                .read(move |c| store::messages::list_scheduled(c, inc, after, page.limit))
                .await?;
            let next_cursor = (rows.len() as i64 == page.limit)
                .then(|| {
                    rows.last()
                        .map(|r| format!("{}.{}", r.send_at_ms.unwrap_or(0), r.seq))
                })
                .flatten();
            return Ok(Listing { rows, next_cursor });
        }
        let after = page.plain()?;
        let rows = self
            .store
            .read(move |c| store::messages::list(c, inc, status, after, page.limit))
            .await?;
        let next_cursor = page.next(rows.len(), rows.last().map(|r| r.seq));
        Ok(Listing { rows, next_cursor })
    }

    /// When each queued or scheduled message of `rows` is expected to leave.
    pub async fn etas(
        &self,
        caller: &Caller,
        org: &str,
        rows: &[MessageRow],
    ) -> Result<std::collections::HashMap<String, i64>, AppError> {
        let a = self.authorize(caller, org)?;
        Ok(self.outbox.etas(a.org(), rows).await?)
    }

    /// Cancel a message not yet handed to WhatsApp.
    pub async fn cancel_message(
        &self,
        caller: &Caller,
        org: &str,
        id: &str,
    ) -> Result<MessageRow, AppError> {
        let a = self.authorize(caller, org)?;
        match self.outbox.cancel(a.org(), id).await? {
            Change::Done(row) => {
                tracing::info!(org = %a.row.id, id = %row.id, "message canceled");
                Ok(row)
            }
            Change::Refused(row) => Err(AppError::new(
                ErrorCode::NotCancelable,
                match row.status {
                    MessageStatus::Queued => "the message was already handed to WhatsApp; it can no longer be canceled".to_string(),
                    s => format!("the message is {}; only scheduled or queued messages not yet handed to WhatsApp can be canceled", s.as_str()),
                },
            )),
            Change::NotFound => Err(not_found(id)),
        }
    }

    /// Move a scheduled message's `send_at` (and `send_before`).
    pub async fn reschedule_message(
        &self,
        caller: &Caller,
        org: &str,
        id: &str,
        send_at: Option<When>,
        send_before: Option<When>,
    ) -> Result<MessageRow, AppError> {
        let a = self.authorize(caller, org)?;
        let current = self.row_of(&a, id).await?;
        let refused = |row: &MessageRow| {
            AppError::new(
                ErrorCode::NotReschedulable,
                format!(
                    "the message is {}; only a scheduled message can be moved",
                    row.status.as_str()
                ),
            )
        };
        if current.status != MessageStatus::Scheduled {
            return Err(refused(&current));
        }
        let had = Timing {
            send_at_ms: current.send_at_ms,
            send_before_ms: current.send_before_ms,
        };
        let timing =
            timing::for_reschedule(send_at.as_ref(), send_before.as_ref(), had, store::now_ms())?;
        match self.outbox.reschedule(a.org(), id, timing).await? {
            Change::Done(row) => Ok(row),
            Change::Refused(row) => Err(refused(&row)),
            Change::NotFound => Err(not_found(id)),
        }
    }

    /// Up to `n` scheduled messages (soonest first) and up to `n` held ones
    /// (soonest retry first): what waits to be sent.
    pub async fn waiting_messages(
        &self,
        caller: &Caller,
        org: &str,
        n: i64,
    ) -> Result<(Vec<MessageRow>, Vec<MessageRow>), AppError> {
        let a = self.authorize(caller, org)?;
        let inc = a.row.inc;
        Ok(self
            .store
            .read(move |c| {
                Ok((
                    store::messages::list_scheduled(c, inc, (i64::MIN, 0), n)?,
                    store::messages::list_held(c, inc, n)?,
                ))
            })
            .await?)
    }

    /// The `n` newest messages, newest first.
    pub async fn latest_messages(
        &self,
        caller: &Caller,
        org: &str,
        n: i64,
    ) -> Result<Vec<MessageRow>, AppError> {
        let a = self.authorize(caller, org)?;
        let inc = a.row.inc;
        Ok(self
            .store
            .read(move |c| store::messages::latest(c, inc, n))
            .await?)
    }

    /// Messages patients sent, oldest first.
    pub async fn inbound(
        &self,
        caller: &Caller,
        org: &str,
        page: Page,
    ) -> Result<Listing<InboundRow>, AppError> {
        let a = self.authorize(caller, org)?;
        let (inc, after) = (a.row.inc, page.plain()?);
        let rows = self
            .store
            .read(move |c| store::inbound::list(c, inc, after, page.limit))
            .await?;
        let next_cursor = page.next(rows.len(), rows.last().map(|r| r.seq));
        Ok(Listing { rows, next_cursor })
    }
}

/// A received message with the text of the message of ours it answers
/// (quoted, reacted to, or our last one to that contact).
#[derive(Debug, Clone)]
pub struct Reply {
    pub row: InboundRow,
    pub answers: Option<MessageRow>,
}

impl App {
    /// The `n` newest received messages, newest first, each with what it answers.
    pub async fn latest_replies(
        &self,
        caller: &Caller,
        org: &str,
        n: i64,
    ) -> Result<Vec<Reply>, AppError> {
        let a = self.authorize(caller, org)?;
        let inc = a.row.inc;
        Ok(self
            .store
            .read(move |c| {
                store::inbound::latest(c, inc, n)?
                    .into_iter()
                    .map(|row| {
                        let target = row
                            .in_reply_to
                            .clone()
                            .or_else(|| row.reaction_to.clone())
                            .or_else(|| row.last_outbound_id.clone());
                        let answers = match target {
                            Some(id) => store::messages::get(c, inc, &id)?,
                            None => None,
                        };
                        Ok(Reply { row, answers })
                    })
                    .collect()
            })
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_counted_in_characters() {
        assert!(
            check_key(&"ñ".repeat(200)).is_ok(),
            "200 characters, 400 bytes"
        );
        assert!(check_key(&"ñ".repeat(201)).is_err());
        assert!(check_key("").is_err());
        assert!(check_key("a\nb").is_err());
        assert!(check_key("cita-123/recordatorio").is_ok());
    }

    #[test]
    fn pages() {
        assert_eq!(
            Page::parse(None, None).unwrap(),
            Page {
                after: 0,
                after_due: None,
                limit: 100
            }
        );
        let due = Page::parse(None, Some("1800000000000.42")).unwrap();
        assert_eq!((due.after_due, due.after), (Some(1_800_000_000_000), 42));
        assert!(due.plain().is_err(), "not a cursor of the plain listings");
        for bad in ["1.", ".1", "1.2.3", "a.1", "-1.2"] {
            assert_eq!(
                Page::parse(None, Some(bad)).unwrap_err().code,
                ErrorCode::InvalidCursor,
                "{bad}"
            );
        }
        assert_eq!(Page::parse(Some("1000"), Some("7")).unwrap().after, 7);
        for bad in ["0", "1001", "-1", "x", ""] {
            assert_eq!(
                Page::parse(Some(bad), None).unwrap_err().code,
                ErrorCode::InvalidLimit
            );
        }
        assert_eq!(
            Page::parse(None, Some("-5")).unwrap_err().code,
            ErrorCode::InvalidCursor
        );
    }
}
