//! `GET|POST /authorize` (RFC 6749 §4.1.1, RFC 7636, RFC 8707): the code flow only. The user
//! the identity source names is approved without a prompt: the network is the
//! authentication.
//!
//! Errors that make the redirect URI untrustworthy (unknown client, missing or unregistered
//! redirect URI, unreadable request) and callers that cannot be identified get an error
//! page; every other error goes back to the client on its redirect URI (§4.1.2.1).

use super::caller::record_refusal;
use super::client_auth::AuthenticatedClient;
use super::client_document;
use super::error::{OAuthError, no_store};
use super::form::{self, Form};
use super::token::{granted_scope, resources};
use crate::actors::CommandContext;
use crate::actors::session::SessionCommand;
use crate::clock::Timestamp;
use crate::events::{AuthorizationCodeIssued, DeniedRequest};
use crate::identity::{IdentityError, Profile};
use crate::secret::{self, SecretHash};
use crate::server::Warrant;
use actix_web::http::header::LOCATION;
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse, web};
use url::Url;
use uuid::Uuid;

/// How long a code may wait for redemption, in seconds.
pub const CODE_SECONDS: i64 = 60;

/// Handles an authorization request.
pub async fn authorize(
    warrant: web::Data<Warrant>,
    request: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let form = if request.method() == Method::POST {
        form::read(&request, payload, warrant.config.max_body).await
    } else {
        Form::parse(request.query_string().as_bytes())
    };
    let form = match form {
        Ok(form) => form,
        Err(err) => return error_page(StatusCode::BAD_REQUEST, err.description()),
    };
    if let Some(client_id) = form
        .get("client_id")
        .filter(|id| client_document::is_document_id(id))
        && let Err(err) = client_document::resolve(&warrant, client_id).await
    {
        return error_page(StatusCode::BAD_REQUEST, err.description());
    }
    let (redirect_uri, state, client) = match trusted_redirect(&warrant, &form) {
        Ok(target) => target,
        Err(message) => return error_page(StatusCode::BAD_REQUEST, &message),
    };
    let outcome = match identify(&warrant, &request, &client.client_id).await {
        Ok(user) => approve(&warrant, &form, &redirect_uri, client, user).await,
        Err(Unidentified::Page(status, message)) => return error_page(status, &message),
        Err(Unidentified::Redirect(err)) => Err(err),
    };
    let outcome = match outcome {
        Ok(code) => vec![("code", code)],
        Err(err) => vec![
            ("error", err.code().to_owned()),
            ("error_description", err.description().to_owned()),
        ],
    };
    let mut location = redirect_uri;
    {
        let mut query = location.query_pairs_mut();
        for (name, value) in &outcome {
            query.append_pair(name, value);
        }
        if let Some(state) = &state {
            query.append_pair("state", state);
        }
        query.append_pair("iss", &warrant.config.issuer); // RFC 9207
    }
    let mut response = HttpResponse::Found();
    no_store(&mut response);
    response
        .insert_header((LOCATION, location.as_str()))
        .finish()
}

/// The client's redirect URI if the request names a known client and one of its registered
/// redirect URIs exactly, the `state` to return, and the client.
fn trusted_redirect(
    warrant: &Warrant,
    form: &Form,
) -> Result<(Url, Option<String>, AuthenticatedClient), String> {
    let client_id = form
        .get("client_id")
        .ok_or("the request names no client_id")?;
    let models = warrant.models.read();
    let client = models
        .clients
        .get(client_id)
        .ok_or_else(|| format!("unknown client `{client_id}`"))?;
    let redirect_uri = form
        .get("redirect_uri")
        .ok_or("the request has no redirect_uri")?;
    if !client
        .metadata
        .redirect_uris
        .iter()
        .any(|r| r == redirect_uri)
    {
        return Err("redirect_uri is not registered for this client".into());
    }
    let url = Url::parse(redirect_uri).map_err(|e| format!("redirect_uri: {e}"))?;
    let client = AuthenticatedClient {
        client_id: client_id.to_owned(),
        confidential: client.metadata.token_endpoint_auth_method != "none",
        view: client.clone(),
    };
    Ok((url, form.get("state").map(str::to_owned), client))
}

/// Why the user at the browser is not approved.
enum Unidentified {
    /// Nobody who may log in is known there: an error page (the client learns nothing).
    Page(StatusCode, String),
    /// A known node that may not log in (tagged, or with unusable rules): `access_denied`
    /// back to the client.
    Redirect(OAuthError),
}

