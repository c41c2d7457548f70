//! The MCP side of the gateway pattern: the gateway (`warrant gateway`), a demo MCP server
//! and client on the official Rust SDK (`rmcp`), and the one-command demo (`warrant demo`).

mod authority;
pub mod client;
pub mod gateway;
pub mod server;

pub use authority::{Authority, AuthorityError, Exchanged, Introspection, audiences};

/// The RFC 9728 protected resource metadata path (also served with the resource's path
/// appended, §3.1).
pub const METADATA_PATH: &str = "/.well-known/oauth-protected-resource";

/// The RFC 9728 metadata of `resource`, protected by the authorization server `issuer`.
pub fn resource_metadata(resource: &str, issuer: &str, name: &str) -> serde_json::Value {
    serde_json::json!({
        "resource": resource,
        "authorization_servers": [issuer],
        "bearer_methods_supported": ["header"],
        "resource_name": name,
    })
}

/// The `WWW-Authenticate` value of a 401 from `resource` (RFC 9728 §5.1, RFC 6750 §3), which
/// tells an MCP client where to discover everything.
pub fn challenge_header(resource: &str, error: Option<&str>) -> String {
    let mut value = format!("Bearer resource_metadata=\"{resource}{METADATA_PATH}\"");
    if let Some(description) = error {
        value.push_str(&format!(
            ", error=\"invalid_token\", error_description=\"{description}\""
        ));
    }
    value
}
