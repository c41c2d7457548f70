//! Capability rules of the `tailscale.com/cap/tsidp` app capability, read from a grants file
//! in exactly the shape of a tailnet policy's `grants`, so a block copied from a policy file
//! works unchanged:
//!
//! ```json
//! {"grants": [{"src": ["*"], "dst": ["*"], "app": {"tailscale.com/cap/tsidp": [
//!   {"users": ["*"], "resources": ["http://localhost:8001"], "allow_dcr": true}]}}]}
//! ```

use serde::{Deserialize, Serialize};
use std::path::Path;
use url::Url;

/// The app capability name warrant reads.
pub const CAPABILITY: &str = "tailscale.com/cap/tsidp";

/// One capability rule.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Logins the rule applies to (`*`: everyone).
    #[serde(default)]
    pub users: Vec<String>,
    /// Resources (audiences) tokens may be exchanged for (`*`: any).
    #[serde(default)]
    pub resources: Vec<String>,
    /// Claims added to ID tokens.
    #[serde(default, rename = "extraClaims")]
    pub extra_claims: serde_json::Map<String, serde_json::Value>,
    /// Whether the extra claims also go into userinfo.
    #[serde(default, rename = "includeInUserInfo")]
    pub include_in_userinfo: bool,
    /// May use the admin pages and API.
    #[serde(default)]
    pub allow_admin_ui: bool,
    /// May register clients dynamically.
    #[serde(default)]
    pub allow_dcr: bool,
}

#[derive(Deserialize)]
struct GrantsFile {
    #[serde(default)]
    grants: Vec<Grant>,
}

#[derive(Deserialize)]
struct Grant {
    #[serde(default)]
    app: AppCapabilities,
}

/// The `app` map of a grant, keeping only warrant's capability. Read as a stream (not via an
/// intermediate value) so errors keep their line and column.
#[derive(Default)]
struct AppCapabilities(Vec<Rule>);

impl<'de> Deserialize<'de> for AppCapabilities {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = AppCapabilities;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a map of app capabilities")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<AppCapabilities, A::Error> {
                let mut rules = Vec::new();
                while let Some(name) = map.next_key::<String>()? {
                    if name == CAPABILITY {
                        rules.extend(map.next_value::<Vec<Rule>>()?);
                    } else {
                        map.next_value::<serde::de::IgnoredAny>()?;
                    }
                }
                Ok(AppCapabilities(rules))
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

/// Every rule in force.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Rules {
    rules: Vec<Rule>,
}

/// Claims an `extraClaims` entry may never set: they are warrant's to decide.
pub const STANDARD_CLAIMS: &[&str] = &[
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "nbf",
    "jti",
    "azp",
    "nonce",
    "auth_time",
    "acr",
    "amr",
    "at_hash",
    "c_hash",
    "sid",
    "name",
    "email",
    "email_verified",
    "preferred_username",
    "picture",
    "username",
    "client_id",
    "scope",
    "act",
    "node",
    "tailnet",
    "nid",
    "uid",
    "key",
    "addresses",
];

/// Why a grants file was refused.
#[derive(Debug, thiserror::Error)]
#[error("{path}:{line}:{column}: {reason}")]
pub struct RulesError {
    /// The file.
    pub path: String,
    /// 1-based line of the problem (0 when unknown).
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong.
    pub reason: String,
}

impl Rules {
    /// Reads a grants file; keeps the rules of the `tailscale.com/cap/tsidp` capability.
    pub fn load(path: &Path) -> Result<Rules, RulesError> {
        let error = |line, column, reason: String| RulesError {
            path: path.display().to_string(),
            line,
            column,
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| error(0, 0, e.to_string()))?;
        let rules = Rules::parse(&text).map_err(|e| error(e.line(), e.column(), e.to_string()))?;
        if let Some(claim) = rules.standard_claim_set() {
            let at = text.find(&format!("\"{claim}\"")).unwrap_or(0);
            let line = text[..at].lines().count().max(1);
            return Err(error(line, 0, standard_claim_refused(claim)));
        }
        Ok(rules)
    }

    /// Parses the text of a grants file.
    pub fn parse(text: &str) -> Result<Rules, serde_json::Error> {
        let file: GrantsFile = serde_json::from_str(text)?;
        let rules = file.grants.into_iter().flat_map(|g| g.app.0).collect();
        Ok(Rules { rules })
    }

    /// A rule set from rules directly.
    pub fn new(rules: Vec<Rule>) -> Rules {
        Rules { rules }
    }

    /// The rules of the local identity when no grants file is given: its one user may
    /// register clients, use the admin pages and ask for any resource.
    pub fn local_default() -> Rules {
        Rules::new(vec![Rule {
            users: vec!["*".into()],
            resources: vec!["*".into()],
            allow_admin_ui: true,
            allow_dcr: true,
            ..Rule::default()
        }])
    }

    /// Every rule.
    pub fn iter(&self) -> impl Iterator<Item = &Rule> {
        self.rules.iter()
    }

    /// Refuses rules whose `extraClaims` would overwrite a standard claim.
    pub fn check_extra_claims(&self) -> Result<(), String> {
        match self.standard_claim_set() {
            Some(claim) => Err(standard_claim_refused(claim)),
            None => Ok(()),
        }
    }

    fn standard_claim_set(&self) -> Option<&str> {
        self.rules
            .iter()
            .flat_map(|r| r.extra_claims.keys())
            .find(|claim| STANDARD_CLAIMS.contains(&claim.as_str()))
            .map(String::as_str)
    }