/// The user at the browser; every refusal is recorded.
async fn identify(
    warrant: &Warrant,
    request: &HttpRequest,
    client_id: &str,
) -> Result<Profile, Unidentified> {
    let err = match warrant.identity.caller(request).await {
        Ok(profile) => return Ok(profile),
        Err(err) => err,
    };
    tracing::warn!(%err, client_id, "authorization refused: caller not identified");
    let refusal = OAuthError::AccessDenied(err.to_string());
    let context = CommandContext::at(Timestamp::now());
    let client_id = Some(client_id.to_owned());
    if let Err(unrecorded) = record_refusal(
        warrant,
        DeniedRequest::Authorization,
        &refusal,
        client_id,
        None,
        context,
    )
    .await
    {
        return Err(Unidentified::Redirect(unrecorded));
    }
    Err(match err {
        IdentityError::TaggedNode { .. } | IdentityError::BadPolicy(_) => {
            Unidentified::Redirect(refusal)
        }
        IdentityError::Unavailable(_) => {
            Unidentified::Page(StatusCode::SERVICE_UNAVAILABLE, err.to_string())
        }
        IdentityError::NotLoopback(_) | IdentityError::UnknownPeer(_) => {
            Unidentified::Page(StatusCode::FORBIDDEN, err.to_string())
        }
    })
}

/// Checks the rest of the request, records the code, and returns it.
async fn approve(
    warrant: &Warrant,
    form: &Form,
    redirect_uri: &Url,
    client: AuthenticatedClient,
    user: Profile,
) -> Result<String, OAuthError> {
    match form.get("response_type") {
        Some("code") => {}
        Some(other) => {
            return Err(OAuthError::UnsupportedResponseType(format!(
                "response_type `{other}` is not supported; use `code`"
            )));
        }
        None => {
            return Err(OAuthError::InvalidRequest(
                "missing parameter `response_type`".into(),
            ));
        }
    }
    if !client
        .view
        .metadata
        .grant_types
        .iter()
        .any(|g| g == "authorization_code")
    {
        return Err(OAuthError::UnauthorizedClient(
            "this client did not register the authorization_code grant".into(),
        ));
    }
    let mut scope = granted_scope(&client, form.get("scope"))?;
    if scope.is_empty() {
        scope = "openid".into(); // as tsidp: a login without a scope is an OpenID login
    }
    let code_challenge = pkce_challenge(form, client.confidential)?;
    let resources = resources(form)?;
    if let Some(denied) = resources.iter().find(|r| !user.may_access(r)) {
        return Err(OAuthError::InvalidTarget(format!(
            "resource `{denied}` is not allowed for `{}` by the capability rules",
            user.login
        )));
    }
    let now = Timestamp::now();
    let session_id = Uuid::new_v4();
    let code = format!("{}.{}", session_id.simple(), secret::generate());
    let issued = AuthorizationCodeIssued {
        session_id,
        code_hash: SecretHash::of(&code),
        client_id: client.client_id,
        subject: user.login.clone(),
        profile: Some(user),
        redirect_uri: redirect_uri.as_str().to_owned(),
        scope,
        code_challenge,
        nonce: form.get("nonce").map(str::to_owned),
        resources,
        expires_at: now.plus_seconds(CODE_SECONDS),
    };
    warrant
        .actors
        .sessions
        .execute(
            &session_id.to_string(),
            SessionCommand::IssueCode(Box::new(issued)),
            CommandContext::at(now),
        )
        .await
        .map_err(|err| match err {
            crate::actors::CommandError::Store(err) => err.into(),
            crate::actors::CommandError::Refused(refusal) => {
                OAuthError::InvalidRequest(refusal.to_string())
            }
        })?;
    Ok(code)
}

/// RFC 7636 §4.3: S256 only (an absent method means `plain`, refused); public clients must
/// use PKCE.
fn pkce_challenge(form: &Form, confidential: bool) -> Result<Option<String>, OAuthError> {
    let Some(challenge) = form.get("code_challenge") else {
        if !confidential {
            return Err(OAuthError::InvalidRequest(
                "public clients must use PKCE (code_challenge with S256)".into(),
            ));
        }
        return Ok(None);
    };
    if form.get("code_challenge_method") != Some("S256") {
        return Err(OAuthError::InvalidRequest(
            "code_challenge_method must be S256 (plain is not allowed)".into(),
        ));
    }
    let well_formed = challenge.len() == 43
        && challenge
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_');
    if !well_formed {
        return Err(OAuthError::InvalidRequest(
            "code_challenge must be a base64url SHA-256 (43 characters)".into(),
        ));
    }
    Ok(Some(challenge.to_owned()))
}

fn error_page(status: StatusCode, message: &str) -> HttpResponse {
    let escaped = super::escape_html(message);
    let mut response = HttpResponse::build(status);
    no_store(&mut response);
    response.content_type("text/html; charset=utf-8").body(format!(
        "<!doctype html><title>Authorization failed</title><h1>Authorization failed</h1><p>{escaped}</p>"
    ))
}
