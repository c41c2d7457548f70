//! The command line: `warrant serve`, `warrant log verify|export`, `warrant projections
//! rebuild`, `warrant keys rotate`, `warrant import-tsidp`. Every flag has a `WARRANT_*`
//! environment variable twin.

mod demo;
mod gateway;
mod import;
mod keys;
mod log;
mod projections;
mod serve;

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// warrant: an OpenID Connect / OAuth identity provider for tailnets.
#[derive(Debug, Parser)]
#[command(name = "warrant", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the identity provider.
    Serve(serve::ServeArgs),
    /// Inspect the event log.
    Log {
        #[command(subcommand)]
        command: log::LogCommand,
    },
    /// Manage this node's signing keys.
    Keys {
        #[command(subcommand)]
        command: keys::KeysCommand,
    },
    /// Maintain the read models.
    Projections {
        #[command(subcommand)]
        command: projections::ProjectionsCommand,
    },
    /// Import a tsidp state directory's clients (`oidc-funnel-clients.json`). Stop
    /// `warrant serve` first.
    #[command(name = "import-tsidp")]
    ImportTsidp(import::ImportArgs),
    /// Run the MCP gateway in front of an MCP server.
    Gateway(gateway::GatewayArgs),
    /// Run the demo MCP server (tools `oauth_details` and `multiply`).
    #[command(name = "demo-server")]
    DemoServer(demo::DemoServerArgs),
    /// Run the demo MCP client against an MCP URL (headless OAuth).
    #[command(name = "demo-client")]
    DemoClient(demo::DemoClientArgs),
    /// Run the whole gateway pattern on loopback: warrant, server, gateway and client.
    Demo(demo::DemoArgs),
}

/// Where the event log is.
#[derive(Debug, Args)]
pub struct StoreArgs {
    /// Data directory holding the embedded event log [default: $XDG_DATA_HOME/warrant;
    /// tsidp: TS_STATE_DIR].
    #[arg(long, env = "WARRANT_DIR")]
    dir: Option<PathBuf>,
}

impl StoreArgs {
    fn dir(&self) -> PathBuf {
        self.dir
            .clone()
            .or_else(|| {
                std::env::var_os("TS_STATE_DIR")
                    .filter(|d| !d.is_empty())
                    .map(PathBuf::from)
            })
            .unwrap_or_else(crate::config::default_dir)
    }
}

/// Parses the command line and runs it.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Log { command } => log::run(command),
        Command::Keys { command } => keys::run(command),
        Command::Projections { command } => projections::run(command),
        Command::ImportTsidp(args) => import::run(args),
        Command::Gateway(args) => gateway::run(args),
        Command::DemoServer(args) => demo::run_server(args),
        Command::DemoClient(args) => demo::run_client(args),
        Command::Demo(args) => demo::run_demo(args),
    }
}

/// A current-thread runtime for the offline commands.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime starts")
}

/// Listens on 127.0.0.1:`port` (0: any free port); returns the listener, the port it got,
/// and the resource identifier the MCP programs use by default, `http://localhost:PORT`, or
/// `resource` when given.
fn listen_on_loopback(
    port: u16,
    resource: Option<String>,
) -> Result<(std::net::TcpListener, u16, String), String> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", port))
        .map_err(|err| format!("cannot listen on 127.0.0.1:{port}: {err}"))?;
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(port);
    let resource = resource.unwrap_or_else(|| format!("http://localhost:{port}"));
    Ok((listener, port, resource))
}

/// Prints `error: {message}` and returns exit code 1.
fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::FAILURE
}

/// Completes on the first SIGINT or SIGTERM. The handlers are installed when this returns,
/// so a signal sent after the ready line always shuts down gracefully.
pub(crate) fn shutdown_signal() -> std::io::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
    })
}
