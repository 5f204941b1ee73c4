//! The tables of `data/devices.db`: every org's WhatsApp client state, each
//! row keyed by the org's device number (`dev`, the org incarnation). One
//! table per kind of state the client library keeps; values the library
//! hands over as opaque bytes (Signal records) are stored as they are, and
//! structured ones (the device, app-state versions, device lists) as JSON.
//! The frozen steps are under `schema/`, one file per version per database.

use rusqlite::Connection;

use crate::db::migrate::{self, Schema, Steps};

/// The device tables on SQLite (`devices.db`).
pub const SQLITE: Steps = Steps {
    steps: &[include_str!("schema/sqlite/v1.sql")],
    latest: include_str!("schema/sqlite/v1.sql"),
};

/// The device tables on PostgreSQL: 64-bit integers, `BYTEA` for blobs,
/// the column `user` quoted.
pub const SCHEMA: Schema = Schema {
    name: "devices",
    pg: Steps {
        steps: &[include_str!("schema/pg/v1.sql")],
        latest: include_str!("schema/pg/v1.sql"),
    },
};

/// Every table that holds a device's rows (for copying one device out, in,
/// or deleting it).
pub const TABLES: &[&str] = &[
    "device",
    "identities",
    "sessions",
    "prekeys",
    "signed_prekeys",
    "sender_keys",
    "sync_keys",
    "app_versions",
    "mutation_macs",
    "sender_key_devices",
    "lid_map",
    "base_keys",
    "device_lists",
    "group_meta",
    "tc_tokens",
    "sent_messages",
    "pending_inbound",
    "msg_secrets",
];

/// Bring the database to `VERSION`.
pub fn migrate(c: &Connection) -> rusqlite::Result<()> {
    migrate::sqlite(c, "devices.db", &SQLITE, None)
}
