//! wagate: a self-hosted, multi-tenant WhatsApp gateway. See ARCHITECTURE.md
//! for the map; `app` is the service layer, `session::supervisor` the heart.

pub mod api;
pub mod app;
pub mod auth;
pub mod backup;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod datadir;
pub mod db;
#[cfg(feature = "sim")]
pub mod demo;
pub mod devstore;
pub mod doctor;
pub mod engine;
pub mod events;
pub mod forward;
pub mod http_client;
pub mod link;
pub mod listener;
pub mod memory;
pub mod metrics;
pub mod migrate_pg;
pub mod node;
#[cfg(unix)]
pub mod notify;
pub mod outbox;
pub mod phone;
pub mod qr;
pub mod retention;
pub mod server;
pub mod session;
pub mod store;
pub mod times;
pub mod web;
pub mod webhook;
