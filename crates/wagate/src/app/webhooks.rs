//! An org's webhook endpoints: add one (its URL checked against the SSRF
//! guard, a signing secret generated and shown once unless given), list,
//! delete, rotate the secret (the old one keeps signing for a day), list an
//! endpoint's deliveries, and send deliveries again (one, or all since a
//! moment).

use serde_json::Value;

use super::{App, AppError, ErrorCode};
use crate::auth::Caller;
use crate::events::Kind;
use crate::store::webhooks::{self as rows, Delivery, DeliveryStatus, Webhook};
use crate::store::{self};
use crate::webhook::{sign, target};

/// Most endpoints per org.
pub const MAX_ENDPOINTS: usize = 10;
/// How long a rotated-out secret keeps signing.
pub const ROTATION_GRACE_MS: i64 = 24 * 3_600_000;

/// What adding an endpoint needs.
#[derive(Debug, Default)]
pub struct NewWebhook {
    pub url: Option<String>,
    pub events: Option<Value>,
    pub secret: Option<String>,
}

/// An endpoint with its delivery counts.
#[derive(Debug, Clone)]
pub struct WebhookView {
    pub hook: Webhook,
    pub pending: i64,
    pub delivered: i64,
    pub failed: i64,
}

fn bad_url(why: impl std::fmt::Display) -> AppError {
    AppError::new(ErrorCode::InvalidWebhookUrl, format!("url: {why}"))
}

fn not_found(id: &str) -> AppError {
    AppError::new(
        ErrorCode::WebhookNotFound,
        format!("no webhook '{id}' in this organization"),
    )
}

fn events_of(v: Option<&Value>) -> Result<Option<Vec<String>>, AppError> {
    let bad = || {
        AppError::new(
            ErrorCode::InvalidField,
            format!(
                "events must be null or a list of: {}",
                Kind::ALL.map(Kind::as_str).join(", ")
            ),
        )
    };
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(a)) if !a.is_empty() => {
            let mut out = Vec::new();
            for e in a {
                let k = e
                    .as_str()
                    .filter(|k| Kind::parse(k).is_some())
                    .ok_or_else(bad)?;
                if !out.iter().any(|o| o == k) {
                    out.push(k.to_string());
                }
            }
            Ok(Some(out))
        }
        _ => Err(bad()),
    }
}

impl App {
    /// Add an endpoint; the secret comes back in the answer (and never again).
    pub async fn create_webhook(
        &self,
        caller: &Caller,
        org: &str,
        req: NewWebhook,
    ) -> Result<Webhook, AppError> {
        let a = self.authorize(caller, org)?;
        let url = req.url.ok_or_else(|| bad_url("is required"))?;
        let t = target::parse_url(url.trim()).map_err(bad_url)?;
        let guard = self.webhook_guard();
        target::resolve(&guard, &t).await.map_err(bad_url)?;
        let events = events_of(req.events.as_ref())?;
        let secret = match req.secret {
            None => sign::new_secret(),
            Some(s) if (16..=200).contains(&s.chars().count()) && !s.chars().any(char::is_control) => s,
            Some(_) => {
                return Err(AppError::new(
                    ErrorCode::InvalidField,
                    "secret must be 16–200 characters with no control characters (leave it out to have one made)",
                ))
            }
        };
        let hook = Webhook {
            id: format!("whk_{}", uuid::Uuid::new_v4().simple()),
            inc: a.row.inc,
            url: url.trim().to_string(),
            events,
            secret,
            prev_secret: None,
            prev_until_ms: None,
            disabled: None,
            created_ms: store::now_ms(),
        };
        let (h, inc) = (hook.clone(), a.row.inc);
        let added = self
            .store
            .write(move |tx| {
                if rows::list(tx, inc)?.len() >= MAX_ENDPOINTS {
                    return Ok(false);
                }
                rows::insert(tx, &h)?;
                Ok(true)
            })
            .await?;
        if !added {
            return Err(AppError::new(
                ErrorCode::TooManyWebhooks,
                format!("an organization has at most {MAX_ENDPOINTS} webhooks; delete one first"),
            ));
        }
        tracing::info!(org = %a.row.id, webhook = %hook.id, "webhook added");
        Ok(hook)
    }

    pub async fn webhooks(&self, caller: &Caller, org: &str) -> Result<Vec<WebhookView>, AppError> {
        let a = self.authorize(caller, org)?;
        let inc = a.row.inc;
        Ok(self
            .store
            .read(move |c| {
                rows::list(c, inc)?
                    .into_iter()
                    .map(|hook| {
                        let (pending, delivered, failed) = rows::counts(c, &hook.id)?;
                        Ok(WebhookView {
                            hook,
                            pending,
                            delivered,
                            failed,
                        })
                    })
                    .collect()
            })
            .await?)
    }

