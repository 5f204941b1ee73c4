//! The ground floor of everything that stores: values and rows that travel
//! between our SQL and either database (`sql`), one connection to SQLite or
//! PostgreSQL as the stores use it (`conn`), PostgreSQL's settings and async
//! connections (`pg`), and running a store's frozen migration steps
//! (`migrate`). Nothing here knows which store, org or node it serves.

pub mod conn;
pub mod migrate;
pub mod pg;
mod sql;

pub use conn::{Conn, OptionalExt, PgConn};
pub use sql::*;
