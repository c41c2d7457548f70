//! `warrant serve`: run the identity provider on loopback over the embedded log.

use super::{StoreArgs, fail};
use crate::capabilities::Rules;
use crate::config::{ServeConfig, default_node};
use clap::{Args, ValueEnum};
use std::io::Write;
use std::net::TcpListener;
use std::process::ExitCode;

/// Log line format.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Human,
    /// One JSON object per line.
    Json,
}

/// Flags of `warrant serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Port to listen on, on 127.0.0.1 (0: any free port).
    #[arg(long, env = "WARRANT_PORT", default_value_t = 8080)]
    port: u16,
    /// Issuer URL [default: http://localhost:PORT].
    #[arg(long, env = "WARRANT_ISSUER")]
    issuer: Option<String>,
    /// Login of the local identity's user, approved for loopback callers [default: $USER].
    #[arg(long, env = "WARRANT_LOCAL_USER")]
    local_user: Option<String>,
    /// Grants file: capability rules in the shape of a tailnet policy's `grants`.
    #[arg(long, env = "WARRANT_GRANTS")]
    grants: Option<std::path::PathBuf>,
    /// Enable RFC 8693 token exchange (the security token service).
    #[arg(long, env = "WARRANT_ENABLE_STS")]
    enable_sts: bool,
    /// Largest request body accepted, in bytes (larger ones get 413).
    #[arg(long, env = "WARRANT_MAX_BODY_BYTES", default_value_t = 16 * 1024)]
    max_body_bytes: usize,
    /// Rotate this node's signing keys when they are this many days old (0: never).
    #[arg(long, env = "WARRANT_KEY_ROTATION_DAYS", default_value_t = 90)]
    key_rotation_days: u64,
    /// This node's name in the records it writes [default: the host name].
    #[arg(long, env = "WARRANT_NODE")]
    node: Option<String>,
    /// Log level or filter (`info`, `debug`, `warrant=debug,actix=warn`).
    #[arg(long, env = "WARRANT_LOG", default_value = "info")]
    log: String,
    /// Log line format.
    #[arg(long, env = "WARRANT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,
    /// Write a read-model checkpoint after this many events.
    #[arg(long, env = "WARRANT_CHECKPOINT_EVERY", default_value_t = 100_000)]
    checkpoint_every: u64,
}

/// Starts logging to stderr.
fn init_logging(filter: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Runs `warrant serve`.
pub fn run(args: ServeArgs) -> ExitCode {
    init_logging(&args.log, args.log_format);
    let listener = match TcpListener::bind(("127.0.0.1", args.port)) {
        Ok(listener) => listener,
        Err(err) => return fail(format!("cannot listen on 127.0.0.1:{}: {err}", args.port)),
    };
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(args.port);
    let rules = match &args.grants {
        Some(path) => match Rules::load(path) {
            Ok(rules) => rules,
            Err(err) => return fail(format!("grants file: {err}")),
        },
        None => Rules::default(),
    };
    if let Some(issuer) = &args.issuer {
        let usable = url::Url::parse(issuer).is_ok_and(|u| {
            matches!(u.scheme(), "http" | "https") && u.query().is_none() && u.fragment().is_none()
        });
        if !usable {
            return fail(format!(
                "--issuer `{issuer}` must be an http(s) URL without query or fragment (RFC 8414 §2)"
            ));
        }
    }
    let defaults = ServeConfig::embedded(args.store.dir(), port);
    let config = ServeConfig {
        node: args.node.unwrap_or_else(default_node),
        issuer: args
            .issuer
            .map(|issuer| issuer.trim_end_matches('/').to_owned())
            .unwrap_or_else(|| defaults.issuer.clone()),
        checkpoint_every: args.checkpoint_every.max(1),
        local_user: args
            .local_user
            .unwrap_or_else(|| defaults.local_user.clone()),
        rules,
        enable_sts: args.enable_sts,
        max_body: args.max_body_bytes.max(1024),
        key_rotation: (args.key_rotation_days > 0)
            .then(|| std::time::Duration::from_secs(args.key_rotation_days * 86_400)),
        ..defaults
    };
    actix_rt::System::new().block_on(async move {
        let warrant = match crate::server::build(config).await {
            Ok(warrant) => warrant,
            Err(err) => return fail(format!("cannot start: {err}")),
        };
        let shutdown = match shutdown_signal() {
            Ok(shutdown) => shutdown,
            Err(err) => return fail(format!("cannot handle signals: {err}")),
        };
        println!("warrant listening on http://127.0.0.1:{port}");
        let _ = std::io::stdout().flush();
        match crate::server::run(listener, warrant, shutdown).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => fail(err),
        }
    })
}

/// Completes on the first SIGINT or SIGTERM. The handlers are installed when this returns,
/// so a signal sent after the ready line always shuts down gracefully.
fn shutdown_signal() -> std::io::Result<impl Future<Output = ()>> {
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
