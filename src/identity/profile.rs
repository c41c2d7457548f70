//! What warrant knows of a user when it issues a code: the login, how to show them, the
//! tailnet node they came from, and the capability rules in force for them. Recorded in the
//! code, its redemption and the grant, so ID tokens, userinfo and exchanges later use what
//! was true at login, and an auditor can see why an exchange was allowed or refused.

use crate::capabilities::Rules;
use serde::{Deserialize, Serialize};

/// A user as known at login.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    /// The login name (`alice@example.com`); the `sub` of the user's tokens.
    pub login: String,
    /// The name to show, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// A picture URL, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub picture: Option<String>,
    /// The tailnet node the user came from (tailscale identity only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<Node>,
    /// The `tailscale.com/cap/tsidp` rules in force for the user at login.
    #[serde(default, skip_serializing_if = "Rules::is_empty")]
    pub rules: Rules,
}

/// A tailnet node, as tailscaled's WhoIs describes it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// The node's numeric id.
    pub id: i64,
    /// Its MagicDNS name with the trailing dot (`laptop.example.ts.net.`).
    pub name: String,
    /// Its node public key (`nodekey:...`).
    pub key: String,
    /// Its tailnet addresses (`100.64.0.1/32`).
    pub addresses: Vec<String>,
    /// The numeric id of the user owning it.
    pub user_id: i64,
}

impl Node {
    /// The tailnet's domain: the node name without its first label and trailing dot.
    pub fn tailnet(&self) -> Option<&str> {
        let name = self.name.trim_end_matches('.');
        name.split_once('.').map(|(_, domain)| domain)
    }
}

impl Profile {
    /// The profile recorded with a grant (`json`, as the token read model keeps it), or,
    /// for a grant recorded without one, a bare profile of `login` with no rules.
    pub fn recorded(login: &str, json: Option<&str>) -> Profile {
        json.and_then(|json| serde_json::from_str(json).ok())
            .unwrap_or_else(|| Profile {
                login: login.to_owned(),
                ..Profile::default()
            })
    }

    /// Whether a rule in force allows dynamic client registration.
    pub fn may_register_clients(&self) -> bool {
        self.rules.iter().any(|rule| rule.allow_dcr)
    }

    /// Whether a rule in force allows the client management pages and API.
    pub fn may_administer(&self) -> bool {
        self.rules.iter().any(|rule| rule.allow_admin_ui)
    }

    /// Whether the rules allow this user a token for `resource`.
    pub fn may_access(&self, resource: &str) -> bool {
        self.rules.allows_audience(&self.login, resource)
    }

    /// The claims released about the user: [`Profile::claims`], then the extra claims of the
    /// rules (for `userinfo`, only those of rules marked `includeInUserInfo`), which never
    /// replace a claim already there.
    pub fn released_claims(&self, userinfo: bool) -> serde_json::Map<String, serde_json::Value> {
        let mut claims = self.claims();
        for (name, value) in self.rules.extra_claims(&self.login, userinfo) {
            claims.entry(name).or_insert(value);
        }
        claims
    }

    /// The claims describing the user in ID tokens and userinfo, before extra claims:
    /// names and picture, and for a tailnet user tsidp's node claims (`nid`, `node`, `key`,
    /// `addresses`, `uid`, `tailnet`).
    pub fn claims(&self) -> serde_json::Map<String, serde_json::Value> {
        use serde_json::json;
        let mut claims = serde_json::Map::new();
        let login = self.login.as_str();
        let username = login.split('@').next().unwrap_or(login);
        claims.insert("preferred_username".into(), json!(login));
        claims.insert("username".into(), json!(username));
        let name = self.display_name.as_deref().unwrap_or(login);
        claims.insert("name".into(), json!(name));
        if login.contains('@') {
            claims.insert("email".into(), json!(login));
        }
        if let Some(picture) = &self.picture {
            claims.insert("picture".into(), json!(picture));
        }
        if let Some(node) = &self.node {
            claims.insert("nid".into(), json!(node.id));
            claims.insert("node".into(), json!(node.name));
            claims.insert("key".into(), json!(node.key));
            claims.insert("addresses".into(), json!(node.addresses));
            claims.insert("uid".into(), json!(node.user_id));
            if let Some(tailnet) = node.tailnet() {
                claims.insert("tailnet".into(), json!(tailnet));
            }
        }
        claims
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tailnet_claims_come_from_the_node() {
        let profile = Profile {
            login: "alice@example.com".into(),
            display_name: Some("Alice".into()),
            node: Some(Node {
                id: 7,
                name: "laptop.tail1234.ts.net.".into(),
                key: "nodekey:ab".into(),
                addresses: vec!["100.64.0.1/32".into()],
                user_id: 42,
            }),
            ..Profile::default()
        };
        let claims = profile.claims();
        assert_eq!(claims["name"], "Alice");
        assert_eq!(claims["email"], "alice@example.com");
        assert_eq!(claims["username"], "alice");
        assert_eq!(claims["tailnet"], "tail1234.ts.net");
        assert_eq!(claims["nid"], 7);
        assert_eq!(claims["uid"], 42);
        let local = Profile {
            login: "bob".into(),
            ..Profile::default()
        }
        .claims();
        assert!(local.get("email").is_none() && local.get("node").is_none());
        assert_eq!(local["name"], "bob");
    }
}
