//! `jami`: the Pamoja communicator's command line, scriptable: every command prints one JSON
//! object on stdout; errors are one line on stderr and a non-zero exit status.
//!
//! The archive password comes from the `PAMOJA_PASSWORD` environment variable (unset or
//! empty: no password), never from the command line.
//!
//! ```text
//! jami account new --archive PATH
//! jami account show --archive PATH [--device-cert CERT.pem]...
//! jami account add-device --archive PATH --out NEW_PATH
//! jami account revoke-device --archive PATH --device DEVICE_ID
//! jami name lookup NAME [--server URL]
//! jami name address JAMI_ID [--server URL]
//! jami name register NAME --archive PATH [--server URL]
//! jami net stun --server HOST:PORT [--tcp]
//! jami net turn --server HOST:PORT --user USER [--tcp] [--hold]
//! jami run --archive PATH --bootstrap HOST:PORT [--timeout S] [--exit-after N]
//! jami send --archive PATH --bootstrap HOST:PORT --to JAMI_ID TEXT
//! jami call --archive PATH --bootstrap HOST:PORT --to JAMI_ID [--video] [--send-wav F]
//!           [--record-wav F] [--duration S]
//! jami conv new --archive PATH --dir DIR [--mode N] [--invite JAMI_ID]
//! jami conv post DIR TEXT --archive PATH
//! jami conv log DIR [--last N]
//! jami conv verify DIR
//! ```
//! Name commands print `{"status": N, "state": "...", ...}` with jamid's status numbers and
//! exit 0 only when the status is 0 (found, registered).

mod call;
mod client;
mod conv;
mod json;
mod link;
mod net;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Parser, Subcommand};
use pamoja::identity::{Account, Archive, Certificate, DeviceId, Error, Step};
use pamoja::nameserver::client::{Client, Lookup, Registered};
use pamoja::nameserver::name::DEFAULT_SERVER;
use serde_json::{Value, json};

#[derive(Parser)]
#[command(
    name = "jami",
    version,
    about = "Pamoja's Jami communicator (JSON output)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Jami accounts and their archives.
    #[command(subcommand)]
    Account(AccountCmd),
    /// Usernames on a name server.
    #[command(subcommand)]
    Name(NameCmd),
    /// Reachability: STUN and TURN servers.
    #[command(subcommand)]
    Net(net::NetCmd),
    /// Bring the account online and print events (links, messages) as JSON lines.
    Run(link::RunArgs),
    /// Send a text message to every device of a Jami account.
    Send(link::SendArgs),
    /// Call a Jami account: call events as JSON lines, then its figures (`call_stats`).
    Call(call::CallArgs),
    /// Swarm conversations (git repositories) in a directory.
    #[command(subcommand)]
    Conv(conv::ConvCmd),
}

#[derive(Subcommand)]
enum NameCmd {
    /// The Jami ID registered under NAME (or NAME@HOST[:PORT] to ask another server).
    Lookup {
        /// The name.
        name: String,
        /// Name server URL (http://HOST:PORT).
        #[arg(long, default_value = DEFAULT_SERVER)]
        server: String,
    },
    /// The name registered for JAMI_ID.
    Address {
        /// 40 hex digits.
        jami_id: String,
        /// Name server URL (http://HOST:PORT).
        #[arg(long, default_value = DEFAULT_SERVER)]
        server: String,
    },
    /// Register NAME for the account of an archive.
    Register {
        /// The name (3 to 32 letters, digits, '-' or '_').
        name: String,
        /// The account's archive.
        #[arg(long)]
        archive: PathBuf,
        /// Name server URL (http://HOST:PORT).
        #[arg(long, default_value = DEFAULT_SERVER)]
        server: String,
    },
}

#[derive(Subcommand)]
enum AccountCmd {
    /// Create a new account and write its archive (the file must not exist).
    New {
        /// Where to write the archive.
        #[arg(long)]
        archive: PathBuf,
    },
    /// Show an archive's Jami ID, device and known/revoked devices.
    Show {
        /// The archive to read.
        #[arg(long)]
        archive: PathBuf,
        /// A device certificate (PEM or DER) to check against the account's revocation list;
        /// may be repeated.
        #[arg(long = "device-cert")]
        device_cert: Vec<PathBuf>,
    },
    /// Issue a new device of the account: writes its archive to --out and records the device
    /// in the account's archive.
    AddDevice {
        /// The account's archive.
        #[arg(long)]
        archive: PathBuf,
        /// Where to write the new device's archive (must not exist).
        #[arg(long)]
        out: PathBuf,
    },
    /// Revoke a device of the account (adds it to the account's revocation list).
    RevokeDevice {
        /// The account's archive.
        #[arg(long)]
        archive: PathBuf,
        /// Device id (64 hex) of the device to revoke.
        #[arg(long)]
        device: String,
    },
}

