//! `/openapi.json`: the gateway describes every route it serves, and serves
//! every route it describes; the endpoint table of docs/api.md names the same set.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::common::{Server, ADMIN};

const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

fn document(s: &Server) -> Value {
    let (st, doc) = s.call("GET", "/openapi.json", None, None);
    assert_eq!(st, 200, "{doc}");
    doc
}

/// `METHOD /path` for every operation in the document.
fn described(doc: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for m in METHODS {
            if item.get(m.to_lowercase()).is_some() {
                out.insert(format!("{m} {path}"));
            }
        }
    }
    out
}

/// `{org}`, `{dlv}` … all read as `{}`.
fn shape(path: &str) -> String {
    path.split('/')
        .map(|seg| if seg.starts_with('{') { "{}" } else { seg })
        .collect::<Vec<_>>()
        .join("/")
}

#[test]
fn the_document_is_openapi_3_1_and_needs_no_token() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    let doc = document(&s);
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["title"], "wagate");
    assert_eq!(
        doc["components"]["securitySchemes"]["token"]["scheme"], "bearer",
        "{}",
        doc["components"]
    );
    // Every error code is named in the document's list of codes.
    let codes = &doc["components"]["schemas"]["ErrorCodeName"]["enum"];
    for code in [
        "org_not_found",
        "invalid_send_at",
        "rate_limited",
        "internal",
    ] {
        assert!(
            codes.as_array().unwrap().iter().any(|c| c == code),
            "{code}"
        );
    }
    // An operation that takes a body lists the statuses a bad body gets.
    let send = &doc["paths"]["/v1/orgs/{org}/messages"]["post"];
    for status in ["202", "400", "401", "403", "404", "413", "422"] {
        assert!(send["responses"].get(status).is_some(), "{status}: {send}");
    }
    assert!(send["security"].is_array(), "{send}");
    assert_eq!(send["parameters"][0]["name"], "org");
}

/// Each described path answers each described method (not `not_found` nor
/// `method_not_allowed`), and every other method with `method_not_allowed`:
/// a route served but left out of the document, or described but not
/// served, fails here.
#[test]
fn every_served_route_is_described_and_every_described_one_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    let doc = document(&s);
    let ops = described(&doc);
    assert!(ops.len() >= 35, "{} operations: {ops:?}", ops.len());
    for path in doc["paths"].as_object().unwrap().keys() {
        // Ids that do not exist: a served route answers 404 with its own
        // code (org_not_found …), never the router's `not_found`.
        let concrete: String = path
            .split('/')
            .map(|seg| if seg.starts_with('{') { "nope" } else { seg })
            .collect::<Vec<_>>()
            .join("/");
        for m in METHODS {
            let (st, v) = s.call(m, &concrete, Some(ADMIN), Some("{}"));
            let code = v["error"]["code"].as_str().unwrap_or("");
            if ops.contains(&format!("{m} {path}")) {
                assert!(
                    code != "not_found" && code != "method_not_allowed",
                    "{m} {path} is described but not served: {st} {v}"
                );
            } else {
                assert_eq!(
                    (st, code),
                    (405, "method_not_allowed"),
                    "{m} {path} is served but not described: {v}"
                );
            }
        }
    }
}

/// The "HTTP API" table of docs/api.md names every described operation and no
/// other (`…/x` there is short for `/v1/orgs/{org}/x`).
#[test]
fn the_api_docs_list_the_same_endpoints_as_the_document() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    let doc = document(&s);
    let readme = include_str!("../../../../docs/api.md");
    let start = readme
        .find("\n## HTTP API")
        .expect("docs/api.md has ## HTTP API");
    let section = &readme[start + 1..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |i| i + 3)];
    let mut listed = BTreeSet::new();
    for row in section.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = row.split('|').collect();
        let mut last_path = String::new();
        for token in cells[1].split('`').skip(1).step_by(2) {
            let Some((method, rest)) = token.split_once(' ') else {
                continue;
            };
            if !METHODS.contains(&method) {
                continue;
            }
            let mut path = rest
                .split(['[', '?'])
                .next()
                .unwrap_or("")
                .trim()
                .to_string();
            if path == "…" {
                path = last_path.clone();
            } else if let Some(tail) = path.strip_prefix('…') {
                path = format!("/v1/orgs/{{org}}{tail}");
            }
            listed.insert(format!("{method} {}", shape(&path)));
            last_path = path;
        }
    }
    let described: BTreeSet<String> = described(&doc)
        .into_iter()
        .map(|op| {
            let (m, p) = op.split_once(' ').unwrap();
            format!("{m} {}", shape(p))
        })
        .collect();
    let missing: Vec<_> = described.difference(&listed).collect();
    let extra: Vec<_> = listed.difference(&described).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "described but not in docs/api.md: {missing:?}; in docs/api.md but not described: {extra:?}"
    );
}
