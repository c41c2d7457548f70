//! Client authentication at the token, introspection and revocation endpoints (RFC 6749
//! §2.3): HTTP Basic, form parameters, or none for public clients. Secrets are compared by
//! their SHA-256 in constant time.

use super::error::OAuthError;
use super::form::Form;
use super::funnel;
use crate::projections::clients::{ClientView, Clients};
use actix_web::HttpRequest;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use percent_encoding::percent_decode_str;
use std::sync::Arc;

/// A client that proved who it is (or, for a public client, named itself).
#[derive(Clone, Debug)]
pub struct AuthenticatedClient {
    /// Its id.
    pub client_id: String,
    /// Whether it proved a secret (confidential) rather than only naming itself.
    pub confidential: bool,
    /// Its registered metadata and secret hash.
    pub view: Arc<ClientView>,
}

/// The credentials a request presents.
enum Presented {
    Secret { client_id: String, secret: String },
    PublicId(String),
}

fn presented(request: &HttpRequest, form: &Form) -> Result<Presented, OAuthError> {
    let basic = request
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Basic ")
                .or_else(|| v.strip_prefix("basic "))
        });
    if let Some(encoded) = basic {
        if form.get("client_secret").is_some() {
            return Err(OAuthError::InvalidRequest(
                "use one client authentication method, not two (RFC 6749 §2.3)".into(),
            ));
        }
        let bad = || OAuthError::InvalidClient("malformed Basic credentials".into());
        let decoded = STANDARD.decode(encoded.trim()).map_err(|_| bad())?;
        let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
        let (id, secret) = decoded.split_once(':').ok_or_else(bad)?;
        // RFC 6749 §2.3.1: both halves are form-urlencoded before Basic encoding.
        let unescape = |s: &str| {
            percent_decode_str(&s.replace('+', " "))
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| bad())
        };
        return Ok(Presented::Secret {
            client_id: unescape(id)?,
            secret: unescape(secret)?,
        });
    }
    match (form.get("client_id"), form.get("client_secret")) {
        (Some(id), Some(secret)) => Ok(Presented::Secret {
            client_id: id.to_owned(),
            secret: secret.to_owned(),
        }),
        (Some(id), None) => Ok(Presented::PublicId(id.to_owned())),
        (None, _) => Err(OAuthError::InvalidClient("no client authentication".into())),
    }
}

/// Authenticates the calling client against the client read model.
pub fn authenticate(
    request: &HttpRequest,
    form: &Form,
    clients: &Clients,
) -> Result<AuthenticatedClient, OAuthError> {
    let unknown = || OAuthError::InvalidClient("unknown client or wrong credentials".into());
    match presented(request, form)? {
        Presented::Secret { client_id, secret } => {
            let view = clients.get(&client_id).ok_or_else(unknown)?;
            let matches = view.secret_hash.is_some_and(|hash| hash.matches(&secret));
            if !matches {
                return Err(unknown());
            }
            funnel::check_client(request, &client_id, view.funnel)?;
            Ok(AuthenticatedClient {
                client_id,
                confidential: true,
                view: view.clone(),
            })
        }
        Presented::PublicId(client_id) => {
            let view = clients.get(&client_id).ok_or_else(unknown)?;
            if view.metadata.token_endpoint_auth_method != "none" {
                return Err(OAuthError::InvalidClient(
                    "this client must authenticate with its secret".into(),
                ));
            }
            funnel::check_client(request, &client_id, view.funnel)?;
            Ok(AuthenticatedClient {
                client_id,
                confidential: false,
                view: view.clone(),
            })
        }
    }
}

/// Authenticates a client that must be confidential (introspection, client credentials).
pub fn authenticate_confidential(
    request: &HttpRequest,
    form: &Form,
    clients: &Clients,
) -> Result<AuthenticatedClient, OAuthError> {
    let client = authenticate(request, form, clients)?;
    if !client.confidential {
        return Err(OAuthError::InvalidClient(
            "a public client cannot use this endpoint".into(),
        ));
    }
    Ok(client)
}
