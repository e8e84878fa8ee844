//! `switchyard-mock`: the mock upstream on a port, until Ctrl-C or SIGTERM (development tool).

use clap::Parser;
use switchyard_mock::{MockArgs, MockState, serve};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    let args = MockArgs::parse();
    let addr = std::net::SocketAddr::new(args.host, args.port);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "mock upstream listening (development tool)");
    let stop = CancellationToken::new();
    let watcher = stop.clone();
    let signals = async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let mut term = signal(SignalKind::terminate())?;
            tokio::select! {
                r = tokio::signal::ctrl_c() => r?,
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        tokio::signal::ctrl_c().await?;
        watcher.cancel();
        std::io::Result::Ok(())
    };
    let served = serve(listener, MockState::new(args.config()), stop);
    tokio::pin!(served);
    tokio::select! {
        r = &mut served => return r,
        signalled = signals => signalled?,
    }
    // Graceful: open answers finish.
    served.await
}
