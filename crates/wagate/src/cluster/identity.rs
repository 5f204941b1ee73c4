//! What a node is called and where the others reach it: `--node-id` and
//! `--advertise-url`, checked before a node joins, so a name every part of
//! the cluster can carry (a PostgreSQL connection name, an HTTP header, a
//! column) and an address a forwarded request can be sent to.

/// The longest node id: `wagate/<id>/<12-char instance>` must fit the 63
/// bytes PostgreSQL keeps of a connection's name.
pub const MAX_NODE_ID: usize = 40;

/// A node id: 1–40 letters, digits, `.`, `-` or `_` (a host name fits).
pub fn node_id(s: &str) -> Result<String, String> {
    if s.is_empty() || s.len() > MAX_NODE_ID {
        return Err(format!(
            "a node id is 1 to {MAX_NODE_ID} characters; '{s}' has {}",
            s.chars().count()
        ));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
    {
        return Err(format!(
            "a node id has only letters, digits, '.', '-' and '_'; '{s}' has {c:?}"
        ));
    }
    Ok(s.to_string())
}

/// An advertised address: `http://HOST:PORT` (a trailing `/` allowed), the
/// way other nodes open a connection to this one. No TLS, path, user or
/// query: forwarded requests go node to node on a private network.
pub fn advertise_url(s: &str) -> Result<String, String> {
    let bad = |why: &str| {
        Err(format!(
            "--advertise-url '{s}': {why} (like http://10.0.0.5:8080)"
        ))
    };
    let Some(rest) = s.strip_prefix("http://") else {
        return bad("it must start with http://");
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '/' | '@' | '?' | '#'))
    {
        return bad("give only a host and a port, with no path, user or query");
    }
    let Some((host, port)) = authority.rsplit_once(':') else {
        return bad("it needs a port");
    };
    if host.is_empty() || host == "[]" {
        return bad("it needs a host");
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(format!("http://{authority}")),
        _ => bad("the port is a number from 1 to 65535"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids_are_short_plain_names() {
        for ok in ["a", "node-c", "db1.clinic_2", &"x".repeat(40)] {
            assert_eq!(node_id(ok).as_deref(), Ok(ok));
        }
        for bad in ["", "two words", "nodo-ñ", "a/b", "a\nb", &"x".repeat(41)] {
            let e = node_id(bad).unwrap_err();
            assert!(e.contains("node id"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn advertised_addresses_are_http_host_and_port() {
        assert_eq!(
            advertise_url("http://10.0.0.5:8080/").as_deref(),
            Ok("http://10.0.0.5:8080")
        );
        assert!(advertise_url("http://[::1]:8080").is_ok());
        assert!(advertise_url("http://gw-b.internal:80").is_ok());
        for (bad, why) in [
            ("https://10.0.0.5:8080", "http://"),
            ("10.0.0.5:8080", "http://"),
            ("http://10.0.0.5", "port"),
            ("http://10.0.0.5:0", "port"),
            ("http://10.0.0.5:99999", "port"),
            ("http://:8080", "host"),
            ("http://10.0.0.5:8080/api", "no path"),
            ("http://u@10.0.0.5:8080", "no path"),
            ("http://10.0.0.5:80 80", "no path"),
        ] {
            let e = advertise_url(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
