//! The client management pages and API (tsidp's `/clients/`), for callers granted
//! `allow_admin_ui`; never through Funnel. Clients made here may be marked as funnel clients,
//! usable by public relying parties through Funnel.
//!
//! - `GET /` — the clients, as a page;
//! - `GET /clients/` — the clients, as JSON (never a secret);
//! - `POST /clients/new` — form `name`, `redirect_uri` (one per line), `funnel` (`on`/`true`):
//!   201 with the client and its secret, shown this once;
//! - `GET /clients/{id}`, `DELETE /clients/{id}` (its grants are revoked).

use super::caller::{Permission, permitted};
use super::error::{OAuthError, no_store, no_store_json};
use super::form;
use super::funnel::tailnet_only;
use super::{method_not_allowed, only};
use crate::actors::CommandContext;
use crate::actors::client::ClientCommand;
use crate::clock::Timestamp;
use crate::events::ClientMetadata;
use crate::projections::clients::ClientView;
use crate::secret::{self, SecretHash};
use crate::server::Warrant;
use actix_web::middleware::from_fn;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};
use uuid::Uuid;

/// Mounts the admin routes.
pub fn routes(config: &mut web::ServiceConfig) {
    config
        .service(only("/", web::get().to(page)).wrap(from_fn(tailnet_only)))
        .service(only("/clients/", web::get().to(list)).wrap(from_fn(tailnet_only)))
        .service(only("/clients/new", web::post().to(create)).wrap(from_fn(tailnet_only)))
        .service(
            web::resource("/clients/{client_id}")
                .route(web::get().to(read))
                .route(web::delete().to(delete))
                .default_service(web::to(method_not_allowed))
                .wrap(from_fn(tailnet_only)),
        );
}

/// A client as the admin API shows it: never its secret.
fn summary(client_id: &str, view: &ClientView) -> Value {
    json!({
        "client_id": client_id,
        "client_name": view.metadata.client_name,
        "redirect_uris": view.metadata.redirect_uris,
        "grant_types": view.metadata.grant_types,
        "token_endpoint_auth_method": view.metadata.token_endpoint_auth_method,
        "funnel": view.funnel,
        "registered_by": view.registered_by,
        "created_at": view.registered_at.unix_seconds(),
    })
}

async fn list(
    warrant: web::Data<Warrant>,
    request: HttpRequest,
) -> Result<HttpResponse, OAuthError> {
    permitted(&warrant, &request, Permission::Administer).await?;
    let models = warrant.models.read();
    let clients: Vec<Value> = models
        .clients
        .iter()
        .map(|(id, view)| summary(id, view))
        .collect();
    Ok(no_store_json(HttpResponse::Ok(), Value::Array(clients)))
}

async fn read(
    warrant: web::Data<Warrant>,
    request: HttpRequest,
    client_id: web::Path<String>,
) -> Result<HttpResponse, OAuthError> {
    permitted(&warrant, &request, Permission::Administer).await?;
    let models = warrant.models.read();
    let view = models.clients.get(&client_id).ok_or_else(not_found)?;
    Ok(no_store_json(HttpResponse::Ok(), summary(&client_id, view)))
}

fn not_found() -> OAuthError {
    OAuthError::InvalidRequest("no such client".into())
}

async fn create(
    warrant: web::Data<Warrant>,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, OAuthError> {
    refuse_cross_site(&request)?;
    let admin = permitted(&warrant, &request, Permission::Administer).await?;
    let form = form::read(&request, payload, warrant.config.max_body).await?;
    let name = form.required("name")?.trim().to_owned();
    let redirect_uris: Vec<String> = form
        .required("redirect_uri")?
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect();
    let funnel = matches!(form.get("funnel"), Some("on" | "true" | "1"));
    let metadata = ClientMetadata {
        client_name: Some(name),
        redirect_uris,
        grant_types: vec!["authorization_code".into(), "refresh_token".into()],
        response_types: vec!["code".into()],
        token_endpoint_auth_method: "client_secret_basic".into(),
        ..ClientMetadata::default()
    };
    let client_id = Uuid::new_v4().simple().to_string();
    let client_secret = secret::generate();
    let now = Timestamp::now();
    let command = ClientCommand::Register {
        metadata,
        secret_hash: Some(SecretHash::of(&client_secret)),
        registered_by: Some(admin.login),
        registration_token_hash: None,
        funnel,
    };
    let committed = warrant
        .actors
        .clients
        .execute(&client_id, command, CommandContext::at(now))
        .await
        .map_err(super::register::refusal)?;
    super::register::visible(&warrant, &committed).await;
    let models = warrant.models.read();
    let view = models.clients.get(&client_id).ok_or_else(not_found)?;
    let mut body = summary(&client_id, view);
    body["client_secret"] = client_secret.into();
    Ok(no_store_json(HttpResponse::Created(), body))
}

/// The admin is known by the network, so their browser would lend its identity to any page
/// that posts a form here: a form posted from another origin is refused.
fn refuse_cross_site(request: &HttpRequest) -> Result<(), OAuthError> {
    let Some(origin) = request
        .headers()
        .get("origin")
        .and_then(|v| v.to_str().ok())
    else {
        return Ok(());
    };
    let host = request.connection_info().host().to_owned();
    let same = url::Url::parse(origin).is_ok_and(|o| {
        o.host_str().is_some_and(|h| match o.port() {
            Some(port) => host == format!("{h}:{port}"),
            None => host == h,
        })
    });
    if !same {
        return Err(OAuthError::AccessDenied(format!(
            "a request from {origin} cannot manage clients here"
        )));
    }
    Ok(())
}

async fn delete(
    warrant: web::Data<Warrant>,
    request: HttpRequest,
    client_id: web::Path<String>,
) -> Result<HttpResponse, OAuthError> {
    permitted(&warrant, &request, Permission::Administer).await?;
    if warrant.models.read().clients.get(&client_id).is_none() {
        return Err(not_found());
    }
    super::register::delete_client(&warrant, &client_id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `GET /`: the clients as a page, with a form to make one.
async fn page(
    warrant: web::Data<Warrant>,
    request: HttpRequest,
) -> Result<HttpResponse, OAuthError> {
    let admin = permitted(&warrant, &request, Permission::Administer).await?;
    let escape = super::escape_html;
    let rows: String = {
        let models = warrant.models.read();
        models
            .clients
            .iter()
            .map(|(id, view)| {
                format!(
                    "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
                    escape(view.metadata.client_name.as_deref().unwrap_or("")),
                    escape(id),
                    escape(&view.metadata.redirect_uris.join(" ")),
                    if view.funnel { "yes" } else { "no" },
                )
            })
            .collect()
    };
    let mut response = HttpResponse::Ok();
    no_store(&mut response);
    Ok(response.content_type("text/html; charset=utf-8").body(format!(
        "<!doctype html><title>warrant clients</title><h1>Clients</h1>\
         <p>Signed in as {}.</p>\
         <table><tr><th>Name</th><th>Client ID</th><th>Redirect URIs</th><th>Funnel</th></tr>{rows}</table>\
         <h2>New client</h2><form method=post action=clients/new>\
         <label>Name <input name=name required></label>\
         <label>Redirect URIs (one per line) <textarea name=redirect_uri required></textarea></label>\
         <label><input type=checkbox name=funnel> usable through Funnel</label>\
         <button>Create</button></form>",
        escape(&admin.login)
    )))
}