    /// The rules that apply to `login`.
    pub fn for_user<'a>(&'a self, login: &'a str) -> impl Iterator<Item = &'a Rule> + 'a {
        self.rules
            .iter()
            .filter(move |r| r.users.iter().any(|u| u == "*" || u == login))
    }

    /// Whether any rule is in force (no grants file: none).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The extra claims for `login`, merged across its rules: a scalar keeps the first value
    /// seen, arrays are unioned in a stable order without duplicates. With `userinfo`, only
    /// rules marked `includeInUserInfo` count.
    pub fn extra_claims(
        &self,
        login: &str,
        userinfo: bool,
    ) -> serde_json::Map<String, serde_json::Value> {
        use serde_json::Value;
        let mut merged = serde_json::Map::new();
        for rule in self
            .for_user(login)
            .filter(|r| !userinfo || r.include_in_userinfo)
        {
            for (name, value) in &rule.extra_claims {
                match (merged.get_mut(name), value) {
                    (None, _) => {
                        merged.insert(name.clone(), value.clone());
                    }
                    (Some(Value::Array(seen)), Value::Array(more)) => {
                        for item in more {
                            if !seen.contains(item) {
                                seen.push(item.clone());
                            }
                        }
                    }
                    (Some(_), _) => {} // first value wins
                }
            }
        }
        merged
    }

    /// Whether `login` may hold a token for `audience` (RFC 3986-normalized comparison).
    /// Every resource is tried as the same string before any is parsed: a resource server
    /// asks for the resource as the rules name it, and URL parsing was the most of this check.
    pub fn allows_audience(&self, login: &str, audience: &str) -> bool {
        let resources = || self.for_user(login).flat_map(|rule| &rule.resources);
        resources().any(|r| r == "*" || r == audience)
            || resources().any(|r| same_resource(r, audience))
    }
}

fn standard_claim_refused(claim: &str) -> String {
    format!("extraClaims must not set the standard claim `{claim}`")
}

/// Whether two resource URIs name the same resource after RFC 3986 normalization (case of
/// scheme and host, default port, empty path): `http://localhost:8001` = `http://LOCALHOST:8001/`.
/// Equal strings need no parsing (the common case, checked on every exchange).
pub fn same_resource(a: &str, b: &str) -> bool {
    a == b
        || match (Url::parse(a), Url::parse(b)) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"{"grants": [
        {"src": ["*"], "dst": ["*"], "app": {"tailscale.com/cap/tsidp": [
            {"users": ["*"], "resources": ["http://localhost:8003", "http://localhost:8001"]},
            {"users": ["alice@example.com"], "resources": ["*"], "allow_dcr": true}
        ]}},
        {"src": ["*"], "dst": ["*"], "app": {"example.com/cap/other": [{"x": 1}]}}
    ]}"#;

    #[test]
    fn audiences_follow_users_and_resources() {
        let rules = Rules::parse(FILE).unwrap();
        assert!(rules.allows_audience("bob@example.com", "http://localhost:8001"));
        assert!(rules.allows_audience("bob@example.com", "http://localhost:8001/"));
        assert!(rules.allows_audience("bob@example.com", "HTTP://LOCALHOST:8001"));
        assert!(!rules.allows_audience("bob@example.com", "http://localhost:8002"));
        assert!(rules.allows_audience("alice@example.com", "https://anything.example"));
        assert!(!Rules::default().allows_audience("alice@example.com", "http://localhost:8001"));
    }

    #[test]
    fn extra_claims_merge_first_scalar_and_union_arrays() {
        let rules = Rules::parse(r#"{"grants": [{"app": {"tailscale.com/cap/tsidp": [
            {"users": ["*"], "extraClaims": {"team": "a", "groups": ["x", "y"]}, "includeInUserInfo": true},
            {"users": ["bob"], "extraClaims": {"team": "b", "groups": ["y", "z"], "level": 3}}
        ]}}]}"#).unwrap();
        let claims = rules.extra_claims("bob", false);
        assert_eq!(claims["team"], "a");
        assert_eq!(claims["groups"], serde_json::json!(["x", "y", "z"]));
        assert_eq!(claims["level"], 3);
        let userinfo = rules.extra_claims("bob", true);
        assert!(
            userinfo.get("level").is_none(),
            "only includeInUserInfo rules"
        );
        assert!(rules.extra_claims("carol", false).get("level").is_none());
    }

    #[test]
    fn an_extra_claim_may_not_overwrite_a_standard_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("grants.json");
        std::fs::write(&path, "{\"grants\": [{\"app\": {\"tailscale.com/cap/tsidp\": [\n  {\"users\": [\"*\"], \"extraClaims\": {\"email\": \"x\"}}]}}]}").unwrap();
        let err = Rules::load(&path).unwrap_err();
        assert!(
            err.to_string()
                .contains("must not set the standard claim `email`"),
            "{err}"
        );
        assert_eq!(err.line, 2);
    }

    #[test]
    fn malformed_files_name_line_and_reason() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("grants.json");
        std::fs::write(
            &path,
            "{\"grants\": [\n  {\"app\": {\"tailscale.com/cap/tsidp\": [{\"userz\": []}]}}\n]}",
        )
        .unwrap();
        let err = Rules::load(&path).unwrap_err();
        assert_eq!(err.line, 2, "{err}");
        assert!(err.to_string().contains("unknown field `userz`"), "{err}");
        std::fs::write(&path, "{\"grants\": [").unwrap();
        assert!(
            Rules::load(&path)
                .unwrap_err()
                .to_string()
                .contains("grants.json:1:")
        );
    }
}
