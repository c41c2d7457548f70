//! `POST /introspect` (RFC 7662): a hash lookup in the token read model, never a signature
//! check, so revocation is seen at once and the hot path stays cheap.

use super::client_auth::authenticate_confidential;
use super::error::{OAuthError, no_store};
use super::form;
use crate::clock::Timestamp;
use crate::events::TokenKind;
use crate::secret::SecretHash;
use crate::server::Warrant;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

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
    let body = match models.tokens.by_hash(&SecretHash::of(token)) {
        Some(view) if view.is_active(now) => {
            let mut body = json!({
                "active": true,
                "iss": warrant.config.issuer,
                "sub": view.subject.unwrap_or(view.client_id),
                "aud": view.audience,
                "exp": view.expires_at,
                "iat": view.issued_at,
                "nbf": view.issued_at,
                "client_id": view.client_id,
                "scope": view.scope,
                "token_type": match view.kind {
                    TokenKind::Access => "Bearer",
                    TokenKind::Refresh => "refresh_token",
                },
            });
            if let Some(jti) = view.jti {
                body["jti"] = jti.to_string().into();
            }
            if let Some(subject) = view.subject {
                body["username"] = subject.into();
                let scopes: Vec<&str> = view.scope.split(' ').collect();
                if scopes.contains(&"profile") {
                    body["name"] = subject.into();
                    body["preferred_username"] = subject.into();
                }
                if scopes.contains(&"email") && subject.contains('@') {
                    body["email"] = subject.into();
                }
            }
            if let Some(act) = &view.act {
                body["act"] = serde_json::to_value(act).unwrap_or(Value::Null);
            }
            body
        }
        _ => json!({ "active": false }),
    };
    let mut response = HttpResponse::Ok();
    no_store(&mut response);
    Ok(response.json(body))
}
