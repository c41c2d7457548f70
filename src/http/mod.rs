//! The HTTP surface (actix-web): routes, request limits, and OAuth error rendering.

pub mod error;
mod health;
mod register;

use actix_web::web;
use error::OAuthError;

/// Largest JSON body accepted (registration metadata).
pub const MAX_JSON_BYTES: usize = 64 * 1024;

/// Mounts every route.
pub fn routes(config: &mut web::ServiceConfig) {
    config
        .app_data(
            web::JsonConfig::default()
                .limit(MAX_JSON_BYTES)
                .error_handler(|err, _| {
                    OAuthError::InvalidClientMetadata(format!("unreadable JSON body: {err}")).into()
                }),
        )
        .route("/healthz", web::get().to(health::health))
        .route("/register", web::post().to(register::register));
}