    pub async fn webhook(
        &self,
        caller: &Caller,
        org: &str,
        id: &str,
    ) -> Result<WebhookView, AppError> {
        let hook = self.hook(caller, org, id).await?;
        let h = hook.id.clone();
        let (pending, delivered, failed) = self.store.read(move |c| rows::counts(c, &h)).await?;
        Ok(WebhookView {
            hook,
            pending,
            delivered,
            failed,
        })
    }

    /// One of the org's endpoints, without its counts.
    async fn hook(&self, caller: &Caller, org: &str, id: &str) -> Result<Webhook, AppError> {
        let a = self.authorize(caller, org)?;
        let (inc, i) = (a.row.inc, id.to_string());
        self.store
            .read(move |c| rows::get(c, inc, &i))
            .await?
            .ok_or_else(|| not_found(id))
    }

    pub async fn delete_webhook(
        &self,
        caller: &Caller,
        org: &str,
        id: &str,
    ) -> Result<(), AppError> {
        let a = self.authorize(caller, org)?;
        let (inc, i) = (a.row.inc, id.to_string());
        if self
            .store
            .write(move |tx| rows::delete(tx, inc, &i))
            .await?
        {
            Ok(())
        } else {
            Err(not_found(id))
        }
    }

    /// A new secret (shown once); the old one signs too for a day.
    pub async fn rotate_webhook_secret(
        &self,
        caller: &Caller,
        org: &str,
        id: &str,
    ) -> Result<Webhook, AppError> {
        let a = self.authorize(caller, org)?;
        let (inc, i, secret) = (a.row.inc, id.to_string(), sign::new_secret());
        let until = store::now_ms() + ROTATION_GRACE_MS;
        let s = secret.clone();
        let hook = self
            .store
            .write(move |tx| {
                if !rows::rotate(tx, inc, &i, &s, until)? {
                    return Ok(None);
                }
                rows::get(tx, inc, &i)
            })
            .await?;
        hook.ok_or_else(|| not_found(id))
    }

    /// An endpoint's deliveries, newest first (`before`: a delivery seq).
    pub async fn deliveries(
        &self,
        caller: &Caller,
        org: &str,
        id: &str,
        status: Option<&str>,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<Delivery>, AppError> {
        let hook = self.hook(caller, org, id).await?;
        let status = match status {
            None => None,
            Some(s) => Some(DeliveryStatus::parse(s).ok_or_else(|| {
                AppError::new(
                    ErrorCode::InvalidStatus,
                    "status must be one of pending, delivered, failed",
                )
            })?),
        };
        let before = before.unwrap_or(i64::MAX);
        Ok(self
            .store
            .read(move |c| rows::list_deliveries(c, &hook.id, status, before, limit))
            .await?)
    }

    /// Send one delivery again now (`delivery`), or every one made since
    /// `since_ms`; how many were queued.
    pub async fn redeliver(
        &self,
        caller: &Caller,
        org: &str,
        id: &str,
        delivery: Option<i64>,
        since_ms: Option<i64>,
    ) -> Result<usize, AppError> {
        let hook = self.hook(caller, org, id).await?;
        if hook.disabled.is_some() {
            return Err(AppError::new(
                ErrorCode::WebhookDisabled,
                "this webhook is disabled (its receiver answered 410 Gone); add it again to receive events",
            ));
        }
        let now = store::now_ms();
        let n = self
            .store
            .write(move |tx| rows::requeue(tx, &hook.id, delivery, since_ms, now))
            .await?;
        self.webhook_wake.notify_one();
        if delivery.is_some() && n == 0 {
            return Err(AppError::new(
                ErrorCode::DeliveryNotFound,
                "no such delivery for this webhook",
            ));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn event_filters_name_known_kinds_once() {
        assert_eq!(events_of(None).unwrap(), None);
        assert_eq!(
            events_of(Some(&json!([
                "message.received",
                "message.received",
                "send.limited"
            ])))
            .unwrap(),
            Some(vec![
                "message.received".to_string(),
                "send.limited".to_string()
            ])
        );
        for bad in [
            json!([]),
            json!(["nope"]),
            json!("message.status"),
            json!([1]),
        ] {
            assert!(events_of(Some(&bad)).is_err(), "{bad}");
        }
    }
}
