//! The `switchyard` command: CLI → Config → run until Ctrl-C / SIGTERM.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::cell::RefCell;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

mod admin_client;
mod audit_cmd;
mod keys_cmd;

use switchyard::telemetry::LogFormat;
use switchyard::{app, config, governance, secrets, telemetry};

#[derive(Parser)]
#[command(name = "switchyard", version, about = "An event-sourced LLM gateway")]
struct Cli {
    /// Log format: `text` (coloured only on a terminal) or `json` (one object per line).
    #[arg(
        long,
        global = true,
        value_enum,
        env = "SWITCHYARD_LOG_FORMAT",
        default_value = "text"
    )]
    log_format: LogFormat,
    /// Same as `--log-format json`.
    #[arg(long, global = true)]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (edge, publisher, outbox and the in-process projections).
    Serve(ConfigArg),
    /// Run one projection on its own, following the stream.
    Consume {
        #[arg(value_enum)]
        projection: ProjectionName,
        #[command(flatten)]
        config: ConfigArg,
        /// Also serve the admin API for this projection (e.g. /admin/spend) on this address.
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
    },
    /// Drop a projection and rebuild it from the start of the stream.
    Replay {
        #[arg(value_enum)]
        projection: ProjectionName,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Validate a config file and its pricing table, printing every problem.
    CheckConfig {
        #[command(flatten)]
        config: ConfigArg,
        /// Report secrets that cannot be read or fetched (env variables, files, commands, Vault,
        /// AWS Secrets Manager) as warnings, not errors: checks a file on a machine that does not
        /// hold the secrets or cannot reach the vault. Every other problem stays fatal.
        #[arg(long)]
        allow_missing_secrets: bool,
    },
    /// Print the `sha256:` hash of a key for the config (reads stdin when KEY is omitted).
    HashKey { key: Option<String> },
    /// Issue, list, show, rotate and revoke virtual keys on a running gateway.
    Keys(Box<keys_cmd::KeysCmd>),
    /// Search the audit history of a running gateway, or show one request's record.
    Audit(Box<audit_cmd::AuditCmd>),
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ProjectionName {
    Budgets,
    Audit,
    /// The answer cache (replay only: it lives in each gateway's memory).
    Cache,
}

#[derive(clap::Args)]
struct ConfigArg {
    /// Config file.
    #[arg(
        long,
        short,
        env = "SWITCHYARD_CONFIG",
        default_value = "config/switchyard.toml"
    )]
    config: PathBuf,
}

impl ConfigArg {
    fn load(&self) -> Result<config::Config> {
        self.load_with(config::SecretRef::resolve)
    }

    /// The config file with secrets from `resolve`, and `SWITCHYARD_NATS_URL` applied.
    fn load_with(
        &self,
        resolve: impl Fn(&config::SecretRef) -> Result<config::Secret, String>,
    ) -> Result<config::Config> {
        let mut cfg = config::load_with(&self.config, resolve)?;
        if let Ok(url) = std::env::var("SWITCHYARD_NATS_URL") {
            // checked like the file's value, so `check-config` refuses what `serve` would
            let problems = config::nats_url_problems(&url, "SWITCHYARD_NATS_URL");
            if !problems.is_empty() {
                return Err(config::ConfigError::Invalid(problems).into());
            }
            cfg.nats.url = url;
        }
        Ok(cfg)
    }
}

/// Cancelled on Ctrl-C or SIGTERM.
#[allow(clippy::disallowed_methods)] // the signal watcher lives exactly as long as the process
fn shutdown_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(s) => s,
                    Err(_) => {
                        let _ = ctrl_c.await;
                        t.cancel();
                        return;
                    }
                };
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutdown requested");
        t.cancel();
    });
    token
}

