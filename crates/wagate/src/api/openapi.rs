//! The API's OpenAPI 3.1 description, served at `/openapi.json`. Each route
//! is registered with its handler's `#[utoipa::path]` (`api::routes`), so a
//! route cannot be served without being described. This file adds what is
//! the same everywhere: the bearer token, the path parameters, and the error
//! answers each operation can give, each status with the codes it carries
//! (from `ErrorCode::ALL`, so the list cannot drift from the code).

use utoipa::openapi::path::{Operation, Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, InfoBuilder, OpenApi, OpenApiBuilder, Ref, RefOr, Required,
    ResponseBuilder,
};
use utoipa::{PartialSchema, ToSchema};

use super::error::status_of;
use super::schema::{ErrorBody, ErrorCodeName, ErrorDetail};
use crate::app::{ErrorCode, Kind};

/// Operations anyone may call, without a token.
const OPEN: &[&str] = &["/healthz", "/readyz", "/openapi.json"];

/// The document's frame: title, version, the token scheme.
pub fn base() -> OpenApi {
    let mut doc = OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("wagate")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "A self-hosted, multi-tenant WhatsApp gateway. Every call but the \
                     health checks and this document takes `Authorization: Bearer <token>`: \
                     the admin token, or an organization's own token (which reaches that \
                     organization only). Every error answers \
                     `{\"error\":{\"code\",\"message\"}}`; the code is for programs, the \
                     message for people.",
                ))
                .build(),
        )
        .build();
    let mut components = ComponentsBuilder::new()
        .security_scheme(
            "token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The admin token (`--admin-token`) or an organization's token",
                    ))
                    .build(),
            ),
        )
        .schema(ErrorBody::name(), ErrorBody::schema())
        .schema(ErrorDetail::name(), ErrorDetail::schema())
        .schema(ErrorCodeName::name(), ErrorCodeName::schema());
    // Each event kind's data, as the stream and webhooks send it.
    for kind in crate::events::Kind::ALL {
        let (name, schema) = kind.schema();
        components = components.schema(name, schema);
    }
    doc.components = Some(components.build());
    doc
}

/// What a path parameter is.
fn path_parameter(name: &str) -> Parameter {
    let about = match name {
        "org" => "the organization's id",
        "id" => "the message's or webhook's id",
        "phone" => "a phone number in international form (`573001112233`, `+57 300…`)",
        "delivery" => "a delivery's id (`dlv_<number>`)",
        _ => "",
    };
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Path)
        .required(Required::True)
        .description(Some(about))
        .schema(Some(String::schema()))
        .build()
}

/// The statuses any operation can answer with an error, by what it takes.
fn error_statuses(path: &str, op: &Operation) -> Vec<Kind> {
    let mut kinds = vec![
        // A broken request (bad bytes in the path or query, an unreadable body).
        Kind::BadRequest,
        // A body declared larger than 64 KiB is refused on any route.
        Kind::TooLarge,
        Kind::Internal,
        // `too_many_connections`, `not_ready`, `session_stopped`.
        Kind::Unavailable,
    ];
    if !OPEN.contains(&path) {
        kinds.extend([Kind::Unauthorized, Kind::Forbidden]);
    }
    if path.contains('{') || path == "/api/status" || path == "/api/send-message" {
        kinds.push(Kind::NotFound);
    }
    let takes_input = op.request_body.is_some()
        || op.parameters.as_ref().is_some_and(|ps| {
            ps.iter()
                .any(|p| matches!(p, RefOr::T(p) if p.parameter_in != ParameterIn::Path))
        });
    if takes_input || path.contains('{') {
        kinds.push(Kind::Invalid);
    }
    kinds
}

/// The sentence for an error status: each code it carries.
fn about(kind: Kind) -> String {
    let codes: Vec<String> = ErrorCode::ALL
        .iter()
        .filter(|c| c.kind() == kind)
        .map(|c| format!("`{}`: {}", c.as_str(), c.about()))
        .collect();
    codes.join("; ")
}

/// The finished document: tokens, path parameters and error answers added
/// to every operation.
pub fn finish(mut doc: OpenApi) -> OpenApi {
    let token = SecurityRequirement::new("token", Vec::<String>::new());
    let error_content = RefOr::T(
        ContentBuilder::new()
            .schema(Some(RefOr::Ref(Ref::from_schema_name(ErrorBody::name()))))
            .build(),
    );
    for (path, item) in doc.paths.paths.iter_mut() {
        let names: Vec<String> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}').map(String::from))
            .collect();
        let ops = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for op in ops.into_iter().flatten() {
            let params = op.parameters.get_or_insert_with(Vec::new);
            for n in names.iter().rev() {
                if !params
                    .iter()
                    .any(|p| matches!(p, RefOr::T(p) if &p.name == n))
                {
                    params.insert(0, RefOr::T(path_parameter(n)));
                }
            }
            if !OPEN.contains(&path.as_str()) {
                op.security = Some(vec![token.clone()]);
            }
            for kind in error_statuses(path, op) {
                op.responses
                    .responses
                    .entry(code(kind))
                    .or_insert_with(|| RefOr::T(ResponseBuilder::new().build()));
            }
            // Every error status: the error body, and the codes it carries
            // (the operation's own words when it named them).
            for (status, entry) in op.responses.responses.iter_mut() {
                let Some(kind) = kind_of(status) else {
                    continue;
                };
                if let RefOr::T(r) = entry {
                    if r.description.is_empty() {
                        r.description = about(kind);
                    }
                    r.content
                        .entry("application/json".into())
                        .or_insert_with(|| error_content.clone());
                }
            }
        }
    }
    doc
}

/// An error kind's HTTP status, as the document's key.
fn code(kind: Kind) -> String {
    status_of(kind).as_u16().to_string()
}

/// The kind of failure an error status stands for.
fn kind_of(status: &str) -> Option<Kind> {
    ErrorCode::ALL
        .iter()
        .map(|c| c.kind())
        .find(|k| code(*k) == status)
}
