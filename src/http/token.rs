//! `POST /token` (RFC 6749 §3.2): client credentials today; each grant type its own function.

use super::client_auth::{AuthenticatedClient, authenticate};
use super::error::{OAuthError, no_store};
use super::form::{self, Form};
use crate::actors::grant::GrantCommand;
use crate::actors::{CommandContext, CommandError};
use crate::clock::Timestamp;
use crate::events::{GrantCreated, GrantOrigin};
use crate::server::Warrant;
use crate::tokens::access::{self, ACCESS_TOKEN_SECONDS, AccessGrant};
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;
use uuid::Uuid;

/// Largest form body accepted at the form endpoints.
pub const MAX_FORM_BYTES: usize = 16 * 1024;

/// Dispatches on `grant_type`.
pub async fn token(
    warrant: web::Data<Warrant>,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, OAuthError> {
    let form = form::read(&request, payload, MAX_FORM_BYTES).await?;
    let grant_type = form.required("grant_type")?;
    let client = authenticate(&request, &form, &warrant.models.read().clients)?;
    match grant_type {
        "client_credentials" => client_credentials(&warrant, &form, client).await,
        other => Err(OAuthError::UnsupportedGrantType(format!(
            "grant type `{other}` is not supported"
        ))),
    }
}

/// The scope to grant: what was asked for, which must lie within what the client registered
/// (when it registered a scope); by default what it registered.
pub fn granted_scope(
    client: &AuthenticatedClient,
    requested: Option<&str>,
) -> Result<String, OAuthError> {
    let registered = client.view.metadata.scope.as_deref();
    let Some(requested) = requested else {
        return Ok(registered.unwrap_or_default().to_owned());
    };
    if let Some(registered) = registered {
        let allowed: Vec<&str> = registered.split(' ').collect();
        if let Some(extra) = requested.split(' ').find(|s| !allowed.contains(s)) {
            return Err(OAuthError::InvalidScope(format!(
                "scope `{extra}` is not registered for this client"
            )));
        }
    }
    Ok(requested.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// RFC 8707 §2: each `resource` is an absolute URI without a fragment.
pub fn resources(form: &Form) -> Result<Vec<String>, OAuthError> {
    form.all("resource")
        .into_iter()
        .map(|r| {
            let scheme_ok = r.split_once("://").is_some_and(|(s, rest)| {
                !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric()) && !rest.is_empty()
            });
            if !scheme_ok || r.contains('#') {
                return Err(OAuthError::InvalidTarget(format!(
                    "resource `{r}` is not an absolute URI without a fragment"
                )));
            }
            Ok(r.to_owned())
        })
        .collect()
}

/// RFC 6749 §4.4: a confidential client asks for a token for itself.
async fn client_credentials(
    warrant: &Warrant,
    form: &Form,
    client: AuthenticatedClient,
) -> Result<HttpResponse, OAuthError> {
    if !client.confidential {
        return Err(OAuthError::UnauthorizedClient(
            "public clients cannot use client_credentials".into(),
        ));
    }
    if !client
        .view
        .metadata
        .grant_types
        .iter()
        .any(|g| g == "client_credentials")
    {
        return Err(OAuthError::UnauthorizedClient(
            "this client did not register the client_credentials grant".into(),
        ));
    }
    let scope = granted_scope(&client, form.get("scope"))?;
    let audience = resources(form)?;
    let now = Timestamp::now();
    let grant_id = Uuid::new_v4();
    let minted = access::issue(
        &warrant.keys,
        &warrant.config.issuer,
        &AccessGrant {
            grant_id,
            client_id: &client.client_id,
            subject: None,
            scope: &scope,
            audience: &audience,
        },
        now,
    );
    let command = GrantCommand::Create {
        created: GrantCreated {
            grant_id,
            client_id: client.client_id.clone(),
            subject: None,
            scope: scope.clone(),
            resources: audience.clone(),
            origin: GrantOrigin::ClientCredentials,
        },
        access: minted.event,
        refresh: None,
    };
    let committed = warrant
        .actors
        .grants
        .execute(&grant_id.to_string(), command, CommandContext::at(now))
        .await
        .map_err(|err| match err {
            CommandError::Refused(refusal) => OAuthError::InvalidGrant(refusal.to_string()),
            CommandError::Store(err) => err.into(),
        })?;
    if let Some(position) = committed.last_position {
        warrant.models.wait_for(position).await;
    }
    let mut response = HttpResponse::Ok();
    no_store(&mut response);
    Ok(response.json(json!({
        "access_token": minted.token,
        "token_type": "Bearer",
        "expires_in": ACCESS_TOKEN_SECONDS,
        "scope": scope,
    })))
}
