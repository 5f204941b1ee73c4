//! The floors, drawn from the imports: every top-level module of
//! `crates/wagate/src` and `crates/wa-sim/src` and the modules it names
//! (`crate::x`, `use crate::{x, y}`, `super::x` in a top-level file, the
//! crate's own name in its binary), comments and string literals left out.
//! The rules: no module imports one that imports it back (no cycles, in
//! either crate); no edge climbs from a lower floor to a higher one; the
//! stores (`db`, `store`, `devstore`) never name `cluster`; only `engine`
//! and `devstore` name the WhatsApp library; nothing below `app` names
//! `api`, `web`, `forward`, `server` or the node loop. The checker is tested
//! on a deliberately broken graph first, so a rule that cannot fail shows.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The gateway's floors, lowest first. A module may name one on its own
/// floor or below.
const FLOORS: &[&[&str]] = &[
    // ground: plain values and helpers every floor may use
    &[
        "db", "link", "times", "phone", "metrics", "memory", "notify", "qr", "config",
    ],
    &["auth", "datadir"],
    // the stores
    &["store", "devstore"],
    &["events"],
    // below the service layer: the cluster's tables and view, the WhatsApp engine
    &["cluster", "engine", "http_client"],
    // what runs links and sends
    &["session", "outbox", "webhook", "retention"],
    // the service layer
    &["app"],
    // the surfaces
    &["api", "web", "forward", "listener"],
    // composition: the binary's commands, the server, the node loop
    &[
        "server",
        "node",
        "cli",
        "backup",
        "doctor",
        "migrate_pg",
        "demo",
        "main",
        "lib",
    ],
];

/// Modules that may name the WhatsApp library's crates.
const LIBRARY_USERS: &[&str] = &["engine", "devstore"];
const LIBRARY: &[&str] = &["whatsapp_rust", "wacore", "waproto"];
/// The stores, which never name the cluster.
const STORES: &[&str] = &["db", "store", "devstore"];
/// What only the surfaces and composition may name.
const ABOVE_APP: &[&str] = &["api", "web", "forward", "server", "node", "listener"];

/// `s` without comments, and with string and char literals emptied.
fn code_only(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            let mut depth = 0;
            while i < b.len() {
                if b[i..].starts_with(b"/*") {
                    depth += 1;
                    i += 2;
                } else if b[i..].starts_with(b"*/") {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if b[i] == b'r' && matches!(b.get(i + 1), Some(b'"') | Some(b'#')) {
            // A raw string: r"…", r#"…"#.
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&b'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&b'"') {
                out.push('r');
                i += 1;
                continue;
            }
            j += 1;
            let close: Vec<u8> = std::iter::once(b'"')
                .chain(std::iter::repeat_n(b'#', hashes))
                .collect();
            while j < b.len() && !b[j..].starts_with(&close) {
                j += 1;
            }
            i = j + close.len();
            out.push_str("\"\"");
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else {
            // Keep the character (multi-byte ones whole).
            let ch = s[i..].chars().next().unwrap_or(' ');
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

fn ident_at(s: &str) -> Option<&str> {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    (end > 0 && !s.as_bytes()[0].is_ascii_digit()).then(|| &s[..end])
}

/// The first names after each `root::` in `code` (`root::{a, b::c}` gives a, b).
fn named_after(code: &str, root: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let pat = format!("{root}::");
    let mut from = 0;
    while let Some(at) = code[from..].find(&pat) {
        let start = from + at;
        from = start + pat.len();
        // A whole word: not `xcrate::`.
        if code[..start]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            continue;
        }
        let rest = &code[from..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let mut part = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    _ => {}
                }
                if depth == 0 || (c == ',' && depth == 1) {
                    if let Some(n) = ident_at(part.trim_start()) {
                        out.insert(n.to_string());
                    }
                    part.clear();
                    if depth == 0 {
                        break;
                    }
                } else {
                    part.push(c);
                }
            }
        } else if let Some(n) = ident_at(rest) {
            out.insert(n.to_string());
        }
    }
    out
}

/// Each top-level module's source, code only: `src/x.rs` and `src/x/**`.
fn modules(src: &Path) -> BTreeMap<String, Vec<(String, String)>> {
    fn walk(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, files);
            } else if p.extension().is_some_and(|x| x == "rs") {
                files.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(src, &mut files);
    let mut out: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(src).unwrap().to_string_lossy().to_string();
        let top = rel
            .split('/')
            .next()
            .unwrap()
            .trim_end_matches(".rs")
            .to_string();
        let code = code_only(&std::fs::read_to_string(&f).unwrap());
        out.entry(top).or_default().push((rel, code));
    }
    out
}

/// Module → the modules (and external crates among `externals`) it names.
type Graph = BTreeMap<String, BTreeSet<String>>;

fn graph(mods: &BTreeMap<String, Vec<(String, String)>>, krate: &str, externals: &[&str]) -> Graph {
    let mut g = Graph::new();
    for (m, files) in mods {
        let named = g.entry(m.clone()).or_default();
        for (rel, code) in files {
            let mut names = named_after(code, "crate");
            names.extend(named_after(code, krate));
            if !rel.contains('/') {
                names.extend(named_after(code, "super"));
            }
            for n in names {
                if n != *m && mods.contains_key(&n) {
                    named.insert(n);
                }
            }
            for x in externals {
                if !named_after(code, x).is_empty()
                    || code.contains(&format!("use {x};"))
                    || code.contains(&format!("extern crate {x}"))
                {
                    named.insert(format!("extern:{x}"));
                }
            }
        }
    }
    g
}

