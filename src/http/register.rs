//! Dynamic client registration (RFC 7591 §3) at `POST /register`, and its management
//! (RFC 7592) at `GET|PUT|DELETE /register/{client_id}` with the registration access token.
//! Secrets are returned once; only their SHA-256 is recorded.

use super::caller::{Permission, permitted};
use super::error::{OAuthError, no_store, no_store_json};
use crate::actors::client::{ClientCommand, ClientError};
use crate::actors::grant::GrantError;
use crate::actors::{CommandContext, CommandError, Committed};
use crate::clock::Timestamp;
use crate::events::{ClientMetadata, RevocationReason};
use crate::projections::clients::ClientView;
use crate::secret::{self, SecretHash};
use crate::server::Warrant;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;
use uuid::Uuid;

/// The client metadata a registration request may carry (RFC 7591 §2, OIDC Dynamic
/// Registration §2). Unknown members are ignored, as §2 requires.
#[derive(Debug, Deserialize)]
pub struct RegistrationRequest {
    redirect_uris: Option<Vec<String>>,
    client_name: Option<String>,
    grant_types: Option<Vec<String>>,
    response_types: Option<Vec<String>>,
    token_endpoint_auth_method: Option<String>,
    scope: Option<String>,
    client_uri: Option<String>,
    logo_uri: Option<String>,
    contacts: Option<Vec<String>>,
    application_type: Option<String>,
    id_token_signed_response_alg: Option<String>,
    /// RFC 7592 §2.2: an update repeats the client's id (a metadata document names itself).
    pub(super) client_id: Option<String>,
    /// RFC 7592 §2.2: an update may repeat the secret; it must then be the current one.
    pub(super) client_secret: Option<String>,
}

impl RegistrationRequest {
    /// The metadata with RFC 7591 §2 defaults filled in.
    fn metadata(self) -> ClientMetadata {
        self.metadata_with_default_auth("client_secret_basic")
    }

    /// The metadata with RFC 7591 §2 defaults, and `auth` as the default authentication
    /// method (`none` for metadata documents, which cannot hold a secret).
    pub(super) fn metadata_with_default_auth(self, auth: &str) -> ClientMetadata {
        let grant_types = self
            .grant_types
            .unwrap_or_else(|| vec!["authorization_code".into()]);
        let response_types = self.response_types.unwrap_or_else(|| {
            let code = grant_types.iter().any(|g| g == "authorization_code");
            if code {
                vec!["code".into()]
            } else {
                Vec::new()
            }
        });
        ClientMetadata {
            client_name: self.client_name,
            redirect_uris: self.redirect_uris.unwrap_or_default(),
            grant_types,
            response_types,
            token_endpoint_auth_method: self
                .token_endpoint_auth_method
                .unwrap_or_else(|| auth.into()),
            scope: self.scope,
            client_uri: self.client_uri,
            logo_uri: self.logo_uri,
            contacts: self.contacts.unwrap_or_default(),
            application_type: self.application_type,
            id_token_signed_response_alg: self.id_token_signed_response_alg,
        }
    }
}

/// The OAuth error for a refused client command.
pub(super) fn refusal(err: CommandError<ClientError>) -> OAuthError {
    match err {
        CommandError::Refused(ClientError::InvalidRedirectUri(d)) => {
            OAuthError::InvalidRedirectUri(d)
        }
        CommandError::Refused(ClientError::NotFound) => {
            OAuthError::InvalidToken("unknown client".into())
        }
        CommandError::Refused(other) => OAuthError::InvalidClientMetadata(other.to_string()),
        CommandError::Store(err) => err.into(),
    }
}

/// Waits until the read models show what `committed` recorded.
pub(super) async fn visible(warrant: &Warrant, committed: &Committed) {
    if let Some(position) = committed.last_position {
        warrant.models.wait_for(position).await;
    }
}

/// The client information response (RFC 7591 §3.2.1): the metadata that is set, the id and
/// the management URI.
fn information(
    warrant: &Warrant,
    client_id: &str,
    metadata: &ClientMetadata,
    issued_at: Timestamp,
) -> Value {
    let mut body = serde_json::to_value(metadata).expect("metadata serializes");
    if let Some(members) = body.as_object_mut() {
        // Only what is set: SDK models refuse members they did not send, such as an empty
        // `redirect_uris` for a client-credentials client.
        members
            .retain(|_, value| !value.is_null() && value.as_array().is_none_or(|a| !a.is_empty()));
    }
    body["client_id"] = client_id.into();
    body["client_id_issued_at"] = issued_at.unix_seconds().into();
    body["registration_client_uri"] =
        format!("{}/register/{client_id}", warrant.config.issuer).into();
    body
}

