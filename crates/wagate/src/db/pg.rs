//! PostgreSQL's connection settings and async connections: the one place
//! that turns a `--database` URL into a connection, naming every connection
//! of this process (`application_name`) so a restarted node can see whether
//! a process under its id still has one open.

use tokio_postgres::{Client, NoTls};

/// A PostgreSQL connection that could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error("PostgreSQL: {}", super::pg_detail(.0))]
    Db(#[from] tokio_postgres::Error),
    #[error("{0}")]
    Settings(String),
}

/// The `application_name` every connection of this process gives
/// PostgreSQL (`wagate/<node>/<instance>`), once the gateway set it.
static APPLICATION_NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Name this process's connections after `node` and a random instance.
pub fn name_connections(node: &str) {
    let instance = uuid::Uuid::new_v4().simple().to_string();
    let mut name = format!("wagate/{node}/{}", &instance[..12]);
    // PostgreSQL keeps 63 bytes of it.
    while name.len() > 63 {
        name.pop();
    }
    let _ = APPLICATION_NAME.set(name);
}

/// This process's connection name, if set.
pub fn application_name() -> Option<&'static str> {
    APPLICATION_NAME.get().map(String::as_str)
}

/// `url` as settings, with this process's connection name.
pub fn settings(url: &str) -> Result<tokio_postgres::Config, String> {
    let mut config: tokio_postgres::Config = url
        .parse()
        .map_err(|e| format!("PostgreSQL settings: {e}"))?;
    if let Some(name) = application_name() {
        config.application_name(name);
    }
    Ok(config)
}

/// Open a connection; its I/O runs on a task of its own, which logs and
/// ends when the connection breaks.
pub async fn connect(url: &str) -> Result<Client, PgError> {
    let (client, conn) = settings(url)
        .map_err(PgError::Settings)?
        .connect(NoTls)
        .await?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::warn!(error = %e, "PostgreSQL connection closed");
        }
    });
    Ok(client)
}
