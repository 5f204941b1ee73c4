//! The `wagate` binary: `serve` runs the gateway; every other command is an
//! operator's client of a running server (see `cli`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use wagate::cli::{self, Api};
use wagate::listener::HttpLimits;
use wagate::server::{self, ServeOptions};

#[derive(Parser)]
#[command(
    name = "wagate",
    version,
    about = "Self-hosted multi-tenant WhatsApp gateway"
)]
struct Cli {
    /// Data directory (gateway database, per-org WhatsApp state, admin token).
    #[arg(long, global = true, env = "WAGATE_DATA", default_value = "./data")]
    data: PathBuf,
    /// URL of a running wagate (for client commands).
    #[arg(
        long,
        global = true,
        env = "WAGATE_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    url: String,
    /// Bearer token for client commands (default: the admin token in --data).
    #[arg(long, global = true, env = "WAGATE_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// A TOML file setting any option of `serve` (and `data`) by its long
    /// name; flags and environment variables win over it.
    #[arg(long, global = true, env = "WAGATE_CONFIG")]
    config: Option<PathBuf>,
    /// Log lines as text, or as JSON objects (one per line) for log tools.
    #[arg(long, global = true, env = "WAGATE_LOG_FORMAT", default_value = "text",
          value_parser = ["text", "json"])]
    log_format: String,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the gateway.
    Serve {
        /// Address for the HTTP API.
        #[arg(long, env = "WAGATE_LISTEN", default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Also serve /metrics on this address, without a token (keep it
        /// private: it shows counts, not org ids); /metrics on --listen
        /// needs the admin token.
        #[arg(long, env = "WAGATE_METRICS_LISTEN")]
        metrics_listen: Option<SocketAddr>,
        /// Admin token (otherwise data/admin.token, generated on first start).
        #[arg(long, env = "WAGATE_ADMIN_TOKEN", hide_env_values = true)]
        admin_token: Option<String>,
        /// WhatsApp WebSocket URL (sim build only; must be on loopback).
        #[arg(long, env = "WAGATE_WA_URL")]
        wa_url: Option<String>,
        /// Most organizations reconnected per second at start-up.
        #[arg(long, env = "WAGATE_RESTORE_RATE", default_value_t = 20)]
        restore_rate: u32,
        /// Never connect to WhatsApp (API and queue only; for tests and maintenance).
        #[arg(long, env = "WAGATE_OFFLINE")]
        offline: bool,
        /// Most open HTTP connections; at the cap the oldest idle one is closed.
        #[arg(long, env = "WAGATE_MAX_CONNECTIONS", default_value_t = 1024,
              value_parser = clap::value_parser!(u32).range(1..))]
        max_connections: u32,
        /// Seconds a connection has to send a request head (also the life of
        /// an idle keep-alive connection).
        #[arg(long, env = "WAGATE_HEADER_TIMEOUT", default_value_t = 10,
              value_parser = clap::value_parser!(u64).range(1..=3600))]
        header_timeout: u64,
        /// Seconds without a byte either way before a connection is closed.
        #[arg(long, env = "WAGATE_IDLE_TIMEOUT", default_value_t = 60,
              value_parser = clap::value_parser!(u64).range(20..=86400))]
        idle_timeout: u64,
        /// Orgs without a sending policy of their own send as fast as the
        /// link allows, with no gaps, caps or quiet hours (tests and
        /// benchmarks only: a real number sending like this gets banned).
        #[arg(long, env = "WAGATE_UNPACED")]
        unpaced: bool,
        /// Time zone of orgs whose sending policy names none (an IANA name,
        /// e.g. America/Bogota); default: the server's own, else UTC.
        #[arg(long, env = "WAGATE_DEFAULT_TIMEZONE")]
        default_timezone: Option<String>,
        /// The sending policy of orgs that set none, as the conservative
        /// defaults changed by a JSON object with the fields of
        /// `PUT …/sending-policy`, e.g. '{"min_gap_ms": 20000, "daily_cap": 300}'.
        #[arg(long, env = "WAGATE_DEFAULT_POLICY")]
        default_policy: Option<String>,
        /// Hosts and networks webhooks may reach although they are not public
        /// (loopback, private, link-local): comma-separated names, addresses
        /// and CIDRs, e.g. "127.0.0.1,10.0.0.0/8,app.internal".
        #[arg(long, env = "WAGATE_WEBHOOK_ALLOW")]
        webhook_allow: Option<String>,
        /// Hours a webhook delivery is retried (backoff up to an hour) before it fails.
        #[arg(long, env = "WAGATE_WEBHOOK_MAX_AGE_HOURS", default_value_t = 24,
              value_parser = clap::value_parser!(u64).range(1..=720))]
        webhook_max_age_hours: u64,
        /// Milliseconds before the first webhook retry (then doubling); for tests.
        #[arg(long, env = "WAGATE_WEBHOOK_FIRST_RETRY_MS", default_value_t = 10_000, hide = true,
              value_parser = clap::value_parser!(u64).range(10..=3_600_000))]
        webhook_first_retry_ms: u64,
        /// Days events are kept (the event stream's replay, webhook replay and
        /// the delivery lists); older ones are deleted hourly, except events
        /// whose webhook delivery is still pending.
        #[arg(long, env = "WAGATE_RETENTION_DAYS", default_value_t = 30,
              value_parser = clap::value_parser!(u64).range(1..=3650))]
        retention_days: u64,
        /// Keep the gateway's tables and every org's WhatsApp state in this
        /// PostgreSQL database (a postgres:// URL) instead of SQLite files in
        /// --data. Its schema is created or migrated at start-up.
        #[arg(long, env = "WAGATE_DATABASE")]
        database: Option<String>,
        /// With --database: this gateway's name among the nodes sharing the
        /// database (unique per running gateway; default: the host name).
        #[arg(long, env = "WAGATE_NODE_ID", value_parser = wagate::cluster::identity::node_id)]
        node_id: Option<String>,
        /// With --database: the address the other nodes forward link actions
        /// (connect, QR, logout …) to, e.g. http://10.0.0.5:8080 (default:
        /// http:// and the --listen address, the host name if it listens on
        /// all interfaces).
        #[arg(long, env = "WAGATE_ADVERTISE_URL", value_parser = wagate::cluster::identity::advertise_url)]
        advertise_url: Option<String>,
        /// With --database: seconds an org's lease lasts after each renewal
        /// (renewed every fifth of it; the owner stops a fifth early). A dead
        /// node's orgs move after at most this long plus one renewal.
        #[arg(long, env = "WAGATE_LEASE_SECONDS", default_value_t = 15,
              value_parser = clap::value_parser!(u64).range(5..=300))]
        lease_seconds: u64,
        /// Keep device state in data/orgs/<org>/wa.db as earlier versions did
        /// (for the upgrade test).
        #[arg(long, hide = true)]
        legacy_org_files: bool,
    },
    /// Manage organizations (admin token).
    Org {
        #[command(subcommand)]
        cmd: OrgCmd,
    },
    /// Show one organization's link status, or a table of all.
    Status { org: Option<String> },
    /// Queue a text message, now or at a given time.
    Send {
        org: String,
        phone: String,
        text: String,
        /// When to send: RFC 3339 with an offset (2026-12-01T09:00:00-05:00) or Unix milliseconds.
        #[arg(long)]
        at: Option<String>,
        /// Never send after this moment (same forms as --at).
        #[arg(long)]
        before: Option<String>,
    },
    /// Cancel a scheduled message (or a queued one not yet handed to WhatsApp).
    Cancel { org: String, id: String },
    /// Whether a number is on WhatsApp (cached 7 days; fresh look-ups are rate-limited).
    Contact { org: String, phone: String },
    /// Link an organization: shows QR codes in the terminal until linked.
    Pair {
        org: String,
        /// Ask for an 8-character pairing code for this number instead of a QR.
        #[arg(long)]
        phone: Option<String>,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 300)]
        wait: u64,
    },
    /// Move an organization's credentials aside and pair afresh.
    Reset {
        org: Option<String>,
        #[arg(long, conflicts_with = "org")]
        all: bool,
    },
    /// A table of every organization's link.
    Sessions,
    /// Snapshot the data directory (--data) into FILE while the gateway
    /// serves: the gateway's database and every org's WhatsApp credentials,
    /// consistent as of the moment the copy starts. FILE is replaced when it
    /// exists (written aside, then renamed).
    Backup { file: PathBuf },
    /// Copy the data directory's SQLite files (--data; stop the gateway
    /// first) into an empty PostgreSQL database, in one transaction: every
    /// org, message, event, webhook and linked device. Then run the gateway
    /// with --database: linked orgs connect again with no QR.
    MigrateToPostgres {
        /// The PostgreSQL database: a postgres:// URL or key=value settings.
        #[arg(long, env = "WAGATE_DATABASE")]
        database: String,
    },
    /// Several gateways on one PostgreSQL: list the nodes, drain one before
    /// maintenance, or let a drained one take orgs again.
    Node {
        /// The PostgreSQL database the nodes share (before or after the
        /// subcommand).
        #[arg(long, env = "WAGATE_DATABASE", global = true)]
        database: Option<String>,
        #[command(subcommand)]
        cmd: NodeCmd,
    },
    /// The configuration file and the effective configuration.
    Config {
        #[command(subcommand)]
        cmd: ConfigCmd,
    },
    /// Rebuild a data directory (--data, new or empty) from a backup FILE.
    /// Start the gateway on it: every org that was linked comes back linked,
    /// no QR.
    Restore { file: PathBuf },
    /// Check the machine for the gateway: the data directory (--data:
    /// permissions, writable, free space, database integrity), the clock and
    /// the open-file limit against the orgs. Exits 1 when a check fails.
    Doctor {
        /// The HTTP connections the gateway is allowed (its --max-connections).
        #[arg(long, env = "WAGATE_MAX_CONNECTIONS", default_value_t = 1024)]
        max_connections: usize,
        /// The gateway's PostgreSQL database (its --database), checked instead
        /// of the SQLite files.
        #[arg(long, env = "WAGATE_DATABASE")]
        database: Option<String>,
    },
    /// Sim build: run wa-sim and the gateway together on loopback, link a
    /// demo organization to a simulated phone, and print how to use it.
    #[cfg(feature = "sim")]
    Demo {
        /// Address for the gateway's HTTP API.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
    },
}

