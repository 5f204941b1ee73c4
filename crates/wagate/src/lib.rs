//! wagate: a self-hosted, multi-tenant WhatsApp gateway. See ARCHITECTURE.md
//! for the map; `session::supervisor` is the heart.

pub mod auth;
pub mod engine;
pub mod hub;
pub mod phone;
pub mod session;
pub mod store;
pub mod api;
pub mod cli;
pub mod outbox;
pub mod qr;
pub mod server;