/// Progress of slow steps, on stderr when it is a terminal (scripts get clean stderr).
fn progress(what: &str) {
    use std::io::IsTerminal;
    if std::io::stderr().is_terminal() {
        eprintln!("jami: {what}...");
    }
}

fn password() -> Option<String> {
    std::env::var("PAMOJA_PASSWORD")
        .ok()
        .filter(|p| !p.is_empty())
}

/// One line: what failed, on which file, and why (the OS error without repeating the path).
fn file_error(what: &str, path: &Path, e: Error) -> anyhow::Error {
    let why = match e {
        Error::Io { error, .. } => error.to_string(),
        other => other.to_string(),
    };
    anyhow!("cannot {what} {}: {why}", path.display())
}

fn open(path: &Path) -> Result<Account> {
    let archive = Archive::read_file(path, password().as_deref())
        .map_err(|e| file_error("open archive", path, e))?;
    Account::from_archive(archive).map_err(|e| file_error("use archive", path, e))
}

fn save(account_archive: &Archive, path: &Path) -> Result<()> {
    account_archive
        .write_file(path, password().as_deref())
        .map_err(|e| file_error("write archive", path, e))
}

fn refuse_existing(path: &Path) -> Result<()> {
    if path.exists() {
        bail!(
            "{} already exists; refusing to overwrite it",
            path.display()
        );
    }
    Ok(())
}

fn ids(ids: Vec<DeviceId>) -> Value {
    ids.into_iter().map(|d| d.to_string()).collect()
}

fn lookup_json(l: &Lookup) -> Value {
    let state = match l {
        Lookup::Found(_) => "found",
        Lookup::InvalidResponse => "invalid",
        Lookup::NotFound => "not_found",
        Lookup::Error(_) => "error",
    };
    let mut v = json!({"status": l.code(), "state": state});
    if let Lookup::Error(why) = l {
        v["error"] = json!(why);
    }
    v
}

/// Name commands: the JSON result, and whether jamid would call it a success.
fn run_name(cmd: NameCmd) -> Result<(Value, bool)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    Ok(match cmd {
        NameCmd::Lookup { name, server } => {
            let l = rt.block_on(Client::new(&server).lookup_name(&name));
            let mut v = lookup_json(&l);
            v["name"] = json!(name);
            if let Lookup::Found(addr) = &l {
                v["address"] = json!(addr);
            }
            (v, l.code() == 0)
        }
        NameCmd::Address { jami_id, server } => {
            let l = rt.block_on(Client::new(&server).lookup_address(&jami_id));
            let mut v = lookup_json(&l);
            v["address"] = json!(jami_id);
            if let Lookup::Found(name) = &l {
                v["name"] = json!(name);
            }
            (v, l.code() == 0)
        }
        NameCmd::Register {
            name,
            archive,
            server,
        } => {
            let account = open(&archive)?;
            let r = rt.block_on(Client::new(&server).register(&account, &name));
            let state = match &r {
                Registered::Success => "registered",
                Registered::InvalidCredentials => "invalid_credentials",
                Registered::InvalidName => "invalid_name",
                Registered::AlreadyTaken => "already_taken",
                Registered::Error(_) => "error",
            };
            let mut v = json!({"status": r.code(), "state": state, "name": name,
                "address": account.jami_id().to_string()});
            if let Registered::Error(why) = &r {
                v["error"] = json!(why);
            }
            (v, r.code() == 0)
        }
    })
}

