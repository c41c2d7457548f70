//! `warrant serve`: run the identity provider on loopback over the embedded log.

use super::{StoreArgs, fail, shutdown_signal};
use crate::capabilities::Rules;
use crate::config::{IdentityConfig, ServeConfig, default_local_user, default_node};
use crate::events::filelog::index::Spill;
use crate::identity::{DEFAULT_SOCKET, Profile};
use crate::projections::slab;
use clap::{Args, ValueEnum};
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::ExitCode;

/// Log line format.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Human,
    /// One JSON object per line.
    Json,
}

/// Where users come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum IdentityKind {
    /// One configured user, for loopback connections only.
    Local,
    /// tailscaled's WhoIs over its LocalAPI socket.
    Tailscale,
}

/// Flags of `warrant serve`. tsidp's flags and environment variables are accepted where
/// their meaning carries over (`TS_HOSTNAME`, `TS_STATE_DIR`, `TSIDP_PORT`, ...).
#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Address to listen on (a non-loopback one serves remote resource servers; users still
    /// need the identity's approval).
    #[arg(long, env = "WARRANT_LISTEN", default_value = "127.0.0.1")]
    listen: IpAddr,
    /// Port to listen on (0: any free port) [default: 8080; tsidp: TSIDP_PORT].
    #[arg(long, env = "WARRANT_PORT")]
    port: Option<u16>,
    /// Also listen on 127.0.0.1:PORT [tsidp: TSIDP_LOCAL_PORT].
    #[arg(long, env = "WARRANT_LOCAL_PORT")]
    local_port: Option<u16>,
    /// Issuer URL [default: https://HOSTNAME with --hostname, else http://localhost:PORT].
    #[arg(long, env = "WARRANT_ISSUER")]
    issuer: Option<String>,
    /// The issuer's host name, as `tailscale serve` publishes it (idp.example.ts.net)
    /// [tsidp: TS_HOSTNAME].
    #[arg(long, env = "WARRANT_HOSTNAME")]
    hostname: Option<String>,
    /// Where users come from.
    #[arg(long, env = "WARRANT_IDENTITY", value_enum, default_value_t = IdentityKind::Local)]
    identity: IdentityKind,
    /// tsidp's name for `--identity tailscale` [tsidp: TSIDP_USE_LOCAL_TAILSCALED].
    #[arg(long, env = "WARRANT_USE_LOCAL_TAILSCALED")]
    use_local_tailscaled: bool,
    /// tailscaled's LocalAPI socket.
    #[arg(long, env = "WARRANT_TAILSCALED_SOCKET", default_value = DEFAULT_SOCKET)]
    tailscaled_socket: PathBuf,
    /// Login of the local identity's user, approved for loopback callers [default: $USER].
    #[arg(long, env = "WARRANT_LOCAL_USER")]
    local_user: Option<String>,
    /// Display name of the local user [default: the login].
    #[arg(long, env = "WARRANT_LOCAL_USER_NAME")]
    local_user_name: Option<String>,
    /// Picture URL of the local user.
    #[arg(long, env = "WARRANT_LOCAL_USER_PICTURE")]
    local_user_picture: Option<String>,
    /// Grants file for the local identity: capability rules in the shape of a tailnet
    /// policy's `grants` [default: the local user may do everything].
    #[arg(long, env = "WARRANT_GRANTS")]
    grants: Option<PathBuf>,
    /// Enable RFC 8693 token exchange (the security token service) [tsidp: TSIDP_ENABLE_STS].
    #[arg(long, env = "WARRANT_ENABLE_STS")]
    enable_sts: bool,
    /// Serve requests that come through Tailscale Funnel (public relying parties only)
    /// [tsidp: TSIDP_USE_FUNNEL].
    #[arg(long, env = "WARRANT_FUNNEL")]
    funnel: bool,
    /// Largest request body accepted, in bytes (larger ones get 413).
    #[arg(long, env = "WARRANT_MAX_BODY_BYTES", default_value_t = 16 * 1024)]
    max_body_bytes: usize,
    /// Rotate this node's signing keys when they are this many days old (0: never).
    #[arg(long, env = "WARRANT_KEY_ROTATION_DAYS", default_value_t = 90)]
    key_rotation_days: u64,
    /// This node's name in the records it writes [default: the host name].
    #[arg(long, env = "WARRANT_NODE")]
    node: Option<String>,
    /// Log level or filter (`info`, `debug`, `warrant=debug,actix=warn`) [default: info;
    /// tsidp: TSIDP_LOG].
    #[arg(long, env = "WARRANT_LOG")]
    log: Option<String>,
    /// Log line format.
    #[arg(long, env = "WARRANT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,
    /// Write a read-model checkpoint after this many events (and at least a minute since
    /// the last), at the next second without appends, or at the latest ten minutes later.
    #[arg(long, env = "WARRANT_CHECKPOINT_EVERY", default_value_t = 100_000)]
    checkpoint_every: u64,
    /// Streams the event log's index keeps in memory (about 48 bytes each); the others are
    /// in its tables on disk.
    #[arg(long, env = "WARRANT_INDEX_STREAMS_IN_MEMORY", default_value_t = Spill::STREAMS)]
    index_streams_in_memory: usize,
    /// Token records and grants the token model keeps in memory (the newest; whole chunks
    /// of 1,024, at least one); older ones are in unnamed files in the data directory.
    #[arg(long, env = "WARRANT_TOKEN_RECORDS_IN_MEMORY", default_value_t = slab::IN_MEMORY)]
    token_records_in_memory: usize,
}

