//! `usync` queries: what the server knows about a list of users, one answer
//! element per protocol asked for in `<query>`. Every account has a LID, and
//! a user may be named by phone number (`PN@s.whatsapp.net`, or `<contact>`
//! with the number) or by LID (`LID@lid`); the answer names them as asked and
//! adds the other form (`<lid val>` for a PN, `pn_jid` for a LID), as the real
//! server does (wacore `iq/usync.rs` wire format and `project_lid_mapping`;
//! Baileys `USyncLIDProtocol`, `USyncContactProtocol`, `USyncDeviceProtocol`).
//! Device lists hold the primary device (0) only: companions need a signed
//! key-index list to be trusted, which wa-sim does not issue.

use wacore_binary::builder::NodeBuilder;
use wacore_binary::Node;

use crate::node::{attr, child, children, content_bytes};
use crate::sim::Sim;

/// A user of the list, resolved to a phone when wa-sim has one for it.
struct User {
    /// How the query named it (`jid` attribute), if by jid.
    jid: Option<String>,
    phone: Option<String>,
    lid: Option<String>,
}

fn resolve(sim: &Sim, u: &Node) -> User {
    if let Some(jid) = attr(u, "jid") {
        let phone = sim.phone_of(&jid);
        let lid = phone.as_deref().and_then(|p| sim.lid_of(p));
        return User {
            jid: Some(jid),
            phone,
            lid,
        };
    }
    // `<contact>+57 300…</contact>`: a number as a person typed it.
    let typed = child(u, "contact")
        .and_then(content_bytes)
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default();
    let digits: String = typed.chars().filter(char::is_ascii_digit).collect();
    let phone = (!digits.is_empty() && sim.phone_exists(&digits)).then_some(digits);
    let lid = phone.as_deref().and_then(|p| sim.lid_of(p));
    User {
        jid: None,
        phone,
        lid,
    }
}

/// The `<usync>` answer to `req` (an `iq xmlns="usync"`).
pub fn answer(sim: &Sim, req: &Node) -> Node {
    let usync = child(req, "usync");
    let asked: Vec<String> = usync
        .and_then(|u| child(u, "query"))
        .map(children)
        .unwrap_or(&[])
        .iter()
        .map(|p| p.tag.to_string())
        .collect();
    let users: Vec<Node> = usync
        .and_then(|u| child(u, "list"))
        .map(children)
        .unwrap_or(&[])
        .iter()
        .filter(|u| u.tag == "user")
        .map(|u| user_answer(&resolve(sim, u), &asked))
        .collect();
    let mut b = NodeBuilder::new("usync");
    if let Some(u) = usync {
        for k in ["sid", "mode", "context", "index", "last"] {
            if let Some(v) = attr(u, k) {
                b = b.attr(k, v);
            }
        }
    }
    b.children([NodeBuilder::new("list").children(users).build()])
        .build()
}

fn user_answer(u: &User, asked: &[String]) -> Node {
    let by_lid = u.jid.as_deref().is_some_and(|j| j.ends_with("@lid"));
    let jid = match (&u.jid, &u.phone) {
        (Some(j), _) => j.clone(),
        (None, Some(p)) => format!("{p}@s.whatsapp.net"),
        (None, None) => String::new(),
    };
    let mut b = NodeBuilder::new("user");
    if !jid.is_empty() {
        b = b.attr("jid", jid);
    }
    if let (true, Some(p)) = (by_lid, &u.phone) {
        b = b.attr("pn_jid", format!("{p}@s.whatsapp.net"));
    }
    let mut kids = Vec::new();
    for protocol in asked {
        let part = match protocol.as_str() {
            "contact" => Some(
                NodeBuilder::new("contact")
                    .attr("type", if u.phone.is_some() { "in" } else { "out" })
                    .build(),
            ),
            "lid" => Some(match &u.lid {
                Some(l) => NodeBuilder::new("lid")
                    .attr("val", format!("{l}@lid"))
                    .build(),
                None => NodeBuilder::new("lid").build(),
            }),
            "devices" => {
                let devices: Vec<Node> = match &u.phone {
                    Some(_) => vec![NodeBuilder::new("device").attr("id", "0").build()],
                    None => vec![],
                };
                Some(
                    NodeBuilder::new("devices")
                        .children([NodeBuilder::new("device-list").children(devices).build()])
                        .build(),
                )
            }
            "business" => Some(NodeBuilder::new("business").build()),
            "status" => Some(NodeBuilder::new("status").build()),
            "picture" => Some(NodeBuilder::new("picture").build()),
            "disappearing_mode" => Some(
                NodeBuilder::new("disappearing_mode")
                    .attr("duration", "0")
                    .build(),
            ),
            _ => None,
        };
        kids.extend(part);
    }
    b.children(kids).build()
}