fn run(cli: Cli) -> Result<Value> {
    let cmd = match cli.command {
        Command::Account(cmd) => cmd,
        Command::Net(cmd) => return net::run(cmd),
        Command::Run(args) => return link::run_cmd(args),
        Command::Send(args) => return link::send_cmd(args),
        Command::Call(args) => return call::call_cmd(args),
        Command::Conv(cmd) => return conv::run(cmd),
        Command::Name(cmd) => {
            let (v, ok) = run_name(cmd)?;
            if !ok {
                println!("{v}");
                bail!(
                    "name {}: status {}",
                    v["state"].as_str().unwrap_or(""),
                    v["status"]
                );
            }
            return Ok(v);
        }
    };
    match cmd {
        AccountCmd::New { archive } => {
            refuse_existing(&archive)?;
            let account = Account::create(|step| {
                let what = match step {
                    Step::DeviceKey => "generating device key (RSA-4096)",
                    Step::CaKey => "generating CA key (RSA-4096)",
                    Step::AccountKey => "generating account key (RSA-4096)",
                    Step::Signing => "signing certificates",
                };
                progress(what);
            })?;
            save(account.archive(), &archive)?;
            let device = account.device().context("new account has no device")?;
            Ok(
                json!({"jami_id": account.jami_id().to_string(), "device_id": device.id().to_string(), "archive": archive}),
            )
        }
        AccountCmd::Show {
            archive,
            device_cert,
        } => {
            let account = open(&archive)?;
            let mut revoked = account.revoked_devices();
            let mut devices = account.devices();
            for path in device_cert {
                let data = std::fs::read(&path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                let chain = Certificate::chain_from_pem_or_der(&data)
                    .with_context(|| format!("invalid certificate {}", path.display()))?;
                let cert = chain.first().context("empty certificate file")?;
                if !cert.is_issued_by_name(account.account_cert()) {
                    bail!(
                        "{} is not a device of account {}",
                        path.display(),
                        account.jami_id()
                    );
                }
                let id = cert.device_id();
                let list = if account.is_revoked(cert) {
                    &mut revoked
                } else {
                    &mut devices
                };
                if !list.contains(&id) {
                    list.push(id);
                }
            }
            let serials: Vec<String> = account
                .crl()
                .map(|c| {
                    c.revoked_serials()
                        .into_iter()
                        .map(|s| hex::encode(s.as_bytes()))
                        .collect()
                })
                .unwrap_or_default();
            Ok(json!({
                "jami_id": account.jami_id().to_string(),
                "device_id": account.device().map(|d| d.id().to_string()),
                "devices": ids(devices),
                "revoked": ids(revoked),
                "revoked_serials": serials,
            }))
        }
        AccountCmd::AddDevice { archive, out } => {
            refuse_existing(&out)?;
            let mut account = open(&archive)?;
            progress("generating device key (RSA-4096)");
            let device = account.add_device()?;
            save(&account.archive_for(&device), &out)?;
            save(account.archive(), &archive)?;
            Ok(
                json!({"jami_id": account.jami_id().to_string(), "device_id": device.id().to_string()}),
            )
        }
        AccountCmd::RevokeDevice { archive, device } => {
            let id: DeviceId = device
                .parse()
                .with_context(|| format!("invalid device id {device:?}"))?;
            let mut account = open(&archive)?;
            account.revoke_device(&id)?;
            save(account.archive(), &archive)?;
            Ok(
                json!({"jami_id": account.jami_id().to_string(), "device_id": id.to_string(), "revoked": ids(account.revoked_devices())}),
            )
        }
    }
}

/// Logs to stderr as `RUST_LOG` asks: a level (`warn`, `debug`) or targets with levels
/// (`pamoja_client=debug,pamoja_swarm=debug,warn`). Unset, nothing is logged, so an error is
/// still the one line on stderr the command line contract promises. Standard output stays
/// JSON.
fn init_logs() {
    use tracing_subscriber::{filter::Targets, prelude::*};
    let wanted = std::env::var("RUST_LOG").unwrap_or_default();
    let filter = match wanted.parse::<Targets>() {
        Ok(f) if !wanted.trim().is_empty() => f,
        Ok(_) => return,
        Err(e) => {
            eprintln!("jami: RUST_LOG {wanted:?} not understood ({e}); logging warnings");
            Targets::new().with_default(tracing_subscriber::filter::LevelFilter::WARN)
        }
    };
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(false),
        )
        .with(filter)
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logs();
    match run(cli) {
        Ok(v) => {
            if !v.is_null() {
                println!("{v}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            let msg = format!("{e:#}").replace('\n', " ");
            eprintln!("jami: error: {msg}");
            ExitCode::FAILURE
        }
    }
}