#[derive(Subcommand)]
enum NodeCmd {
    /// Each node: its address, last heartbeat, whether it is draining, and
    /// how many orgs it owns.
    List,
    /// Move every org off NODE (it takes none until it restarts or is
    /// resumed): each link is closed there before another node opens it,
    /// with no QR and no message lost. Waits until NODE owns none.
    Drain {
        node: String,
        /// Give up waiting after this many seconds (the drain goes on).
        #[arg(long, default_value_t = 600)]
        wait: u64,
    },
    /// Let a drained NODE take orgs again.
    Resume { node: String },
}

#[derive(Subcommand)]
enum ConfigCmd {
    /// Print the configuration `serve` would run with (flags, environment,
    /// --config file, defaults), each value with where it came from;
    /// secrets masked. Exits 1 when it is not valid.
    Check,
}

#[derive(Subcommand)]
enum OrgCmd {
    /// Create an organization and print its token (shown once).
    Create {
        id: String,
        #[arg(long)]
        name: Option<String>,
        /// Country code for numbers given without one, e.g. 57.
        #[arg(long = "country-code")]
        country_code: Option<String>,
    },
    List,
    /// Delete an organization (its credentials are moved aside, not deleted).
    Delete {
        id: String,
    },
    /// List the copies of an org's WhatsApp credentials kept aside (logged
    /// out, reset, corrupt, deleted, replaced, migrated), or put one back by
    /// name: the org reconnects with it, no QR (admin token).
    RestoreCredentials {
        id: String,
        /// The copy to restore, as listed; without it, the list.
        name: Option<String>,
    },
}

