//! The `switchyard` command: CLI → Config → run until Ctrl-C / SIGTERM.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::io::IsTerminal;
use std::path::PathBuf;
use tokio_util::sync::CancellationToken;

use switchyard::{app, config, governance, mock, telemetry};

#[derive(Parser)]
#[command(name = "switchyard", version, about = "An event-sourced LLM gateway")]
struct Cli {
    /// Log as JSON lines.
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
    CheckConfig(ConfigArg),
    /// Print the `sha256:` hash of a key for the config (reads stdin when KEY is omitted).
    HashKey { key: Option<String> },
    /// A fake OpenAI-compatible upstream with fault injection (development tool).
    MockUpstream(mock::MockArgs),
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ProjectionName {
    Budgets,
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
        let mut cfg = config::load(&self.config)?;
        if let Ok(url) = std::env::var("SWITCHYARD_NATS_URL") {
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

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    telemetry::init_tracing(cli.log_json);
    match cli.command {
        Command::Serve(c) => {
            let cfg = c.load()?;
            let listener = switchyard::edge::listener::bind(cfg.server.listen)
                .with_context(|| format!("cannot listen on {}", cfg.server.listen))?;
            app::serve(cfg, listener, shutdown_signal()).await?;
        }
        Command::Consume {
            projection: ProjectionName::Budgets,
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
            app::consume_budgets(cfg, listener, shutdown_signal()).await?;
        }
        Command::Replay {
            projection: ProjectionName::Budgets,
            config,
        } => {
            let cfg = config.load()?;
            let bar = indicatif::ProgressBar::new(0);
            if !std::io::stderr().is_terminal() {
                bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
            }
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "replaying budgets {bar:40} {pos}/{len} stream seq",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            let b = bar.clone();
            let started = std::time::Instant::now();
            let checkpoint = app::replay_budgets(cfg, move |pos, len| {
                b.set_length(len);
                b.set_position(pos.min(len));
            })
            .await?;
            bar.finish_and_clear();
            println!(
                "budgets rebuilt up to stream sequence {checkpoint} in {:.2?}",
                started.elapsed()
            );
        }
        Command::CheckConfig(c) => {
            let cfg = c.load()?;
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
        Command::MockUpstream(args) => {
            let addr = std::net::SocketAddr::new(args.host, args.port);
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr}"))?;
            tracing::info!(%addr, "mock upstream listening (development tool)");
            mock::serve(
                listener,
                mock::MockState::new(args.config()),
                shutdown_signal(),
            )
            .await?;
        }
    }
    Ok(())
}
