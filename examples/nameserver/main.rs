//! `nameserver`: a Jami name server.
//!
//! ```text
//! nameserver [--listen 127.0.0.1:8099] [--db sqlite:PATH | --db postgres://...]
//!            [--registrations-per-minute N]
//! ```
//! The default database is an SQLite file, `nameserver.db`, created on first run. The server
//! answers `GET /name/{name}`, `GET /addr/{addr}` and `POST /name/{name}` as Jami's name
//! servers do, checks every registration's signature, and never gives a name to another
//! address. It runs until SIGTERM or Ctrl-C.

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;
use pamoja::nameserver::server::{self, Config};
use pamoja::nameserver::store::Store;

#[derive(Parser)]
#[command(name = "nameserver", version, about = "Jami name server")]
struct Cli {
    /// Address and port to listen on.
    #[arg(long, default_value = "127.0.0.1:8099")]
    listen: SocketAddr,
    /// Database: sqlite:PATH (created if missing) or postgres://USER@HOST/DB.
    #[arg(long, default_value = "sqlite:nameserver.db")]
    db: String,
    /// Registrations allowed per client address per minute (0: no limit).
    #[arg(long, default_value_t = 10)]
    registrations_per_minute: u32,
}

async fn run(cli: Cli) -> Result<()> {
    let store = Store::open(&cli.db)
        .await
        .with_context(|| format!("cannot open {}", cli.db))?;
    let listener = tokio::net::TcpListener::bind(cli.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cli.listen))?;
    eprintln!(
        "nameserver: listening on {} ({} names in {})",
        listener.local_addr()?,
        store.count().await?,
        cli.db
    );
    let config = Config {
        registrations_per_minute: cli.registrations_per_minute,
        ..Config::default()
    };
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = server::serve(listener, store, config) => r?,
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("nameserver: {e:#}");
            ExitCode::FAILURE
        }
    }
}
