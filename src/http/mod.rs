//! The HTTP surface (actix-web): routes, request limits, and OAuth error rendering.

mod admin;
mod authorize;
mod caller;
mod client_auth;
pub mod client_document;
mod discovery;
pub mod error;
mod exchange;
mod form;
pub mod funnel;
mod health;
mod introspect;
mod register;
mod revoke;
mod token;
mod userinfo;

pub use exchange::{ACCESS_TOKEN_TYPE, GRANT_TYPE as TOKEN_EXCHANGE};

use crate::actors::Loaded;
use crate::actors::grant::{Grant, IssuedToken};
use crate::events::TokenKind;
use crate::projections::tokens::TokenView;
use crate::secret::SecretHash;
use actix_web::middleware::from_fn;
use actix_web::web;
use error::OAuthError;

/// Mounts every route under the issuer's path `prefix` (`""` or `/tenant`). With a path, the
/// metadata is also served where RFC 8414 §3.1 inserts it:
/// `/.well-known/oauth-authorization-server/tenant` (and likewise for OpenID discovery).
pub fn mount(config: &mut web::ServiceConfig, prefix: &str, max_body: usize) {
    config.app_data(
        web::JsonConfig::default()
            .limit(max_body)
            .error_handler(move |err, _| {
                let error = match err {
                    actix_web::error::JsonPayloadError::Overflow { .. }
                    | actix_web::error::JsonPayloadError::OverflowKnownLength { .. } => {
                        OAuthError::TooLarge(format!("the body exceeds {max_body} bytes"))
                    }
                    other => {
                        OAuthError::InvalidClientMetadata(format!("unreadable JSON body: {other}"))
                    }
                };
                error.into()
            }),
    );
    if prefix.is_empty() {
        routes(config);
        return;
    }
    discovery_documents(config, prefix);
    config.service(web::scope(prefix).configure(routes));
}

/// The discovery document at both well-known names (OIDC Discovery, RFC 8414), followed by
/// `suffix` (RFC 8414 §3.1 inserts an issuer's path after the well-known part).
fn discovery_documents(config: &mut web::ServiceConfig, suffix: &str) {
    for metadata in ["openid-configuration", "oauth-authorization-server"] {
        config.service(public(
            &format!("/.well-known/{metadata}{suffix}"),
            web::get().to(discovery::document),
        ));
    }
}

/// Mounts every route at the root. actix tries them in order and a path with a `{segment}`
/// is a regex match, so the busy fixed paths (token, introspection) come before those, and
/// every fixed path is a resource of its own.
fn routes(config: &mut web::ServiceConfig) {
    config.service(only("/healthz", web::get().to(health::health)));
    discovery_documents(config, "");
    config
        .service(public(
            "/.well-known/jwks.json",
            web::get().to(discovery::jwks),
        ))
        .service(only("/token", web::post().to(token::token)))
        .service(only("/introspect", web::post().to(introspect::introspect)))
        .service(only("/revoke", web::post().to(revoke::revoke)))
        .service(
            web::resource("/userinfo")
                .route(web::get().to(userinfo::userinfo))
                .route(web::post().to(userinfo::userinfo))
                .default_service(web::to(method_not_allowed)),
        )
        .service(
            web::resource("/authorize")
                .route(web::get().to(authorize::authorize))
                .route(web::post().to(authorize::authorize))
                .default_service(web::to(method_not_allowed))
                .wrap(from_fn(funnel::tailnet_only)),
        )
        .service(
            only("/register", web::post().to(register::register))
                .wrap(from_fn(funnel::tailnet_only)),
        )
        .service(
            web::resource("/register/{client_id}")
                .route(web::get().to(register::read))
                .route(web::put().to(register::update))
                .route(web::delete().to(register::delete))
                .default_service(web::to(method_not_allowed))
                .wrap(from_fn(funnel::tailnet_only)),
        )
        .configure(admin::routes);
}

/// For `HttpServer::on_connect`: turns Nagle's algorithm off on each accepted connection, so
/// that a response written in parts (headers, then a streamed body) is not held back waiting
/// for the peer's delayed ACK (≈40 ms on Linux).
pub fn no_delay(connection: &dyn std::any::Any, _: &mut actix_web::dev::Extensions) {
    if let Some(tcp) = connection.downcast_ref::<actix_web::rt::net::TcpStream>() {
        let _ = tcp.set_nodelay(true);
    }
}

/// What the grant actor is told about one of its tokens: the facts the token model holds.
pub fn issued_token(hash: SecretHash, view: &TokenView<'_>) -> IssuedToken {
    IssuedToken {
        hash,
        kind: view.kind,
        client_id: view.client_id.to_owned(),
        expires_at: crate::clock::Timestamp(view.expires_at * 1000),
    }
}

/// The grant of a refresh token (`view`, and `token` as [`issued_token`] has it) as the token
/// model knows it at `view.grant_version`, while the token is the one in use: enough for the
/// grant to decide a refresh without reading its stream
/// ([`crate::actors::Registry::execute_from`]). `None` for any other case (the token rotated,
/// revoked or expired, the grant revoked, its version not known), which the grant decides on
/// its stream.
pub fn grant_in_use(
    view: &TokenView<'_>,
    token: &IssuedToken,
    now_seconds: i64,
) -> Option<Loaded<Grant>> {
    (view.kind == TokenKind::Refresh && view.is_active(now_seconds) && view.grant_version > 0).then(
        || Loaded {
            // A refresh token's client is its grant's.
            state: Grant::refreshable(view.grant_id, view.client_id.to_owned(), token),
            version: view.grant_version,
        },
    )
}

/// `text` made safe to put into HTML text or a quoted attribute.
pub(crate) fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The bearer token of a request's `Authorization` header (RFC 6750 §2.1), if there is one.
pub fn bearer_token(request: &actix_web::HttpRequest) -> Option<&str> {
    request
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer)
}

/// The token of an `Authorization` header value in the `Bearer` scheme, whose name is
/// case-insensitive (RFC 9110 §11.1); `None` for another scheme or an empty token.
pub fn bearer(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// A resource answering `route` and 405 for any other method.
pub(crate) fn only(path: &str, route: actix_web::Route) -> actix_web::Resource {
    web::resource(path)
        .route(route)
        .default_service(web::to(method_not_allowed))
}

/// A public document at `path`: `route`, the CORS preflight, and 405 for anything else.
/// One path per resource: actix matches a resource of several paths by regex.
fn public(path: &str, route: actix_web::Route) -> actix_web::Resource {
    web::resource(path)
        .route(route)
        .route(web::method(actix_web::http::Method::OPTIONS).to(discovery::preflight))
        .default_service(web::to(method_not_allowed))
}

pub(crate) async fn method_not_allowed() -> Result<actix_web::HttpResponse, OAuthError> {
    Err(OAuthError::MethodNotAllowed(
        "method not allowed on this endpoint".into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::bearer;

    #[test]
    fn bearer_reads_the_scheme_in_any_case_and_nothing_else() {
        assert_eq!(bearer("Bearer abc.def"), Some("abc.def"));
        assert_eq!(bearer("bearer abc"), Some("abc"));
        assert_eq!(bearer("BEARER  abc "), Some("abc"));
        assert_eq!(bearer("Basic YWJjOmRlZg=="), None);
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer("Bearerabc"), None);
        assert_eq!(bearer("abc"), None);
    }
}