/// Exit status of a configuration that cannot be loaded (1 is every other failure).
const EXIT_CONFIG: u8 = 2;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init_tracing(if cli.log_json {
        LogFormat::Json
    } else {
        cli.log_format
    });
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprint!("{}", report(&e));
            if e.downcast_ref::<config::ConfigError>().is_some() {
                ExitCode::from(EXIT_CONFIG)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// An error and its causes, one per line, for people: `error: …` then `  caused by: …`. No
/// backtrace (anyhow's Debug form prints one when RUST_BACKTRACE is set); a cause whose text the
/// line above already quotes is not repeated.
fn report(e: &anyhow::Error) -> String {
    let mut out = format!("error: {e}\n");
    let mut above = e.to_string();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if !above.contains(&text) {
            out.push_str(&format!("  caused by: {text}\n"));
        }
        above = text;
    }
    out
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Serve(c) => {
            let cfg = c.load()?;
            let listener = switchyard::edge::listener::bind(cfg.server.listen)
                .with_context(|| format!("cannot listen on {}", cfg.server.listen))?;
            app::serve(cfg, listener, shutdown_signal()).await?;
        }
        Command::Consume {
            projection,
            config,
            listen,
        } => {
            let cfg = config.load()?;
            let listener = match listen {
                Some(addr) => Some(
                    switchyard::edge::listener::bind(addr)
                        .with_context(|| format!("cannot listen on {addr}"))?,
                ),
                None => None,
            };
            match projection {
                ProjectionName::Budgets => {
                    app::consume_budgets(cfg, listener, shutdown_signal()).await?
                }
                ProjectionName::Audit => {
                    app::consume_audit(cfg, listener, shutdown_signal()).await?
                }
                ProjectionName::Cache => return Err(app::AppError::CacheInServe.into()),
            }
        }
        Command::Replay { projection, config } => {
            let cfg = config.load()?;
            let name = match projection {
                ProjectionName::Budgets => "budgets",
                ProjectionName::Audit => "audit",
                ProjectionName::Cache => "cache",
            };
            let bar = indicatif::ProgressBar::new(0);
            if !std::io::stderr().is_terminal() {
                bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
            }
            bar.set_style(
                indicatif::ProgressStyle::with_template(&format!(
                    "replaying {name} {{bar:40}} {{pos}}/{{len}} stream seq"
                ))
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            let b = bar.clone();
            let progress = move |pos: u64, len: u64| {
                b.set_length(len);
                b.set_position(pos.min(len));
            };
            let started = std::time::Instant::now();
            match projection {
                ProjectionName::Budgets => {
                    let checkpoint = app::replay_budgets(cfg, progress).await?;
                    bar.finish_and_clear();
                    println!(
                        "budgets rebuilt up to stream sequence {checkpoint} in {:.2?}",
                        started.elapsed()
                    );
                }
                ProjectionName::Cache => {
                    let summary = app::replay_cache(cfg, progress).await?;
                    bar.finish_and_clear();
                    eprintln!(
                        "cache rebuilt up to stream sequence {}: {} answers in {:.2?}",
                        summary.applied,
                        summary.entries,
                        started.elapsed()
                    );
                    println!("{}", serde_json::to_string_pretty(&summary)?);
                }
                ProjectionName::Audit => {
                    let (applied, records) = app::replay_audit(cfg, progress).await?;
                    bar.finish_and_clear();
                    println!(
                        "audit index rebuilt up to stream sequence {applied}: {records} records in {:.2?}",
                        started.elapsed()
                    );
                }
            }
        }
        Command::CheckConfig {
            config: c,
            allow_missing_secrets,
        } => {
            let missing = RefCell::new(Vec::new());
            let cfg = if allow_missing_secrets {
                c.load_with(|r| {
                    r.resolve().or_else(|e| {
                        missing.borrow_mut().push(e);
                        // Stands in for the secret so validation goes on; never used.
                        Ok(config::Secret::new("missing"))
                    })
                })?
            } else {
                c.load()?
            };
            for m in missing.borrow().iter() {
                eprintln!("warning: missing secret: {m}");
            }
            // `exec`, `vault` and `aws` references are fetched too, as `serve` would at start.
            let fetcher = secrets::Fetcher::new(&cfg.secrets)?;
            if let Err(problems) = secrets::resolve_pending(&cfg.credentials, &fetcher).await {
                if !allow_missing_secrets {
                    return Err(config::ConfigError::Invalid(problems).into());
                }
                for p in problems {
                    eprintln!("warning: cannot fetch secret: {p}");
                }
            }
            println!(
                "{}: ok ({} providers, {} models, {} keys)",
                c.config.display(),
                cfg.providers.len(),
                cfg.models.len(),
                cfg.keys.len()
            );
        }
        Command::HashKey { key } => {
            let key = match key {
                Some(k) => k,
                None => {
                    let mut s = String::new();
                    std::io::stdin().read_line(&mut s)?;
                    s.trim().to_owned()
                }
            };
            println!("sha256:{}", hex::encode(governance::hash_key(&key)));
        }
        Command::Keys(cmd) => cmd.run().await?,
        Command::Audit(cmd) => cmd.run().await?,
    }
    Ok(())
}
