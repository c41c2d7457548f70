//! `warrant gateway`: the MCP gateway of the gateway pattern. It stands in front of an MCP
//! server, serves RFC 9728 protected resource metadata naming warrant, checks each bearer
//! token by introspection (it must be active and addressed to the gateway), swaps it for a
//! token addressed to the upstream server (RFC 8693, cached per subject token), and forwards
//! the request with the new token. The client's own token never goes upstream: if it cannot
//! be exchanged, the request is refused. Responses (server-sent event streams included) are
//! passed through as they arrive.

mod cache;
mod proxy;

use super::Authority;
pub use cache::ExchangeCache;
pub use proxy::routes;

/// A running gateway's state.
pub struct Gateway {
    /// warrant, as the gateway uses it.
    pub authority: Authority,
    /// Exchanged tokens per subject token.
    pub cache: ExchangeCache,
    /// The gateway's own resource identifier (its origin, `http://localhost:8003`).
    pub resource: String,
    /// The upstream MCP server's URL as given: the audience of exchanged tokens, spelled as
    /// the operator spelled it, since resource servers compare strings.
    pub upstream: String,
    /// The same URL parsed once, to resolve forwarded request paths against.
    pub upstream_url: url::Url,
    /// The client for upstream requests.
    pub http: reqwest::Client,
    /// Largest request body forwarded.
    pub max_body: usize,
}