/// Environment variables set from the --config file (not by the caller).
static FROM_FILE: std::sync::OnceLock<(PathBuf, Vec<String>)> = std::sync::OnceLock::new();

/// What the configuration file may set: `serve`'s options and the global
/// `data`, with their environment variables.
fn settable() -> Vec<wagate::config::Settable> {
    configurable()
        .into_iter()
        .filter_map(|(a, _)| {
            Some(wagate::config::Settable {
                long: a.get_long()?.to_string(),
                env: a.get_env()?.to_string_lossy().into_owned(),
            })
        })
        .collect()
}

/// The global `data` (`false`) and `serve`'s own options (`true`): what a
/// configuration file may set and `config check` shows.
fn configurable() -> Vec<(clap::Arg, bool)> {
    use clap::CommandFactory;
    let cmd = Cli::command();
    let globals = cmd
        .get_arguments()
        .filter(|a| a.get_id() == "data")
        .map(|a| (a.clone(), false));
    let serve = cmd
        .find_subcommand("serve")
        .into_iter()
        .flat_map(|s| s.get_arguments().map(|a| (a.clone(), true)));
    globals.chain(serve).collect()
}

/// Read the --config file into the environment, under what is already set.
fn apply_config(args: &[std::ffi::OsString]) -> anyhow::Result<()> {
    let Some(path) = wagate::config::path_from(args) else {
        return Ok(());
    };
    let mut set = vec![];
    for (env, value) in wagate::config::read(&path, &settable())? {
        if std::env::var_os(&env).is_none() {
            // Before any thread exists: nothing else reads the environment.
            std::env::set_var(&env, value);
            set.push(env);
        }
    }
    let _ = FROM_FILE.set((path, set));
    Ok(())
}

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Err(e) = apply_config(&args) {
        eprintln!("error: {e:#}");
        std::process::exit(2);
    }
    let cli = Cli::parse_from(&args);
    let result = run(cli, &args);
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

