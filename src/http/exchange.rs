//! RFC 8693 token exchange at `/token` (with `--enable-sts`): a gateway swaps a user's token
//! for one addressed to the server behind it. The audiences must be allowed by the user's
//! capability rules; the new token names the gateway in `act`, nests earlier actors, and
//! never outlives its subject token. Every exchange, granted or denied, is an event.

use super::caller::record_refusal;
use super::client_auth::AuthenticatedClient;
use super::error::OAuthError;
use super::form::Form;
use super::issued_token;
use super::token::{Issued, has_scope, respond, run_grant};
use crate::actors::CommandContext;
use crate::actors::grant::{GrantCommand, IssuedToken};
use crate::capabilities::same_resource;
use crate::clock::Timestamp;
use crate::events::{ActorClaim, DeniedRequest, TokenExchanged, TokenKind};
use crate::identity::Profile;
use crate::secret::SecretHash;
use crate::server::Warrant;
use crate::tokens::access::ACCESS_TOKEN_SECONDS;
use crate::tokens::jwt::{AccessClaims, mint_access};
use actix_web::HttpResponse;
use uuid::Uuid;

/// The grant type of RFC 8693 §2.1.
pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// The token type of an access token (RFC 8693 §3).
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
const JWT_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";

/// An active access token presented as subject or actor.
struct Presented {
    token: IssuedToken,
    grant_id: Uuid,
    jti: Uuid,
    subject: Option<String>,
    profile: Option<String>,
    scope: String,
    act: Option<ActorClaim>,
}

/// Looks up an active warrant access token by its text.
fn active_access_token(warrant: &Warrant, token: &str, now: Timestamp) -> Option<Presented> {
    let models = warrant.models.read();
    let hash = SecretHash::of(token);
    let view = models.tokens.by_hash(&hash)?;
    if view.kind != TokenKind::Access || !view.is_active(now.unix_seconds()) {
        return None;
    }
    Some(Presented {
        token: issued_token(hash, &view),
        grant_id: view.grant_id,
        jti: view.jti?,
        subject: view.subject.map(str::to_owned),
        profile: view.profile.map(str::to_owned),
        scope: view.scope.to_owned(),
        act: view.act.clone(),
    })
}

fn token_type_ok(value: Option<&str>) -> bool {
    matches!(value, Some(ACCESS_TOKEN_TYPE) | Some(JWT_TYPE))
}

/// Records a refused exchange, then returns the error for the client.
async fn deny(
    warrant: &Warrant,
    client: &AuthenticatedClient,
    subject: Option<&str>,
    error: OAuthError,
    context: CommandContext,
) -> Result<HttpResponse, OAuthError> {
    let client_id = Some(client.client_id.clone());
    let subject = subject.map(str::to_owned);
    record_refusal(
        warrant,
        DeniedRequest::Exchange,
        &error,
        client_id,
        subject,
        context,
    )
    .await?;
    Err(error)
}