/// A tsidp environment variable's value, when set and not empty.
fn tsidp_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// A tsidp boolean environment variable: set, and not `0` or `false`.
fn tsidp_flag(name: &str) -> bool {
    tsidp_env(name).is_some_and(|v| v != "0" && !v.eq_ignore_ascii_case("false"))
}

impl ServeArgs {
    /// Applies tsidp's environment variables where warrant's own flag was not given.
    fn with_tsidp_env(mut self) -> Result<ServeArgs, String> {
        let port = |name: &str| -> Result<Option<u16>, String> {
            tsidp_env(name)
                .map(|v| v.parse().map_err(|_| format!("{name}={v} is not a port")))
                .transpose()
        };
        self.port = self.port.or(port("TSIDP_PORT")?);
        self.local_port = self.local_port.or(port("TSIDP_LOCAL_PORT")?);
        self.hostname = self.hostname.or_else(|| tsidp_env("TS_HOSTNAME"));
        self.log = self.log.or_else(|| tsidp_env("TSIDP_LOG"));
        self.enable_sts |= tsidp_flag("TSIDP_ENABLE_STS");
        self.funnel |= tsidp_flag("TSIDP_USE_FUNNEL");
        self.use_local_tailscaled |= tsidp_flag("TSIDP_USE_LOCAL_TAILSCALED");
        if self.use_local_tailscaled {
            self.identity = IdentityKind::Tailscale;
        }
        Ok(self)
    }

    /// The identity configuration the flags describe.
    fn identity(&self) -> Result<IdentityConfig, String> {
        if self.identity == IdentityKind::Tailscale {
            let local_only = [
                ("--local-user", self.local_user.is_some()),
                ("--local-user-name", self.local_user_name.is_some()),
                ("--local-user-picture", self.local_user_picture.is_some()),
                ("--grants", self.grants.is_some()),
            ];
            if let Some((flag, _)) = local_only.iter().find(|(_, given)| *given) {
                return Err(format!(
                    "{flag} applies to --identity local; with tailscale the tailnet policy decides"
                ));
            }
            return Ok(IdentityConfig::Tailscale {
                socket: self.tailscaled_socket.clone(),
            });
        }
        let rules = match &self.grants {
            Some(path) => Rules::load(path).map_err(|err| format!("grants file: {err}"))?,
            None => Rules::local_default(),
        };
        Ok(IdentityConfig::Local(Profile {
            login: self.local_user.clone().unwrap_or_else(default_local_user),
            display_name: self.local_user_name.clone(),
            picture: self.local_user_picture.clone(),
            node: None,
            rules,
        }))
    }
}

/// Starts logging to stderr.
pub(super) fn init_logging(filter: &str, format: LogFormat) {
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
    let args = match args.with_tsidp_env() {
        Ok(args) => args,
        Err(err) => return fail(err),
    };
    init_logging(args.log.as_deref().unwrap_or("info"), args.log_format);
    let identity = match args.identity() {
        Ok(identity) => identity,
        Err(err) => return fail(err),
    };
    let port = args.port.unwrap_or(8080);
    let listener = match TcpListener::bind((args.listen, port)) {
        Ok(listener) => listener,
        Err(err) => return fail(format!("cannot listen on {}:{port}: {err}", args.listen)),
    };
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(port);
    let mut listeners = vec![listener];
    if let Some(local_port) = args.local_port {
        match TcpListener::bind((Ipv4Addr::LOCALHOST, local_port)) {
            Ok(listener) => listeners.push(listener),
            Err(err) => return fail(format!("cannot listen on 127.0.0.1:{local_port}: {err}")),
        }
    }
    let issuer = match (&args.issuer, &args.hostname) {
        (Some(issuer), _) => issuer.trim_end_matches('/').to_owned(),
        (None, Some(hostname)) => format!("https://{}", hostname.trim_end_matches('.')),
        (None, None) => format!("http://localhost:{port}"),
    };
    let usable = url::Url::parse(&issuer).is_ok_and(|u| {
        matches!(u.scheme(), "http" | "https") && u.query().is_none() && u.fragment().is_none()
    });
    if !usable {
        return fail(format!(
            "the issuer `{issuer}` (--issuer, --hostname) must be an http(s) URL without query or fragment (RFC 8414 §2)"
        ));
    }
    let defaults = ServeConfig::embedded(args.store.dir(), port);
    let config = ServeConfig {
        node: args.node.unwrap_or_else(default_node),
        issuer,
        checkpoint_every: args.checkpoint_every.max(1),
        index_streams_in_memory: args.index_streams_in_memory.max(1),
        token_records_in_memory: args.token_records_in_memory,
        identity,
        funnel: args.funnel,
        enable_sts: args.enable_sts,
        max_body: args.max_body_bytes.max(1024),
        key_rotation: (args.key_rotation_days > 0)
            .then(|| std::time::Duration::from_secs(args.key_rotation_days * 86_400)),
        ..defaults
    };
    let listen = args.listen;
    actix_rt::System::new().block_on(async move {
        let warrant = match crate::server::build(config).await {
            Ok(warrant) => warrant,
            Err(err) => return fail(format!("cannot start: {err}")),
        };
        let shutdown = match shutdown_signal() {
            Ok(shutdown) => shutdown,
            Err(err) => return fail(format!("cannot handle signals: {err}")),
        };
        // One write: a reader may stop listening after the first line.
        let mut ready = format!(
            "warrant listening on http://{}",
            SocketAddr::new(listen, port)
        );
        if let Some(local) = listeners.get(1).and_then(|l| l.local_addr().ok()) {
            ready.push_str(&format!("\nalso listening on http://{local}"));
        }
        println!("{ready}");
        let _ = std::io::stdout().flush();
        match crate::server::run(listeners, warrant, shutdown).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => fail(err),
        }
    })
}
