//! Who is asking. warrant has no passwords: like tsidp, it knows the user from the network.
//!
//! - `local` (the embedded default): one configured user, for connections from loopback
//!   only; capability rules from the grants file.
//! - `tailscale`: tailscaled's WhoIs answer for the peer decides, rules included.
//!
//! Requests that came in through Tailscale Funnel are marked by tailscaled with a header;
//! they may only use what a public relying party needs.

mod profile;
mod tailscale;

pub use profile::{Node, Profile};
pub use tailscale::{DEFAULT_SOCKET, Tailscaled, peer_address};

use actix_web::HttpRequest;

/// The header tailscaled sets on requests that arrived through Funnel (any non-empty value).
pub const FUNNEL_HEADER: &str = "Tailscale-Funnel-Request";

/// Whether `request` arrived through Tailscale Funnel, from the public internet.
pub fn through_funnel(request: &HttpRequest) -> bool {
    request
        .headers()
        .get(FUNNEL_HEADER)
        .is_some_and(|value| !value.is_empty())
}

/// Where users come from.
pub enum Identity {
    /// One configured user, for loopback connections only.
    Local(Profile),
    /// tailscaled's WhoIs.
    Tailscale(Tailscaled),
}

/// Why the caller of a request is not known as a user who may log in.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The local identity serves loopback connections only.
    #[error("the local identity serves loopback connections only; {0} is not one")]
    NotLoopback(String),
    /// tailscaled does not know the peer.
    #[error("tailscaled does not know the peer {0}")]
    UnknownPeer(String),
    /// Tagged nodes have no human user and cannot log in.
    #[error("{node} is a tagged node ({}); tagged nodes cannot log in", tags.join(", "))]
    TaggedNode {
        /// The node's name.
        node: String,
        /// Its tags.
        tags: Vec<String>,
    },
    /// tailscaled could not be asked, or answered unreadably.
    #[error("{0}")]
    Unavailable(String),
    /// The tailnet policy's capability rules for the user are unusable.
    #[error("the tailnet policy's rules are unusable: {0}")]
    BadPolicy(String),
}

impl Identity {
    /// The user behind `request`, with the rules in force for them.
    pub async fn caller(&self, request: &HttpRequest) -> Result<Profile, IdentityError> {
        match self {
            Identity::Local(user) => match request.peer_addr() {
                Some(peer) if peer.ip().is_loopback() => Ok(user.clone()),
                Some(peer) => Err(IdentityError::NotLoopback(peer.ip().to_string())),
                None => Err(IdentityError::NotLoopback("(no peer address)".into())),
            },
            Identity::Tailscale(tailscaled) => tailscaled.caller(request).await,
        }
    }
}