/// `config check`: parse the command line as `serve` would see it and
/// print every option with its source.
fn config_check(args: &[std::ffi::OsString]) -> anyhow::Result<()> {
    use clap::parser::ValueSource;
    use clap::CommandFactory;
    let at = args
        .iter()
        .position(|a| a == "config")
        .unwrap_or(args.len());
    let mut as_serve: Vec<std::ffi::OsString> = args[..at].to_vec();
    as_serve.push("serve".into());
    let m = Cli::command()
        .try_get_matches_from(&as_serve)
        .map_err(|e| {
            let said = e.render().to_string();
            anyhow::anyhow!("{}", said.trim_start_matches("error: ").trim_end())
        })?;
    let serve = m
        .subcommand_matches("serve")
        .ok_or_else(|| anyhow::anyhow!("no serve options"))?;
    let (file, from_file) = FROM_FILE
        .get()
        .map(|(p, v)| (Some(p.clone()), v.clone()))
        .unwrap_or((None, vec![]));
    let mut rows = vec![];
    let shown = configurable()
        .into_iter()
        .filter(|(a, _)| !a.is_hide_set() && a.get_long().is_some());
    for (a, of_serve) in shown {
        let matches = if of_serve { serve } else { &m };
        let id = a.get_id().as_str();
        let long = a.get_long().unwrap_or(id).to_string();
        let value = matches.get_raw(id).map(|vs| {
            vs.map(|v| v.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(",")
        });
        let env = a.get_env().map(|e| e.to_string_lossy().into_owned());
        let source = match matches.value_source(id) {
            Some(ValueSource::CommandLine) => "flag",
            Some(ValueSource::EnvVariable)
                if env.as_ref().is_some_and(|e| from_file.contains(e)) =>
            {
                "file"
            }
            Some(ValueSource::EnvVariable) => "environment",
            Some(ValueSource::DefaultValue) => "default",
            _ => "not set",
        };
        // A flag that is off reads as "false", not as a missing value.
        let value = match (value, a.get_action().takes_values()) {
            (None, false) => Some("false".to_string()),
            (v, _) => v,
        };
        rows.push((long, value, source));
    }
    if let Some(f) = file {
        println!("# configuration file: {}", f.display());
    } else {
        println!("# no configuration file (--config or WAGATE_CONFIG)");
    }
    print!("{}", wagate::config::describe(&rows));
    Ok(())
}

/// A node whose heartbeat is older than this is shown `silent` (the
/// default lease's length: its orgs are free by then).
const SILENT_AFTER_MS: i64 = 15_000;

async fn node_command(database: &str, cmd: &NodeCmd) -> anyhow::Result<()> {
    use wagate::cluster::admin;
    match cmd {
        NodeCmd::List => {
            let nodes = admin::list(database).await?;
            if nodes.is_empty() {
                println!("no node has joined this database yet");
            }
            println!(
                "{:<20} {:<8} {:>6} {:>12}  URL",
                "NODE", "STATE", "ORGS", "HEARTBEAT"
            );
            for n in nodes {
                let state = match (n.draining, n.heartbeat_ago_ms) {
                    (_, None) => "left",
                    (true, _) => "draining",
                    (false, Some(ms)) if ms > SILENT_AFTER_MS => "silent",
                    _ => "live",
                };
                let beat = n
                    .heartbeat_ago_ms
                    .map(|ms| format!("{:.1} s ago", ms as f64 / 1000.0))
                    .unwrap_or_else(|| "-".into());
                println!(
                    "{:<20} {:<8} {:>6} {:>12}  {}",
                    n.id,
                    state,
                    n.orgs,
                    beat,
                    n.url.unwrap_or_default()
                );
            }
        }
        NodeCmd::Drain { node, wait } => {
            if !admin::set_draining(database, node, true).await? {
                anyhow::bail!(
                    "no node '{node}' has joined this database (wagate node list shows them)"
                );
            }
            println!("draining {node}: its orgs move to the other nodes");
            let others = admin::list(database)
                .await?
                .into_iter()
                .filter(|n| &n.id != node && !n.draining)
                .filter(|n| n.heartbeat_ago_ms.is_some_and(|ms| ms <= SILENT_AFTER_MS))
                .count();
            if others == 0 {
                eprintln!(
                    "no other live node can take them: they stay linked on {node} until one joins \
                     (waiting up to {wait} s; `wagate node resume {node}` cancels the drain)"
                );
            }
            let left = admin::wait_drained(
                database,
                node,
                Duration::from_secs(*wait),
                &mut |left, t| {
                    eprintln!("{node}: {left} org(s) left after {:.0} s", t.as_secs_f64());
                },
            )
            .await?;
            if left > 0 {
                anyhow::bail!("{node} still owns {left} org(s) after {wait} s; the drain goes on (is another node live? wagate node list)");
            }
            println!("{node} owns no org now; stop it when you like (wagate node resume {node} undoes the drain)");
        }
        NodeCmd::Resume { node } => {
            if !admin::set_draining(database, node, false).await? {
                anyhow::bail!("no node '{node}' has joined this database");
            }
            println!("{node} takes orgs again from its next renewal");
        }
    }
    Ok(())
}

fn run(cli: Cli, args: &[std::ffi::OsString]) -> anyhow::Result<()> {
    let json_logs = cli.log_format == "json";
    if let Cmd::Serve {
        listen,
        metrics_listen,
        admin_token,
        wa_url,
        restore_rate,
        offline,
        max_connections,
        header_timeout,
        idle_timeout,
        unpaced,
        default_timezone,
        default_policy,
        webhook_allow,
        webhook_max_age_hours,
        webhook_first_retry_ms,
        retention_days,
        database,
        node_id,
        advertise_url,
        lease_seconds,
        legacy_org_files,
    } = cli.cmd
    {
        let rt = runtime_with_logs("info,whatsapp_rust=warn,wacore=warn", json_logs)?;
        let result = rt.block_on(server::serve(ServeOptions {
            listen,
            metrics_listen,
            banner: !json_logs,
            data: cli.data,
            admin_token,
            wa_url,
            restore_per_second: restore_rate,
            offline,
            unpaced,
            default_timezone,
            default_policy,
            webhook_allow,
            webhook_max_age_hours,
            webhook_first_retry_ms,
            retention_days,
            database,
            node_id,
            advertise_url,
            lease: wagate::cluster::Timing::with_ttl(Duration::from_secs(lease_seconds)),
            legacy_org_files,
            http: HttpLimits {
                max_connections: max_connections as usize,
                header_timeout: Duration::from_secs(header_timeout),
                idle_timeout: Duration::from_secs(idle_timeout),
                ..HttpLimits::default()
            },
            ..ServeOptions::default()
        }));
        // Whatever a library left running must not hold the exit.
        rt.shutdown_timeout(Duration::from_millis(500));
        return result;
    }
    #[cfg(feature = "sim")]
    if let Cmd::Demo { listen } = cli.cmd {
        let rt = runtime_with_logs("warn", json_logs)?;
        let result = rt.block_on(wagate::demo::run(cli.data, listen));
        rt.shutdown_timeout(Duration::from_millis(500));
        return result;
    }
    match &cli.cmd {
        Cmd::Config {
            cmd: ConfigCmd::Check,
        } => return config_check(args),
        Cmd::Backup { file } => {
            let t0 = std::time::Instant::now();
            let s = wagate::backup::backup(&cli.data, file, &mut |l| eprintln!("{l}"))?;
            println!(
                "backed up {} to {} in {:.1} s: {s}",
                cli.data.display(),
                file.display(),
                t0.elapsed().as_secs_f64()
            );
            return Ok(());
        }
        Cmd::Node { database, cmd } => {
            let Some(database) = database else {
                anyhow::bail!(
                    "wagate node needs --database (or WAGATE_DATABASE): the PostgreSQL database the nodes share"
                );
            };
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            return rt.block_on(node_command(database, cmd));
        }
        Cmd::MigrateToPostgres { database } => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let copied = rt.block_on(wagate::migrate_pg::run(&cli.data, database, &mut |l| {
                eprintln!("{l}")
            }))?;
            println!(
                "copied {} into PostgreSQL: {} rows in {} tables\nstart it with: wagate serve --data {} --database <the same database>",
                cli.data.display(),
                copied.rows(),
                copied.tables.len(),
                cli.data.display()
            );
            return Ok(());
        }
        Cmd::Restore { file } => {
            let s = wagate::backup::restore(file, &cli.data, &mut |l| eprintln!("{l}"))?;
            println!(
                "restored {} into {}: {s}\nstart it with: wagate serve --data {}",
                file.display(),
                cli.data.display(),
                cli.data.display()
            );
            return Ok(());
        }
        Cmd::Doctor {
            max_connections,
            database,
        } => {
            let found = wagate::doctor::run(&cli.data, *max_connections, database.as_deref());
            for f in &found {
                println!("{f}");
            }
            let failed = found
                .iter()
                .filter(|f| f.level == wagate::doctor::Level::Fail)
                .count();
            if failed > 0 {
                anyhow::bail!("{failed} check(s) failed");
            }
            return Ok(());
        }
        _ => {}
    }
    let api = Api::new(&cli.url, cli::resolve_token(cli.token, &cli.data)?)?;
    match cli.cmd {
        Cmd::Serve { .. } | Cmd::Node { .. } => Ok(()),
        #[cfg(feature = "sim")]
        Cmd::Demo { .. } => Ok(()),
        Cmd::Org {
            cmd:
                OrgCmd::Create {
                    id,
                    name,
                    country_code,
                },
        } => cli::org_create(&api, &id, name, country_code),
        Cmd::Org { cmd: OrgCmd::List } => cli::org_list(&api),
        Cmd::Org {
            cmd: OrgCmd::Delete { id },
        } => cli::org_delete(&api, &id),
        Cmd::Org {
            cmd: OrgCmd::RestoreCredentials { id, name },
        } => cli::restore_credentials(&api, &id, name),
        Cmd::Status { org } => cli::status(&api, org),
        Cmd::Send {
            org,
            phone,
            text,
            at,
            before,
        } => cli::send(&api, &org, &phone, &text, at, before),
        Cmd::Cancel { org, id } => cli::cancel(&api, &org, &id),
        Cmd::Contact { org, phone } => cli::contact(&api, &org, &phone),
        Cmd::Pair { org, phone, wait } => cli::pair(&api, &org, phone, Duration::from_secs(wait)),
        Cmd::Reset { org, all } => cli::reset(&api, org, all),
        Cmd::Sessions => cli::sessions(&api),
        Cmd::Backup { .. }
        | Cmd::Restore { .. }
        | Cmd::Doctor { .. }
        | Cmd::Config { .. }
        | Cmd::MigrateToPostgres { .. } => Ok(()),
    }
}

/// Logs filtered by `WAGATE_LOG` (else `default`), and a multi-threaded runtime.
fn runtime_with_logs(default: &str, json: bool) -> anyhow::Result<tokio::runtime::Runtime> {
    // Before any other thread exists.
    wagate::memory::tune();
    let filter = tracing_subscriber::EnvFilter::try_from_env("WAGATE_LOG")
        .unwrap_or_else(|_| default.into());
    if json {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .with_current_span(false)
            .init();
    } else {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            // Colour codes only on a terminal, not in log files and journals.
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
            .init();
    }
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}
