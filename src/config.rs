//! Configuration of a running warrant, and the defaults of the embedded run.

use crate::capabilities::Rules;
use crate::events::filelog::index::Spill;
use crate::identity::Profile;
use std::path::PathBuf;
use std::time::Duration;

/// Everything `warrant serve` needs to start.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// The data directory (event log, checkpoints).
    pub dir: PathBuf,
    /// This node's name, written into every record it appends.
    pub node: String,
    /// The issuer URL (`http://localhost:PORT` by default).
    pub issuer: String,
    /// Where users come from.
    pub identity: IdentityConfig,
    /// Whether requests through Tailscale Funnel are served (`--funnel`); they may only use
    /// what a public relying party needs.
    pub funnel: bool,
    /// Whether RFC 8693 token exchange is enabled (`--enable-sts`).
    pub enable_sts: bool,
    /// Largest request body accepted (forms and JSON).
    pub max_body: usize,
    /// Signing keys older than this are rotated (`None`: never).
    pub key_rotation: Option<Duration>,
    /// Write a projection checkpoint after this many events.
    pub checkpoint_every: u64,
    /// Streams the log's index keeps in memory before it moves them to disk.
    pub index_streams_in_memory: usize,
    /// Token records (and grants) the token model keeps in memory before it moves the
    /// older ones to disk.
    pub token_records_in_memory: usize,
    /// Most actors of each kind kept live. A live actor costs about 850 bytes and saves only
    /// the read of its stream's few events on its next command, so this stays small.
    pub actor_capacity: usize,
    /// Actors unused this long are passivated.
    pub actor_idle: Duration,
}

impl ServeConfig {
    /// The defaults of the embedded run, in `dir`, for the issuer `http://localhost:{port}`.
    pub fn embedded(dir: PathBuf, port: u16) -> ServeConfig {
        ServeConfig {
            dir,
            node: default_node(),
            issuer: format!("http://localhost:{port}"),
            identity: IdentityConfig::Local(Profile {
                login: default_local_user(),
                rules: Rules::local_default(),
                ..Profile::default()
            }),
            funnel: false,
            enable_sts: false,
            max_body: 16 * 1024,
            key_rotation: Some(Duration::from_secs(90 * 86_400)),
            checkpoint_every: 100_000,
            index_streams_in_memory: Spill::STREAMS,
            token_records_in_memory: crate::projections::slab::IN_MEMORY,
            actor_capacity: 1_000,
            actor_idle: Duration::from_secs(60),
        }
    }
}

/// Where users come from (`--identity`).
#[derive(Clone, Debug)]
pub enum IdentityConfig {
    /// One user, for loopback connections, with the rules of the grants file (or, without
    /// one, [`Rules::local_default`]).
    Local(Profile),
    /// tailscaled's WhoIs over its LocalAPI socket.
    Tailscale {
        /// The LocalAPI unix socket.
        socket: PathBuf,
    },
}

/// The default data directory: `$XDG_DATA_HOME/warrant`, else `~/.local/share/warrant`,
/// else `./warrant-data`.
pub fn default_dir() -> PathBuf {
    let non_empty = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(xdg) = non_empty("XDG_DATA_HOME") {
        return PathBuf::from(xdg).join("warrant");
    }
    if let Some(home) = non_empty("HOME") {
        return PathBuf::from(home).join(".local/share/warrant");
    }
    PathBuf::from("warrant-data")
}

/// The default local user: the OS user running warrant (`$USER`, else `$LOGNAME`).
pub fn default_local_user() -> String {
    ["USER", "LOGNAME"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| "local".to_owned())
}

/// The default node name: the host name, else `local`.
pub fn default_node() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|name| name.trim().to_owned())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "local".to_owned())
}
