//! Messages: accept a send (validated, then written durably before the
//! answer), read one, list them in acceptance order with a cursor, list
//! received messages. An idempotency key makes a repeat of the same request
//! return the first message; the same key with a different request is refused.

use super::{App, AppError, ErrorCode};
use crate::auth::Caller;
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
}

/// An accepted send.
pub struct Accepted {
    pub message: MessageRow,
    /// The idempotency key was used before for this same request: this is
    /// the first message, nothing new was queued.
    pub replayed: bool,
}

/// Where a listing starts and how much it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub after: i64,
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
        let after = match cursor {
            None => 0,
            Some(c) => c.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                AppError::new(
                    ErrorCode::InvalidCursor,
                    "cursor must be a value returned as next_cursor",
                )
            })?,
        };
        Ok(Page { after, limit })
    }

    /// The cursor for the next page: the last row's sequence when the page is full.
    pub fn next(&self, len: usize, last_seq: Option<i64>) -> Option<i64> {
        if len as i64 == self.limit {
            last_seq
        } else {
            None
        }
    }
}

/// A page of rows and the cursor of the next one.
pub struct Listing<T> {
    pub rows: Vec<T>,
    pub next_cursor: Option<i64>,
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
        let inserted = self
            .outbox
            .accept(a.org(), phone.clone(), text.clone(), req.idempotency_key)
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
            Inserted::Existing(first) if first.to == phone && first.text == text => Ok(Accepted {
                message: first,
                replayed: true,
            }),
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
        let (inc, mid) = (a.row.inc, id.to_string());
        self.store
            .read(move |c| store::messages::get(c, inc, &mid))
            .await?
            .ok_or_else(|| {
                AppError::new(
                    ErrorCode::MessageNotFound,
                    format!("no message '{id}' in this organization"),
                )
            })
    }

    /// Messages in acceptance order, oldest first, optionally in one status.
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
                AppError::new(
                    ErrorCode::InvalidStatus,
                    "status must be one of queued, sent, delivered, read, failed",
                )
            })?),
        };
        let inc = a.row.inc;
        let rows = self
            .store
            .read(move |c| store::messages::list(c, inc, status, page.after, page.limit))
            .await?;
        let next_cursor = page.next(rows.len(), rows.last().map(|r| r.seq));
        Ok(Listing { rows, next_cursor })
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
        let inc = a.row.inc;
        let rows = self
            .store
            .read(move |c| store::inbound::list(c, inc, page.after, page.limit))
            .await?;
        let next_cursor = page.next(rows.len(), rows.last().map(|r| r.seq));
        Ok(Listing { rows, next_cursor })
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
                limit: 100
            }
        );
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
