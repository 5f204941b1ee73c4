//! The `wa-sim` binary: a loopback WhatsApp-protocol server with a control API.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "wa-sim",
    about = "Local WhatsApp-protocol simulator (loopback only)"
)]
struct Args {
    /// WebSocket address (served at /ws/chat).
    #[arg(long, default_value = "127.0.0.1:9400")]
    listen: SocketAddr,
    /// Control API address.
    #[arg(long, default_value = "127.0.0.1:9401")]
    control: SocketAddr,
    /// State directory (server key, phones, devices).
    #[arg(long, default_value = "./wa-sim-data")]
    state: PathBuf,
}

fn main() {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WA_SIM_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    };
    let result = rt.block_on(async {
        let r = wa_sim::start(args.state, args.listen, args.control).await?;
        println!(
            "wa-sim listening on {} (control http://{})",
            r.ws_url(),
            r.control_addr
        );
        tokio::signal::ctrl_c().await?;
        anyhow::Ok(())
    });
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
