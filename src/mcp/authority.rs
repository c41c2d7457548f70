//! Dealings with warrant as a protected resource has them: discovery, registering itself,
//! introspecting the tokens clients present, and (for the gateway) RFC 8693 exchange.

use serde::Deserialize;
use serde_json::{Value, json};

/// warrant (or any RFC 8414 authorization server) as a resource server uses it.
pub struct Authority {
    http: reqwest::Client,
    /// The issuer, exactly as the metadata names it.
    pub issuer: String,
    token_endpoint: String,
    introspection_endpoint: String,
    client_id: String,
    client_secret: String,
}

/// What introspection (RFC 7662) says of a presented token, as warrant sent it.
#[derive(Debug, Clone)]
pub struct Introspection(pub Value);

impl Introspection {
    /// Whether the token is active.
    pub fn active(&self) -> bool {
        self.0["active"] == true
    }

    /// Its audiences.
    pub fn audiences(&self) -> Vec<&str> {
        audiences(&self.0["aud"])
    }

    /// Whether it is active and names `resource` (RFC 3986-normalized) among its audiences.
    pub fn addressed_to(&self, resource: &str) -> bool {
        self.active()
            && self
                .audiences()
                .iter()
                .any(|aud| crate::capabilities::same_resource(aud, resource))
    }
}

/// The audiences of an `aud` value, which RFC 7519 §4.1.3 lets be a string or an array.
pub fn audiences(aud: &Value) -> Vec<&str> {
    match aud {
        Value::String(one) => vec![one.as_str()],
        Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
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
    /// Reads the metadata at `auth_server_url` and, without `credentials`, registers a
    /// confidential client named `client_name` for `grant_types`.
    pub async fn connect(
        http: reqwest::Client,
        auth_server_url: &str,
        credentials: Option<(String, String)>,
        client_name: &str,
        grant_types: &[&str],
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
                    "client_name": client_name,
                    "grant_types": grant_types,
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

    /// Introspects a presented token with this client's credentials.
    pub async fn introspect(&self, token: &str) -> Result<Introspection, AuthorityError> {
        let body = self
            .post_form(&self.introspection_endpoint, &[("token", token)])
            .await?;
        Ok(Introspection(body))
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