/// Every cycle's modules (strongly connected parts of more than one).
fn cycles(g: &Graph) -> Vec<Vec<String>> {
    let reach = |from: &str| -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.to_string()];
        while let Some(n) = todo.pop() {
            for m in g.get(&n).into_iter().flatten() {
                if g.contains_key(m) && seen.insert(m.clone()) {
                    todo.push(m.clone());
                }
            }
        }
        seen
    };
    let mut found: Vec<Vec<String>> = Vec::new();
    for m in g.keys() {
        let from_m = reach(m);
        let mut part: Vec<String> = from_m
            .iter()
            .filter(|n| *n != m && reach(n).contains(m))
            .cloned()
            .collect();
        if !part.is_empty() {
            part.push(m.clone());
            part.sort();
            if !found.contains(&part) {
                found.push(part);
            }
        }
    }
    found
}

fn floor_of(m: &str) -> Option<usize> {
    FLOORS.iter().position(|f| f.contains(&m))
}

/// Every broken rule, as sentences.
fn check(g: &Graph) -> Vec<String> {
    let mut broken = Vec::new();
    for part in cycles(g) {
        broken.push(format!("import cycle: {}", part.join(" ↔ ")));
    }
    for (m, named) in g {
        let Some(here) = floor_of(m) else {
            broken.push(format!("module {m} is on no floor (add it to FLOORS)"));
            continue;
        };
        let app = floor_of("app").unwrap_or(0);
        for n in named {
            if let Some(x) = n.strip_prefix("extern:") {
                if LIBRARY.contains(&x) && !LIBRARY_USERS.contains(&m.as_str()) {
                    broken.push(format!("{m} names {x}: only engine and devstore may"));
                }
                continue;
            }
            let Some(there) = floor_of(n) else { continue };
            if there > here {
                broken.push(format!(
                    "{m} (floor {here}) names {n} (floor {there}): an edge that climbs"
                ));
            }
            if STORES.contains(&m.as_str()) && n == "cluster" {
                broken.push(format!("{m} names cluster: the stores sit below it"));
            }
            if here < app && ABOVE_APP.contains(&n.as_str()) {
                broken.push(format!("{m} is below app but names {n}"));
            }
        }
    }
    broken
}

fn src(krate: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(krate)
        .join("src")
}

#[test]
fn the_checker_catches_each_kind_of_broken_import() {
    let code = |s: &str| vec![("x.rs".to_string(), code_only(s))];
    let mut mods = BTreeMap::new();
    mods.insert(
        "store".into(),
        code("use crate::cluster::Held; // crate::api in a comment\n"),
    );
    mods.insert(
        "cluster".into(),
        code("use crate::{store::Store, db};\nfn f() { crate::app::x(); let _ = \"crate::web\"; }"),
    );
    mods.insert("db".into(), code("use whatsapp_rust::Client;"));
    mods.insert("app".into(), code("use crate::cluster;"));
    mods.insert("session".into(), code("fn f() { crate::api::x() }"));
    mods.insert("api".into(), code(""));
    mods.insert("web".into(), code(""));
    let g = graph(&mods, "wagate", LIBRARY);
    assert_eq!(
        g["cluster"],
        ["app", "db", "store"].map(String::from).into(),
        "comments and strings are not imports"
    );
    let broken = check(&g);
    let has = |what: &str| broken.iter().any(|b| b.contains(what));
    assert!(has("import cycle: app ↔ cluster ↔ store"), "{broken:#?}");
    assert!(has("store names cluster"), "{broken:#?}");
    assert!(has("db names whatsapp_rust"), "{broken:#?}");
    assert!(has("cluster (floor 4) names app (floor 6)"), "{broken:#?}");
    assert!(has("session is below app but names api"), "{broken:#?}");
    assert!(!has("names web"), "a string is not an import: {broken:#?}");
}

#[test]
fn the_gateway_has_no_cycle_and_no_edge_that_climbs() {
    let mods = modules(&src("wagate"));
    let g = graph(&mods, "wagate", LIBRARY);
    let edges: usize = g
        .values()
        .map(|n| n.iter().filter(|x| !x.starts_with("extern:")).count())
        .sum();
    println!("wagate: {} modules, {edges} import edges", g.len());
    let broken = check(&g);
    assert!(broken.is_empty(), "{}", broken.join("\n"));
    // The graph is real: the floors' known edges are seen.
    assert!(
        g["app"].contains("store") && g["server"].contains("app"),
        "{g:?}"
    );
}

#[test]
fn wa_sim_has_no_import_cycle() {
    let mods = modules(&src("wa-sim"));
    let g = graph(&mods, "wa_sim", &[]);
    let found = cycles(&g);
    assert!(found.is_empty(), "wa-sim import cycles: {found:?}");
    assert!(g["conn"].contains("sim"), "{g:?}");
}
