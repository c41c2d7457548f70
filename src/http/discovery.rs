//! Discovery: OpenID Connect discovery and RFC 8414 authorization server metadata (one
//! document, two paths), and the JWKS. Public, cacheable, CORS `*`.

use crate::clock::Timestamp;
use crate::config::ServeConfig;
use crate::identity::through_funnel;
use crate::server::Warrant;
use crate::tokens::access::ACCESS_TOKEN_SECONDS;
use crate::tokens::id_token::ID_TOKEN_SECONDS;
use actix_web::http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
};
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder, web};
use serde_json::{Value, json};

/// The metadata document of a server with `config`.
pub fn metadata(config: &ServeConfig) -> Value {
    let issuer = &config.issuer;
    let mut grant_types = vec!["authorization_code", "refresh_token", "client_credentials"];
    if config.enable_sts {
        grant_types.push(super::exchange::GRANT_TYPE);
    }
    json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "userinfo_endpoint": format!("{issuer}/userinfo"),
        "introspection_endpoint": format!("{issuer}/introspect"),
        "revocation_endpoint": format!("{issuer}/revoke"),
        "registration_endpoint": format!("{issuer}/register"),
        "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
        "scopes_supported": ["openid", "email", "profile", "offline_access"],
        "response_types_supported": ["code"],
        "grant_types_supported": grant_types,
        "response_modes_supported": ["query"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256", "EdDSA"],
        "authorization_response_iss_parameter_supported": true,
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "azp", "name", "preferred_username", "username", "email", "picture", "nid", "node", "key", "addresses", "uid", "tailnet"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "resource_indicators_supported": true,
        "client_id_metadata_document_supported": true,
    })
}

fn cors(mut response: HttpResponseBuilder) -> HttpResponseBuilder {
    response
        .insert_header((ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .insert_header((ACCESS_CONTROL_ALLOW_METHODS, "GET, OPTIONS"))
        .insert_header((ACCESS_CONTROL_ALLOW_HEADERS, "*"));
    response
}

/// `GET /.well-known/openid-configuration` and `/.well-known/oauth-authorization-server`.
/// Through Funnel, `registration_endpoint` is left out: registration is for tailnet users.
pub async fn document(warrant: web::Data<Warrant>, request: HttpRequest) -> HttpResponse {
    let mut document = metadata(&warrant.config);
    if through_funnel(&request)
        && let Some(members) = document.as_object_mut()
    {
        members.remove("registration_endpoint");
    }
    cors(HttpResponse::Ok()).json(document)
}

/// `OPTIONS` on the public documents: the CORS preflight.
pub async fn preflight() -> HttpResponse {
    cors(HttpResponse::NoContent()).finish()
}

/// `GET /.well-known/jwks.json`: every published public key, retired ones included until
/// the longest-lived token they could have signed has expired.
pub async fn jwks(warrant: web::Data<Warrant>) -> HttpResponse {
    let grace = ACCESS_TOKEN_SECONDS.max(ID_TOKEN_SECONDS);
    let keys: Vec<Value> = warrant
        .models
        .read()
        .keys
        .listed(Timestamp::now(), grace)
        .filter_map(|(_, key)| serde_json::from_str(&key.public_jwk).ok())
        .collect();
    cors(HttpResponse::Ok()).json(json!({ "keys": keys }))
}