/// Exchanges `subject_token` for a token addressed to the requested audiences.
pub async fn exchange(
    warrant: &Warrant,
    form: &Form,
    client: AuthenticatedClient,
) -> Result<HttpResponse, OAuthError> {
    if !client.confidential {
        return Err(OAuthError::InvalidClient(
            "token exchange needs client authentication".into(),
        ));
    }
    let subject_token = form.required("subject_token")?;
    if !token_type_ok(form.get("subject_token_type")) {
        return Err(OAuthError::InvalidRequest(format!(
            "subject_token_type must be {ACCESS_TOKEN_TYPE} or {JWT_TYPE}"
        )));
    }
    if form
        .get("requested_token_type")
        .is_some_and(|t| t != ACCESS_TOKEN_TYPE)
    {
        return Err(OAuthError::InvalidRequest(format!(
            "requested_token_type must be {ACCESS_TOKEN_TYPE}"
        )));
    }
    let mut requested: Vec<String> = Vec::new();
    for target in form.all("audience").into_iter().chain(form.all("resource")) {
        if !requested.iter().any(|r| same_resource(r, target)) {
            requested.push(target.to_owned());
        }
    }
    if requested.is_empty() {
        return Err(OAuthError::InvalidRequest(
            "name the target with audience or resource".into(),
        ));
    }
    let now = Timestamp::now();
    let context = CommandContext::at(now);
    let Some(subject) = active_access_token(warrant, subject_token, now) else {
        let error =
            OAuthError::InvalidRequest("subject_token is not an active access token".into());
        return deny(warrant, &client, None, error, context).await;
    };
    let prior = match form.get("actor_token") {
        None => subject.act.clone(),
        Some(actor_token) => {
            if !token_type_ok(form.get("actor_token_type")) {
                return Err(OAuthError::InvalidRequest(format!(
                    "actor_token_type must be {ACCESS_TOKEN_TYPE} or {JWT_TYPE}"
                )));
            }
            let Some(actor) = active_access_token(warrant, actor_token, now) else {
                let error =
                    OAuthError::InvalidRequest("actor_token is not an active access token".into());
                return deny(warrant, &client, subject.subject.as_deref(), error, context).await;
            };
            Some(ActorClaim {
                sub: actor.subject.unwrap_or(actor.token.client_id),
                client_id: None,
                act: actor.act.map(Box::new),
            })
        }
    };
    let Some(login) = subject.subject.as_deref() else {
        let error = OAuthError::AccessDenied(
            "the subject token speaks for no user, so no capability rule can allow an exchange"
                .into(),
        );
        return deny(warrant, &client, None, error, context).await;
    };
    // The rules in force when the user logged in, as recorded in the subject's grant.
    let user = Profile::recorded(login, subject.profile.as_deref());
    let audience: Vec<String> = requested
        .into_iter()
        .filter(|a| user.may_access(a))
        .collect();
    if audience.is_empty() {
        let error = OAuthError::AccessDenied(format!(
            "no requested audience is allowed for `{login}` by the capability rules recorded at login"
        ));
        return deny(warrant, &client, Some(login), error, context).await;
    }
    // RFC 8693 §2.1: the issued token may carry less than was asked for; it never carries
    // more than the subject token.
    let scope = match form.get("scope") {
        None => subject.scope.clone(),
        Some(requested) => {
            let granted: Vec<&str> = requested
                .split(' ')
                .filter(|s| !s.is_empty() && has_scope(&subject.scope, s))
                .collect();
            if granted.is_empty() {
                return Err(OAuthError::InvalidScope(
                    "none of the requested scopes is in the subject token".into(),
                ));
            }
            granted.join(" ")
        }
    };
    let actor = ActorClaim {
        sub: client.client_id.clone(),
        client_id: Some(client.client_id.clone()),
        act: prior.map(Box::new),
    };
    let expires =
        (now.unix_seconds() + ACCESS_TOKEN_SECONDS).min(subject.token.expires_at.unix_seconds());
    let jti = Uuid::new_v4();
    let token = mint_access(
        &warrant.signing_keys().ed25519,
        &AccessClaims {
            iss: &warrant.config.issuer,
            sub: login,
            aud: &audience,
            exp: expires,
            iat: now.unix_seconds(),
            nbf: now.unix_seconds(),
            jti,
            client_id: &client.client_id,
            scope: &scope,
            act: Some(&actor),
        },
    );
    let exchanged = TokenExchanged {
        grant_id: subject.grant_id,
        subject_jti: subject.jti,
        jti,
        token_hash: SecretHash::of(&token),
        client_id: client.client_id.clone(),
        subject: subject.subject.clone(),
        actor,
        audience,
        scope: scope.clone(),
        issued_at: now,
        expires_at: Timestamp(expires * 1000),
    };
    let committed = run_grant(
        warrant,
        subject.grant_id,
        GrantCommand::Exchange {
            exchanged: Box::new(exchanged),
            subject: subject.token,
        },
        now,
        None,
    )
    .await?;
    let issued = Issued {
        access: token,
        expires_in: (expires - now.unix_seconds()).max(0),
        scope: &scope,
        refresh: None,
        id_token: None,
        issued_token_type: Some(ACCESS_TOKEN_TYPE),
    };
    respond(warrant, &committed, issued).await
}
