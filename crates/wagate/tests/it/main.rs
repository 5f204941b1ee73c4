//! Every integration test in one binary (one link of whatsapp-rust, not
//! ten): the real `wagate` binary over HTTP, offline; with the `sim`
//! feature, end to end through wa-sim and the real client, and the
//! dashboard in headless Chromium.

mod common;

mod backup_files;
mod cluster_leases;
mod cluster_owner;
mod corrupt_credentials;
mod device_sql;
mod dir_lock;
mod durability;
mod fd_limit;
mod hostile_input;
mod http_api;
mod kill_restart;
mod layering;
mod lifecycle;
mod migrations;
mod node_cli;
mod openapi;
mod readme;
mod scheduling;
mod sending_policy;
mod service;
mod sse_events;
mod store_fence;
mod store_pg;
mod tenancy;
mod web_pages;
mod webhooks;

#[cfg(feature = "sim")]
mod e2e_backup;
#[cfg(feature = "sim")]
mod e2e_credentials;
#[cfg(feature = "sim")]
mod e2e_dashboard;
#[cfg(feature = "sim")]
mod e2e_faults;
#[cfg(feature = "sim")]
mod e2e_limits;
#[cfg(feature = "sim")]
mod e2e_link;
#[cfg(feature = "sim")]
mod e2e_messages;
#[cfg(feature = "sim")]
mod e2e_metrics;
#[cfg(feature = "sim")]
mod e2e_migrate_pg;
#[cfg(feature = "sim")]
mod e2e_nodes;
#[cfg(feature = "sim")]
mod e2e_postgres;
#[cfg(feature = "sim")]
mod e2e_replies;
#[cfg(feature = "sim")]
mod e2e_scale;
#[cfg(feature = "sim")]
mod e2e_upgrade;
