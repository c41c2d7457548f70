//! `POST /introspect` (RFC 7662): a hash lookup in the token read model, never a signature
//! check, so revocation is seen at once and the hot path stays cheap.

use super::client_auth::authenticate_confidential;
use super::error::{OAuthError, no_store};
use super::form;
use super::token::has_scope;
use crate::clock::Timestamp;
use crate::events::{ActorClaim, TokenKind};
use crate::projections::tokens::TokenView;
use crate::secret::SecretHash;
use crate::server::Warrant;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

/// Answers whether a token is active, and what it carries if it is.
pub async fn introspect(
    warrant: web::Data<Warrant>,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, OAuthError> {
    let form = form::read(&request, payload, warrant.config.max_body).await?;
    let models = warrant.models.read();
    authenticate_confidential(&request, &form, &models.clients)?;
    let token = form.required("token")?;
    let now = Timestamp::now().unix_seconds();
    let mut response = HttpResponse::Ok();
    no_store(&mut response);
    Ok(match models.tokens.by_hash(&SecretHash::of(token)) {
        Some(view) if view.is_active(now) => {
            response.json(Active::of(&view, &warrant.config.issuer))
        }
        _ => response.json(json!({ "active": false })),
    })
}

/// The answer for an active token (RFC 7662 §2.2), serialized straight from the token
/// model's view.
#[derive(Serialize)]
struct Active<'a> {
    active: bool,
    iss: &'a str,
    sub: &'a str,
    aud: &'a [&'a str],
    exp: i64,
    iat: i64,
    nbf: i64,
    client_id: &'a str,
    scope: &'a str,
    token_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    jti: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    username: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    preferred_username: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    act: Option<&'a ActorClaim>,
}

impl<'a> Active<'a> {
    /// What the token `view` carries, as issued by `issuer`; the user's name and email
    /// when its scopes ask for them.
    fn of(view: &'a TokenView<'a>, issuer: &'a str) -> Active<'a> {
        let named = view.subject.filter(|_| has_scope(view.scope, "profile"));
        Active {
            active: true,
            iss: issuer,
            sub: view.subject.unwrap_or(view.client_id),
            aud: &view.audience,
            exp: view.expires_at,
            iat: view.issued_at,
            nbf: view.issued_at,
            client_id: view.client_id,
            scope: view.scope,
            token_type: match view.kind {
                TokenKind::Access => "Bearer",
                TokenKind::Refresh => "refresh_token",
            },
            jti: view.jti,
            username: view.subject,
            name: named,
            preferred_username: named,
            email: view
                .subject
                .filter(|subject| has_scope(view.scope, "email") && subject.contains('@')),
            act: view.act.as_ref(),
        }
    }
}
