//! Helpers for reading and building binary nodes, shared by every module
//! that speaks to a client (kept apart from `conn.rs` so the protocol modules
//! do not import the connection loop, and it does not import them back).

use wacore_binary::builder::NodeBuilder;
use wacore_binary::Node;

pub fn attr(n: &Node, key: &str) -> Option<String> {
    n.attrs.get(key).map(|v| v.to_string())
}

pub fn child<'a>(n: &'a Node, tag: &str) -> Option<&'a Node> {
    n.get_optional_child(tag)
}

pub fn children(n: &Node) -> &[Node] {
    n.children().unwrap_or(&[])
}

/// A node's content as bytes. The binary decoder returns byte content that
/// happens to be valid UTF-8 (a 3-byte key id such as `00 00 01`) as a string,
/// so both forms are accepted.
pub fn content_bytes(n: &Node) -> Option<&[u8]> {
    match &n.content {
        Some(wacore_binary::NodeContent::Bytes(b)) => Some(b),
        Some(wacore_binary::NodeContent::String(s)) => Some(s.as_bytes()),
        _ => None,
    }
}

pub fn iq_result(req: &Node, kids: Vec<Node>) -> Node {
    let mut b = NodeBuilder::new("iq")
        .attr("id", attr(req, "id").unwrap_or_default())
        .attr("type", "result")
        .attr(
            "from",
            attr(req, "to").unwrap_or_else(|| "s.whatsapp.net".into()),
        );
    if !kids.is_empty() {
        b = b.children(kids);
    }
    b.build()
}

/// An IQ error answer (`<iq type="error"><error code text/></iq>`).
pub fn iq_error(req: &Node, code: u16, text: &str) -> Node {
    NodeBuilder::new("iq")
        .attr("id", attr(req, "id").unwrap_or_default())
        .attr("type", "error")
        .attr(
            "from",
            attr(req, "to").unwrap_or_else(|| "s.whatsapp.net".into()),
        )
        .children([NodeBuilder::new("error")
            .attr("code", code.to_string())
            .attr("text", text)
            .build()])
        .build()
}

pub fn stream_error(code: &str) -> Node {
    NodeBuilder::new("stream:error").attr("code", code).build()
}

pub fn conflict(kind: &str) -> Node {
    NodeBuilder::new("stream:error")
        .children([NodeBuilder::new("conflict").attr("type", kind).build()])
        .build()
}
