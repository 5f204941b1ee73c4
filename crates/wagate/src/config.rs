//! The configuration file: `--config wagate.toml` (or `WAGATE_CONFIG`) sets
//! any option of `wagate serve`, and the global `data`, by its long name
//! (`listen = "0.0.0.0:8080"`, `max-connections = 2048`; `_` for `-` also
//! works). Precedence: flags > environment > file > defaults. The file is
//! read before the command line is parsed and each of its keys becomes the
//! option's environment variable when that variable is not already set, so
//! the one parser applies the one order. `wagate config check` prints the
//! resulting configuration with where each value came from, secrets
//! masked.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

/// Options whose values are never printed.
const SECRETS: [&str; 3] = ["admin-token", "token", "database"];

/// The `--config` path on the command line (`--config X` or `--config=X`),
/// else in `WAGATE_CONFIG`.
pub fn path_from(args: &[OsString]) -> Option<PathBuf> {
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        let s = a.to_string_lossy();
        if s == "--" {
            break;
        }
        if s == "--config" {
            return it.next().map(PathBuf::from);
        }
        if let Some(v) = s.strip_prefix("--config=") {
            return Some(PathBuf::from(v));
        }
    }
    std::env::var_os("WAGATE_CONFIG").map(PathBuf::from)
}

/// An option the file may set: its long name and environment variable.
#[derive(Debug, Clone)]
pub struct Settable {
    pub long: String,
    pub env: String,
}

/// Read `path` and return (environment variable, value) for each key, in
/// the file's order; unknown keys and values that are not scalars are
/// refused with the line's key and the known names.
pub fn read(path: &Path, settable: &[Settable]) -> anyhow::Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the configuration file {}", path.display()))?;
    let table: toml::Table =
        toml::from_str(&text).with_context(|| format!("{} is not valid TOML", path.display()))?;
    let mut out = vec![];
    for (key, value) in table {
        let long = key.replace('_', "-");
        let Some(opt) = settable.iter().find(|s| s.long == long) else {
            let known: Vec<&str> = settable.iter().map(|s| s.long.as_str()).collect();
            bail!(
                "{}: unknown option `{key}`; the file may set: {}",
                path.display(),
                known.join(", ")
            );
        };
        let v = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Array(a) if a.iter().all(|v| v.is_str()) => a
                .iter()
                .filter_map(|v| v.as_str())
                .collect::<Vec<_>>()
                .join(","),
            // A JSON option (default-policy) may be written as a TOML table.
            toml::Value::Table(t) if long == "default-policy" => serde_json::to_string(&t)?,
            other => bail!(
                "{}: `{key}` = {other}: give a string, a number or true/false",
                path.display()
            ),
        };
        out.push((opt.env.clone(), v));
    }
    Ok(out)
}

/// What `config check` prints: one line per option, `name = value  # source`.
pub fn describe(rows: &[(String, Option<String>, &'static str)]) -> String {
    let mut s = String::new();
    let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    for (name, value, source) in rows {
        let shown = match value {
            None => "(not set)".to_string(),
            Some(_) if SECRETS.contains(&name.as_str()) => "******** (set)".to_string(),
            Some(v) => format!("{v:?}"),
        };
        s.push_str(&format!("{name:<width$} = {shown}  # {source}\n"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settable() -> Vec<Settable> {
        [
            "listen",
            "max-connections",
            "offline",
            "webhook-allow",
            "default-policy",
        ]
        .iter()
        .map(|l| Settable {
            long: l.to_string(),
            env: format!("WAGATE_{}", l.to_uppercase().replace('-', "_")),
        })
        .collect()
    }

    #[test]
    fn keys_become_environment_values() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("w.toml");
        std::fs::write(
            &p,
            "listen = \"0.0.0.0:9000\"\nmax_connections = 2048\noffline = true\nwebhook-allow = [\"127.0.0.1\", \"10.0.0.0/8\"]\n[default-policy]\nmin_gap_ms = 20000\n",
        )
        .unwrap();
        let got = read(&p, &settable()).unwrap();
        let get = |k: &str| got.iter().find(|(e, _)| e == k).map(|(_, v)| v.as_str());
        assert_eq!(get("WAGATE_LISTEN"), Some("0.0.0.0:9000"));
        assert_eq!(get("WAGATE_MAX_CONNECTIONS"), Some("2048"));
        assert_eq!(get("WAGATE_OFFLINE"), Some("true"));
        assert_eq!(get("WAGATE_WEBHOOK_ALLOW"), Some("127.0.0.1,10.0.0.0/8"));
        assert_eq!(get("WAGATE_DEFAULT_POLICY"), Some("{\"min_gap_ms\":20000}"));
    }

    #[test]
    fn an_unknown_key_or_bad_toml_is_named() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("w.toml");
        std::fs::write(&p, "lisen = \"x\"\n").unwrap();
        let e = format!("{:#}", read(&p, &settable()).unwrap_err());
        assert!(
            e.contains("unknown option `lisen`") && e.contains("listen"),
            "{e}"
        );
        std::fs::write(&p, "listen = \n").unwrap();
        let e = format!("{:#}", read(&p, &settable()).unwrap_err());
        assert!(e.contains("not valid TOML"), "{e}");
        std::fs::write(&p, "listen = [1, 2]\n").unwrap();
        let e = format!("{:#}", read(&p, &settable()).unwrap_err());
        assert!(e.contains("give a string"), "{e}");
    }

    #[test]
    fn secrets_are_masked() {
        let s = describe(&[
            ("admin-token".into(), Some("hunter2".into()), "file"),
            ("listen".into(), Some("127.0.0.1:8080".into()), "default"),
            ("wa-url".into(), None, "default"),
        ]);
        assert!(!s.contains("hunter2"), "{s}");
        assert!(s.contains("******** (set)"));
        assert!(s.contains("\"127.0.0.1:8080\"  # default"));
        assert!(s.contains("(not set)"));
    }

    #[test]
    fn the_config_path_is_found_on_the_command_line() {
        let a = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(
            path_from(&a(&["wagate", "--config", "/etc/w.toml", "serve"])),
            Some(PathBuf::from("/etc/w.toml"))
        );
        assert_eq!(
            path_from(&a(&["wagate", "serve", "--config=w.toml"])),
            Some(PathBuf::from("w.toml"))
        );
    }
}
