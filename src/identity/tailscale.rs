//! The tailscale identity: tailscaled's LocalAPI says who is on the other end of each
//! request (`GET /localapi/v0/whois?addr=...` over its unix socket), and the tailnet policy's
//! `tailscale.com/cap/tsidp` grants, delivered in the WhoIs answer's `CapMap`, are the rules.

use super::{IdentityError, Node, Profile};
use crate::capabilities::{CAPABILITY, Rule, Rules};
use actix_web::HttpRequest;
use serde::Deserialize;
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where tailscaled listens on Linux unless told otherwise.
pub const DEFAULT_SOCKET: &str = "/var/run/tailscale/tailscaled.sock";

/// The host name the LocalAPI expects on its socket.
const LOCALAPI_HOST: &str = "local-tailscaled.sock";

/// How long a WhoIs may take before the request is refused.
const WHOIS_TIMEOUT: Duration = Duration::from_secs(5);

/// A LocalAPI client for one tailscaled.
pub struct Tailscaled {
    socket: PathBuf,
    http: reqwest::Client,
}

/// The WhoIs answer (`apitype.WhoIsResponse`), the members warrant uses.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct WhoIs {
    node: WhoIsNode,
    user_profile: UserProfile,
    #[serde(default)]
    cap_map: HashMap<String, Vec<serde_json::Value>>,
}

/// `tailcfg.Node`, the members warrant uses.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct WhoIsNode {
    #[serde(rename = "ID")]
    id: i64,
    name: String,
    user: i64,
    #[serde(default)]
    key: String,
    #[serde(default)]
    addresses: Vec<String>,
    #[serde(default)]
    tags: Vec<String>,
}

/// `tailcfg.UserProfile`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UserProfile {
    #[serde(rename = "ID")]
    id: i64,
    login_name: String,
    #[serde(default)]
    display_name: String,
    #[serde(default, rename = "ProfilePicURL")]
    profile_pic_url: String,
}

impl Tailscaled {
    /// A client for the tailscaled listening on `socket`.
    pub fn new(socket: &Path) -> Tailscaled {
        let http = reqwest::Client::builder()
            .unix_socket(socket)
            .timeout(WHOIS_TIMEOUT)
            .build()
            .expect("an HTTP client over a unix socket builds");
        Tailscaled {
            socket: socket.to_owned(),
            http,
        }
    }

    /// Who sent `request`, by tailscaled's answer alone: a loopback connection is trusted
    /// for nothing by itself.
    pub async fn caller(&self, request: &HttpRequest) -> Result<Profile, IdentityError> {
        let peer = peer_address(request)?;
        let whois = self.whois(&peer).await?;
        if !whois.node.tags.is_empty() {
            return Err(IdentityError::TaggedNode {
                node: whois.node.name,
                tags: whois.node.tags,
            });
        }
        let rules = whois
            .cap_map
            .get(CAPABILITY)
            .map(|values| {
                values
                    .iter()
                    .map(|value| serde_json::from_value::<Rule>(value.clone()))
                    .collect::<Result<Vec<Rule>, _>>()
            })
            .transpose()
            .map_err(|e| IdentityError::BadPolicy(format!("a {CAPABILITY} rule: {e}")))?
            .map(Rules::new)
            .unwrap_or_default();
        rules
            .check_extra_claims()
            .map_err(IdentityError::BadPolicy)?;
        let profile = whois.user_profile;
        let non_empty = |s: String| (!s.is_empty()).then_some(s);
        Ok(Profile {
            login: profile.login_name,
            display_name: non_empty(profile.display_name),
            picture: non_empty(profile.profile_pic_url),
            node: Some(Node {
                id: whois.node.id,
                name: whois.node.name,
                key: whois.node.key,
                addresses: whois.node.addresses,
                user_id: if whois.node.user != 0 {
                    whois.node.user
                } else {
                    profile.id
                },
            }),
            rules,
        })
    }

    async fn whois(&self, peer: &str) -> Result<WhoIs, IdentityError> {
        let unavailable = |reason: String| IdentityError::Unavailable(reason);
        let url = url::Url::parse_with_params(
            &format!("http://{LOCALAPI_HOST}/localapi/v0/whois"),
            [("addr", peer)],
        )
        .expect("a well-formed LocalAPI URL");
        let response = self.http.get(url).send().await.map_err(|e| {
            unavailable(format!(
                "cannot reach tailscaled at {}: {e}",
                self.socket.display()
            ))
        })?;
        match response.status() {
            status if status.is_success() => {
                let unreadable = |e: &dyn std::fmt::Display| {
                    unavailable(format!("unreadable WhoIs answer: {e}"))
                };
                let body = response.bytes().await.map_err(|e| unreadable(&e))?;
                serde_json::from_slice::<WhoIs>(&body).map_err(|e| unreadable(&e))
            }
            reqwest::StatusCode::NOT_FOUND => Err(IdentityError::UnknownPeer(peer.to_owned())),
            status => Err(unavailable(format!(
                "tailscaled answered WhoIs with {status}"
            ))),
        }
    }
}

/// The address to ask tailscaled about. Behind `tailscale serve` every connection comes
/// from loopback and the peer is the last non-empty value of the last `X-Forwarded-For`
/// header, a bare IP; otherwise it is the TCP peer (`IP:PORT`).
pub fn peer_address(request: &HttpRequest) -> Result<String, IdentityError> {
    let tcp = request
        .peer_addr()
        .ok_or_else(|| IdentityError::UnknownPeer("(no peer address)".into()))?;
    if !tcp.ip().is_loopback() {
        return Ok(tcp.to_string());
    }
    let forwarded = request
        .headers()
        .get_all("x-forwarded-for")
        .last()
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(',').map(str::trim).rfind(|v| !v.is_empty()));
    match forwarded {
        None => Ok(tcp.to_string()),
        Some(value) => value
            .parse::<IpAddr>()
            .map(|ip| ip.to_string())
            .map_err(|_| {
                IdentityError::UnknownPeer(format!(
                    "X-Forwarded-For `{value}` is not an IP address"
                ))
            }),
    }
}
