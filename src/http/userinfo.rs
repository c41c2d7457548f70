//! `GET|POST /userinfo` (OIDC Core §5.3): the claims of the user an access token speaks for.
//! Bearer errors per RFC 6750 §3.

use super::error::no_store;
use crate::clock::Timestamp;
use crate::events::TokenKind;
use crate::identity::Profile;
use crate::secret::SecretHash;
use crate::server::Warrant;
use actix_web::http::header::WWW_AUTHENTICATE;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

/// Answers the profile of the token's user.
pub async fn userinfo(warrant: web::Data<Warrant>, request: HttpRequest) -> HttpResponse {
    let Some(token) = super::bearer_token(&request) else {
        // RFC 6750 §3.1: no credentials, no error code.
        return bearer_error(401, "Bearer realm=\"warrant\"".into());
    };
    let models = warrant.models.read();
    let now = Timestamp::now().unix_seconds();
    let view = models
        .tokens
        .by_hash(&SecretHash::of(token))
        .filter(|v| v.kind == TokenKind::Access && v.is_active(now));
    let Some(view) = view else {
        return bearer_error(
            401,
            "Bearer realm=\"warrant\", error=\"invalid_token\", error_description=\"the access token is unknown, expired or revoked\"".into(),
        );
    };
    let (Some(subject), true) = (view.subject, view.scope.split(' ').any(|s| s == "openid")) else {
        return bearer_error(
            403,
            "Bearer realm=\"warrant\", error=\"insufficient_scope\", scope=\"openid\"".into(),
        );
    };
    let funnel_client = models
        .clients
        .get(view.client_id)
        .is_some_and(|client| client.funnel);
    if super::funnel::check_client(&request, view.client_id, funnel_client).is_err() {
        return bearer_error(
            401,
            "Bearer realm=\"warrant\", error=\"invalid_token\", error_description=\"the token's client is not a funnel client\"".into(),
        );
    }
    let user = Profile::recorded(subject, view.profile);
    let mut body = serde_json::Map::new();
    body.insert("sub".into(), json!(user.login));
    body.extend(user.released_claims(true));
    let mut response = HttpResponse::Ok();
    no_store(&mut response);
    response.json(body)
}

fn bearer_error(status: u16, challenge: String) -> HttpResponse {
    let status = actix_web::http::StatusCode::from_u16(status).expect("a valid status");
    let mut response = HttpResponse::build(status);
    no_store(&mut response);
    response
        .insert_header((WWW_AUTHENTICATE, challenge))
        .finish()
}
