//! What a link is, below every layer that runs or shows one: its states
//! (`state`), why it is in one (`reason`, as data), and the plain-English
//! sentence for a reason (`words`), and which org a link is (`OrgRef`). Plain types with no behaviour beyond
//! naming and wording; the supervisor decides, the surfaces render.

pub mod reason;
pub mod state;
pub mod words;

pub use reason::{Cause, Purpose, Reason};
pub use state::State;

/// One incarnation of an organization: its id and the number that tells it
/// apart from an earlier org deleted under the same id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OrgRef {
    pub id: String,
    pub inc: i64,
}
