//! Requests through Tailscale Funnel come from the public internet: without `--funnel` they
//! are refused everywhere; with it, only what a public relying party needs is served
//! (discovery, JWKS, `/token`, `/introspect`, `/userinfo`, `/revoke`), and only to clients
//! marked as funnel clients.

use super::error::OAuthError;
use crate::identity::through_funnel;
use crate::server::Warrant;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{ResponseError, web};

/// Refuses every Funnel request unless warrant runs with `--funnel`.
pub async fn served_only_with_flag<B: MessageBody>(
    request: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    let enabled = request
        .app_data::<web::Data<Warrant>>()
        .is_some_and(|warrant| warrant.config.funnel);
    if !enabled && through_funnel(request.request()) {
        return Ok(refuse(
            request,
            "this identity provider is not served through Funnel",
        ));
    }
    next.call(request)
        .await
        .map(ServiceResponse::map_into_left_body)
}

/// Refuses Funnel requests to an endpoint only tailnet users may use (`/authorize`,
/// `/register`, the admin pages).
pub async fn tailnet_only<B: MessageBody>(
    request: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    if through_funnel(request.request()) {
        return Ok(refuse(request, "not available through Funnel"));
    }
    next.call(request)
        .await
        .map(ServiceResponse::map_into_left_body)
}

fn refuse<B>(request: ServiceRequest, reason: &str) -> ServiceResponse<EitherBody<B>> {
    let response = OAuthError::NotThroughFunnel(reason.into()).error_response();
    request.into_response(response).map_into_right_body()
}

/// Refuses a client not marked as a funnel client when the request came through Funnel.
pub fn check_client(
    request: &actix_web::HttpRequest,
    client_id: &str,
    funnel_client: bool,
) -> Result<(), OAuthError> {
    if through_funnel(request) && !funnel_client {
        return Err(OAuthError::InvalidClient(format!(
            "client `{client_id}` is not a funnel client and cannot be used through Funnel"
        )));
    }
    Ok(())
}
