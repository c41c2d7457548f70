//! `POST /register`: dynamic client registration (RFC 7591 §3). The secret is returned once
//! and only its SHA-256 is recorded.

use super::error::{OAuthError, no_store};
use crate::actors::client::{ClientCommand, ClientError};
use crate::actors::{CommandContext, CommandError};
use crate::clock::Timestamp;
use crate::events::ClientMetadata;
use crate::secret::{self, SecretHash};
use crate::server::Warrant;
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use uuid::Uuid;

/// The client metadata a registration request may carry (RFC 7591 §2). Unknown members are
/// ignored, as §2 requires.
#[derive(Debug, Deserialize)]
pub struct RegistrationRequest {
    #[serde(default)]
    redirect_uris: Vec<String>,
    client_name: Option<String>,
    grant_types: Option<Vec<String>>,
    response_types: Option<Vec<String>>,
    token_endpoint_auth_method: Option<String>,
    scope: Option<String>,
}

impl RegistrationRequest {
    /// The metadata with RFC 7591 §2 defaults filled in.
    fn metadata(self) -> ClientMetadata {
        ClientMetadata {
            client_name: self.client_name,
            redirect_uris: self.redirect_uris,
            grant_types: self
                .grant_types
                .unwrap_or_else(|| vec!["authorization_code".into()]),
            response_types: self.response_types.unwrap_or_else(|| vec!["code".into()]),
            token_endpoint_auth_method: self
                .token_endpoint_auth_method
                .unwrap_or_else(|| "client_secret_basic".into()),
            scope: self.scope,
        }
    }
}

/// Registers a client and answers 201 with its id and (for confidential clients) secret.
pub async fn register(
    warrant: web::Data<Warrant>,
    request: web::Json<RegistrationRequest>,
) -> Result<HttpResponse, OAuthError> {
    let now = Timestamp::now();
    let metadata = request.into_inner().metadata();
    let client_id = Uuid::new_v4().simple().to_string();
    let secret = (metadata.token_endpoint_auth_method != "none").then(secret::generate);
    let command = ClientCommand::Register {
        metadata: metadata.clone(),
        secret_hash: secret.as_deref().map(SecretHash::of),
        registered_by: None,
    };
    let committed = warrant
        .actors
        .clients
        .execute(&client_id, command, CommandContext::at(now))
        .await
        .map_err(|err| match err {
            CommandError::Refused(ClientError::InvalidRedirectUri(d)) => {
                OAuthError::InvalidRedirectUri(d)
            }
            CommandError::Refused(other) => OAuthError::InvalidClientMetadata(other.to_string()),
            CommandError::Store(err) => err.into(),
        })?;
    if let Some(position) = committed.last_position {
        warrant.models.wait_for(position).await;
    }
    let mut body = serde_json::to_value(&metadata).expect("metadata serializes");
    if let Some(members) = body.as_object_mut() {
        members.retain(|_, value| !value.is_null()); // RFC 7591 §3.2.1: only what is set
    }
    body["client_id"] = client_id.into();
    body["client_id_issued_at"] = now.unix_seconds().into();
    if let Some(secret) = secret {
        body["client_secret"] = secret.into();
        body["client_secret_expires_at"] = 0.into();
    }
    let mut response = HttpResponse::Created();
    no_store(&mut response);
    Ok(response.json(body))
}
