//! The API's errors and request parsing. Every failure leaves as
//! `{"error":{"code":"…","message":"…"}}`; the one place a code becomes an
//! HTTP status is `status_of`. Bodies, paths and query strings are read by
//! extractors that answer in that envelope too (axum's own rejections are
//! plain text), so malformed JSON is a 400, a too-large body a 413 and bad
//! fields a 422.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use serde_json::{json, Map, Value};

use crate::app::{AppError, ErrorCode, Kind};

/// Largest request body accepted.
pub const BODY_LIMIT: usize = 64 * 1024;

/// An `AppError` on its way out as JSON.
#[derive(Debug)]
pub struct ApiError(pub AppError);

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError(AppError::new(code, message))
    }
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> ApiError {
        ApiError(e)
    }
}

/// The HTTP status of each kind of failure.
pub fn status_of(kind: Kind) -> StatusCode {
    match kind {
        Kind::BadRequest => StatusCode::BAD_REQUEST,
        Kind::Unauthorized => StatusCode::UNAUTHORIZED,
        Kind::Forbidden => StatusCode::FORBIDDEN,
        Kind::NotFound => StatusCode::NOT_FOUND,
        Kind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        Kind::Conflict => StatusCode::CONFLICT,
        Kind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        Kind::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
        Kind::TooMany => StatusCode::TOO_MANY_REQUESTS,
        Kind::Timeout => StatusCode::GATEWAY_TIMEOUT,
        Kind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Kind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let e = self.0;
        let mut r = (
            status_of(e.kind()),
            Json(json!({"error": {"code": e.code.as_str(), "message": e.message}})),
        )
            .into_response();
        if let Some(secs) = e.retry_after_s {
            r.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(secs),
            );
        }
        r
    }
}

/// A JSON object body. An empty body reads as `{}`.
pub struct Body(pub Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|r| {
            if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                too_large()
            } else {
                ApiError::new(
                    ErrorCode::BadBody,
                    format!("could not read the request body: {r}"),
                )
            }
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Body(Map::new()));
        }
        // Read strictly, in one pass: a field named twice would silently be
        // the last one (and two parsers of the same body could disagree).
        let mut de = serde_json::Deserializer::from_slice(&bytes);
        let v = serde::Deserialize::deserialize(&mut de)
            .and_then(|Strict(v)| de.end().map(|()| v))
            .map_err(|e| match e.classify() {
                serde_json::error::Category::Data => {
                    ApiError::new(ErrorCode::InvalidBody, e.to_string())
                }
                _ => ApiError::new(
                    ErrorCode::MalformedJson,
                    format!("request body is not valid JSON: {e}"),
                ),
            })?;
        if let Some((field, c)) = control_char(&v, "") {
            return Err(ApiError::new(
                ErrorCode::InvalidField,
                format!(
                    "field '{field}' holds a control character (U+{:04X}); only tab, newline and carriage return are allowed in texts",
                    c as u32
                ),
            ));
        }
        match v {
            Value::Object(m) => Ok(Body(m)),
            // `null`: no fields, as an empty body.
            Value::Null => Ok(Body(Map::new())),
            _ => Err(ApiError::new(
                ErrorCode::InvalidBody,
                "request body must be a JSON object",
            )),
        }
    }
}

/// A JSON document read into a `Value`, refusing an object that names a
/// key twice at any depth.
struct Strict(Value);

impl<'de> serde::Deserialize<'de> for Strict {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Strict, D::Error> {
        d.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> serde::de::Visitor<'de> for StrictVisitor {
    type Value = Strict;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("JSON")
    }

    fn visit_bool<E>(self, b: bool) -> Result<Strict, E> {
        Ok(Strict(Value::Bool(b)))
    }
    fn visit_i64<E>(self, n: i64) -> Result<Strict, E> {
        Ok(Strict(Value::from(n)))
    }
    fn visit_u64<E>(self, n: u64) -> Result<Strict, E> {
        Ok(Strict(Value::from(n)))
    }
    fn visit_f64<E>(self, n: f64) -> Result<Strict, E> {
        Ok(Strict(Value::from(n)))
    }
    fn visit_str<E>(self, s: &str) -> Result<Strict, E> {
        Ok(Strict(Value::String(s.to_string())))
    }
    fn visit_string<E>(self, s: String) -> Result<Strict, E> {
        Ok(Strict(Value::String(s)))
    }
    fn visit_unit<E>(self) -> Result<Strict, E> {
        Ok(Strict(Value::Null))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Strict, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Strict(Value::Array(items)))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Strict, A::Error> {
        let mut m = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if m.contains_key(&key) {
                return Err(serde::de::Error::custom(format!(
                    "field '{key}' appears twice in the body"
                )));
            }
            let Strict(v) = map.next_value()?;
            m.insert(key, v);
        }
        Ok(Strict(Value::Object(m)))
    }
}

