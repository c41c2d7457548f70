//! The gateway's dealings with warrant: discovery, its own registration, introspection of
//! the tokens clients present, and RFC 8693 exchange for the upstream audience.

use serde::Deserialize;
use serde_json::{Value, json};

/// warrant (or any RFC 8414 authorization server) as the gateway uses it.
pub struct Authority {
    http: reqwest::Client,
    /// The issuer, exactly as the metadata names it.
    pub issuer: String,
    token_endpoint: String,
    introspection_endpoint: String,
    client_id: String,
    client_secret: String,
}

/// What introspection says of a presented token.
#[derive(Debug, Deserialize)]
pub struct Introspection {
    /// Whether the token is active.
    pub active: bool,
    /// Its audiences (a string or an array on the wire).
    #[serde(default, deserialize_with = "one_or_many")]
    pub aud: Vec<String>,
    /// Its expiry, seconds since the epoch.
    #[serde(default)]
    pub exp: Option<i64>,
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Aud {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Option::<Aud>::deserialize(d)? {
        None => Vec::new(),
        Some(Aud::One(one)) => vec![one],
        Some(Aud::Many(many)) => many,
    })
}

/// An exchanged token and its lifetime.
#[derive(Debug, Deserialize)]
pub struct Exchanged {
    /// The token for the upstream server.
    pub access_token: String,
    /// Seconds it lives.
    pub expires_in: i64,
}

/// Why warrant could not be used.
#[derive(Debug, thiserror::Error)]
pub enum AuthorityError {
    /// warrant could not be reached or answered something unreadable.
    #[error("authorization server: {0}")]
    Unreachable(String),
    /// warrant refused (registration, introspection credentials, or the exchange).
    #[error("authorization server refused: {0}")]
    Refused(String),
}

impl Authority {
    /// Reads the metadata at `auth_server_url` and, without `credentials`, registers the
    /// gateway as a confidential client allowed to exchange tokens.
    pub async fn connect(
        http: reqwest::Client,
        auth_server_url: &str,
        credentials: Option<(String, String)>,
    ) -> Result<Authority, AuthorityError> {
        let base = auth_server_url.trim_end_matches('/');
        let metadata: Value = get_json(
            &http,
            &format!("{base}/.well-known/oauth-authorization-server"),
        )
        .await?;
        let endpoint = |name: &str| {
            metadata[name]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| AuthorityError::Unreachable(format!("metadata has no {name}")))
        };
        let issuer = endpoint("issuer")?;
        let token_endpoint = endpoint("token_endpoint")?;
        let introspection_endpoint = endpoint("introspection_endpoint")?;
        let (client_id, client_secret) = match credentials {
            Some(credentials) => credentials,
            None => {
                let registration = json!({
                    "client_name": "warrant gateway",
                    "grant_types": [crate::http::TOKEN_EXCHANGE],
                    "token_endpoint_auth_method": "client_secret_post",
                });
                let response = http
                    .post(endpoint("registration_endpoint")?)
                    .header("content-type", "application/json")
                    .body(registration.to_string())
                    .send()
                    .await
                    .map_err(|e| AuthorityError::Unreachable(e.to_string()))?;
                let body = read_json(response).await?;
                let field = |name: &str| {
                    body[name].as_str().map(str::to_owned).ok_or_else(|| {
                        AuthorityError::Refused(format!("registration answered without {name}"))
                    })
                };
                (field("client_id")?, field("client_secret")?)
            }
        };
        Ok(Authority {
            http,
            issuer,
            token_endpoint,
            introspection_endpoint,
            client_id,
            client_secret,
        })
    }

    /// The gateway's client id.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// Introspects a presented token with the gateway's credentials.
    pub async fn introspect(&self, token: &str) -> Result<Introspection, AuthorityError> {
        let body = self
            .post_form(&self.introspection_endpoint, &[("token", token)])
            .await?;
        serde_json::from_value(body).map_err(|e| AuthorityError::Unreachable(e.to_string()))
    }

    /// Exchanges `subject_token` for a token addressed to `audience` (sent as both
    /// `audience` and `resource`).
    pub async fn exchange(
        &self,
        subject_token: &str,
        audience: &str,
    ) -> Result<Exchanged, AuthorityError> {
        let body = self
            .post_form(
                &self.token_endpoint,
                &[
                    ("grant_type", crate::http::TOKEN_EXCHANGE),
                    ("subject_token", subject_token),
                    ("subject_token_type", crate::http::ACCESS_TOKEN_TYPE),
                    ("audience", audience),
                    ("resource", audience),
                ],
            )
            .await?;
        serde_json::from_value(body).map_err(|e| AuthorityError::Unreachable(e.to_string()))
    }

    async fn post_form(&self, url: &str, form: &[(&str, &str)]) -> Result<Value, AuthorityError> {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .append_pair("client_id", &self.client_id)
            .append_pair("client_secret", &self.client_secret)
            .finish();
        let response = self
            .http
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .map_err(|e| AuthorityError::Unreachable(e.to_string()))?;
        read_json(response).await
    }
}

async fn get_json(http: &reqwest::Client, url: &str) -> Result<Value, AuthorityError> {
    let response = http
        .get(url)
        .send()
        .await
        .map_err(|e| AuthorityError::Unreachable(format!("{url}: {e}")))?;
    read_json(response).await
}

/// The JSON body of a 2xx answer; any other status is a refusal with warrant's description.
async fn read_json(response: reqwest::Response) -> Result<Value, AuthorityError> {
    let status = response.status();
    let bytes = response
        .bytes()
        .await
        .map_err(|e| AuthorityError::Unreachable(e.to_string()))?;
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if !status.is_success() {
        let reason = body["error_description"]
            .as_str()
            .or(body["error"].as_str())
            .unwrap_or("no description");
        return Err(AuthorityError::Refused(format!("{status}: {reason}")));
    }
    Ok(body)
}
