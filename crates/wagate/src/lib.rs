//! wagate: a self-hosted, multi-tenant WhatsApp gateway. See ARCHITECTURE.md
//! for the map; `session::supervisor` is the heart.

pub mod api;
pub mod auth;
pub mod cli;
#[cfg(feature = "sim")]
pub mod demo;
pub mod engine;
pub mod hub;
pub mod outbox;
pub mod phone;
pub mod qr;
pub mod server;
pub mod session;
pub mod store;
pub mod web;