/// The first string (value or key) under `v` holding a control character
/// other than tab, newline or carriage return: its field and the character.
fn control_char(v: &Value, at: &str) -> Option<(String, char)> {
    let bad = |s: &str| {
        s.chars()
            .find(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
    };
    match v {
        Value::String(s) => bad(s).map(|c| (at.to_string(), c)),
        Value::Array(a) => a.iter().find_map(|x| control_char(x, at)),
        Value::Object(m) => m.iter().find_map(|(k, x)| {
            let field = if at.is_empty() {
                k.clone()
            } else {
                format!("{at}.{k}")
            };
            match bad(k) {
                Some(c) => Some((field, c)),
                None => control_char(x, &field),
            }
        }),
        _ => None,
    }
}

pub fn too_large() -> ApiError {
    ApiError::new(
        ErrorCode::PayloadTooLarge,
        format!("request body is larger than {} KiB", BODY_LIMIT / 1024),
    )
}

impl Body {
    /// An optional string field; any other JSON type is a 422.
    pub fn opt_str(&self, field: &str) -> Result<Option<String>, ApiError> {
        match self.0.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(ApiError::new(
                ErrorCode::InvalidField,
                format!("field '{field}' must be a string"),
            )),
        }
    }

    /// A string or integer field read as text (ids such as `org_id: 4`).
    pub fn opt_id(&self, field: &str) -> Result<Option<String>, ApiError> {
        match self.0.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) if n.is_u64() || n.is_i64() => Ok(Some(n.to_string())),
            Some(_) => Err(ApiError::new(
                ErrorCode::InvalidField,
                format!("field '{field}' must be a string or an integer"),
            )),
        }
    }

    /// A moment (`send_at`, `send_before`): RFC 3339 text or whole Unix
    /// milliseconds; anything else is kept as unreadable for the service
    /// layer to refuse with the field's own code.
    pub fn opt_when(&self, field: &str) -> Option<crate::app::timing::When> {
        use crate::app::timing::When;
        match self.0.get(field) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(When::Text(s.clone())),
            Some(Value::Number(n)) => Some(n.as_i64().map_or(When::Unreadable, When::UnixMs)),
            Some(_) => Some(When::Unreadable),
        }
    }

    /// A phone number field: a string only (a JSON number loses its leading
    /// `+` and zeros, and can be negative).
    pub fn opt_phone(&self, field: &str) -> Result<Option<String>, ApiError> {
        match self.0.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(ApiError::new(
                ErrorCode::InvalidPhone,
                format!("field '{field}' must be a string with the phone number, e.g. \"+57 300 111 2233\""),
            )),
        }
    }
}

/// Path parameters, refused in the envelope when they do not decode.
pub struct PathParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for PathParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| PathParams(p.0))
            .map_err(|r| {
                ApiError::new(
                    ErrorCode::InvalidPath,
                    format!("the address cannot be read: {}", r.body_text()),
                )
            })
    }
}

/// The query string as a map, refused in the envelope when it does not decode.
pub struct QueryMap(pub HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for QueryMap {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map(|q| QueryMap(q.0))
            .map_err(|r| {
                ApiError::new(
                    ErrorCode::InvalidQuery,
                    format!("the query string cannot be read: {}", r.body_text()),
                )
            })
    }
}

impl QueryMap {
    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The error table of docs/api.md gives each code the status this file answers with.
    #[test]
    fn the_readme_states_each_codes_http_status() {
        let readme = include_str!("../../../../docs/api.md");
        for c in ErrorCode::ALL {
            let row = readme
                .lines()
                .find(|l| l.starts_with(&format!("| `{}` |", c.as_str())))
                .unwrap_or_else(|| panic!("{c} is not in docs/api.md"));
            let status = row.split('|').nth(2).unwrap_or("").trim();
            assert_eq!(status, status_of(c.kind()).as_u16().to_string(), "{c}");
        }
    }
}