/// `POST /register`: registers a client for a caller granted `allow_dcr`, and answers 201
/// with its id, its secret (not for public clients) and its registration access token.
pub async fn register(
    warrant: web::Data<Warrant>,
    http: HttpRequest,
    request: web::Json<RegistrationRequest>,
) -> Result<HttpResponse, OAuthError> {
    let caller = permitted(&warrant, &http, Permission::RegisterClients).await?;
    let now = Timestamp::now();
    let metadata = request.into_inner().metadata();
    let client_id = Uuid::new_v4().simple().to_string();
    let secret = (metadata.token_endpoint_auth_method != "none").then(secret::generate);
    let registration_token = secret::generate();
    let command = ClientCommand::Register {
        metadata: metadata.clone(),
        secret_hash: secret.as_deref().map(SecretHash::of),
        registered_by: Some(caller.login),
        registration_token_hash: Some(SecretHash::of(&registration_token)),
        funnel: false,
    };
    let committed = warrant
        .actors
        .clients
        .execute(&client_id, command, CommandContext::at(now))
        .await
        .map_err(refusal)?;
    visible(&warrant, &committed).await;
    let mut body = information(&warrant, &client_id, &metadata, now);
    if let Some(secret) = secret {
        body["client_secret"] = secret.into();
        body["client_secret_expires_at"] = 0.into();
    }
    body["registration_access_token"] = registration_token.into();
    Ok(no_store_json(HttpResponse::Created(), body))
}

/// The client named in the path, if the request carries its registration access token
/// (RFC 7592 §3: otherwise 401 `invalid_token`, whether or not the client exists).
fn managed(
    warrant: &Warrant,
    request: &HttpRequest,
    client_id: &str,
) -> Result<Arc<ClientView>, OAuthError> {
    let token = super::bearer_token(request).ok_or_else(|| {
        OAuthError::InvalidToken("a registration access token is required".into())
    })?;
    let models = warrant.models.read();
    models
        .clients
        .get(client_id)
        .filter(|view| {
            view.registration_token_hash
                .is_some_and(|h| h.matches(token))
        })
        .cloned()
        .ok_or_else(|| {
            OAuthError::InvalidToken("unknown client or wrong registration access token".into())
        })
}

/// `GET /register/{client_id}` (RFC 7592 §2.1): the client's current registration. The
/// secret is not returned: warrant keeps only its hash.
pub async fn read(
    warrant: web::Data<Warrant>,
    request: HttpRequest,
    client_id: web::Path<String>,
) -> Result<HttpResponse, OAuthError> {
    let view = managed(&warrant, &request, &client_id)?;
    let body = information(&warrant, &client_id, &view.metadata, view.registered_at);
    Ok(no_store_json(HttpResponse::Ok(), body))
}

/// `PUT /register/{client_id}` (RFC 7592 §2.2): replaces the client's metadata as a whole.
pub async fn update(
    warrant: web::Data<Warrant>,
    request: HttpRequest,
    client_id: web::Path<String>,
    body: web::Json<RegistrationRequest>,
) -> Result<HttpResponse, OAuthError> {
    let view = managed(&warrant, &request, &client_id)?;
    let body = body.into_inner();
    if body.client_id.as_deref() != Some(client_id.as_str()) {
        return Err(OAuthError::InvalidRequest(
            "the body's client_id must be the client's".into(),
        ));
    }
    if let Some(secret) = &body.client_secret
        && !view.secret_hash.is_some_and(|h| h.matches(secret))
    {
        return Err(OAuthError::InvalidRequest(
            "client_secret is not the client's secret".into(),
        ));
    }
    let metadata = body.metadata();
    let committed = warrant
        .actors
        .clients
        .execute(
            &client_id,
            ClientCommand::Update {
                metadata: metadata.clone(),
            },
            CommandContext::at(Timestamp::now()),
        )
        .await
        .map_err(refusal)?;
    visible(&warrant, &committed).await;
    let body = information(&warrant, &client_id, &metadata, view.registered_at);
    Ok(no_store_json(HttpResponse::Ok(), body))
}

/// `DELETE /register/{client_id}` (RFC 7592 §2.3): deletes the client and revokes every
/// grant it holds, each with its own event.
pub async fn delete(
    warrant: web::Data<Warrant>,
    request: HttpRequest,
    client_id: web::Path<String>,
) -> Result<HttpResponse, OAuthError> {
    managed(&warrant, &request, &client_id)?;
    delete_client(&warrant, &client_id).await?;
    let mut response = HttpResponse::NoContent();
    no_store(&mut response);
    Ok(response.finish())
}

/// Deletes a client and revokes each of its live grants.
pub(super) async fn delete_client(warrant: &Warrant, client_id: &str) -> Result<(), OAuthError> {
    let context = CommandContext::at(Timestamp::now());
    let committed = warrant
        .actors
        .clients
        .execute(client_id, ClientCommand::Delete, context)
        .await
        .map_err(refusal)?;
    visible(warrant, &committed).await;
    let grants = warrant.models.read().tokens.live_grants_of(client_id);
    for grant_id in grants {
        let revoke = crate::actors::grant::GrantCommand::Revoke {
            reason: RevocationReason::ClientDeleted,
        };
        match warrant
            .actors
            .grants
            .execute(&grant_id.to_string(), revoke, context)
            .await
        {
            Ok(committed) => visible(warrant, &committed).await,
            Err(CommandError::Refused(GrantError::Revoked(_))) => {}
            Err(CommandError::Refused(other)) => {
                tracing::warn!(%other, %grant_id, "revoking a deleted client's grant was refused")
            }
            Err(CommandError::Store(err)) => return Err(err.into()),
        }
    }
    Ok(())
}
