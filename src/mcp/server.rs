//! `warrant demo-server`: an MCP server on the official Rust SDK (`rmcp`, streamable HTTP at
//! `/mcp`) that trusts nothing but warrant. Every request's bearer token is introspected with
//! the server's own client credentials and must be active and addressed to the server's own
//! URL; otherwise 401 with the RFC 9728 challenge. Its tools: `oauth_details` (what the
//! server saw of the token, `act` chain included) and `multiply`.

use super::{Authority, Introspection, METADATA_PATH, challenge_header, resource_metadata};
use crate::clock::Timestamp;
use axum::extract::{Request, State};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::Extension;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, ServerCapabilities, ServerConfig};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, ServerHandler, tool, tool_handler, tool_router};
use serde_json::{Value, json};
use std::sync::Arc;

/// The token a request carried, as introspection described it.
#[derive(Clone, Debug)]
struct Seen(Introspection);

/// The arguments of `multiply`.
#[derive(Debug, serde::Deserialize, rmcp::schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct MultiplyArgs {
    /// The first factor.
    pub a: f64,
    /// The second factor.
    pub b: f64,
}

/// The demo server's tools.
#[derive(Clone)]
pub struct DemoTools {
    tool_router: ToolRouter<Self>,
}

impl Default for DemoTools {
    fn default() -> Self {
        DemoTools {
            tool_router: Self::tool_router(),
        }
    }
}

#[tool_router]
impl DemoTools {
    /// What the server saw of the caller's token.
    #[tool(
        description = "What this server saw of your token: subject, client, scopes, audience, expiry, time left and the act chain of the parties that exchanged it"
    )]
    async fn oauth_details(
        &self,
        Extension(parts): Extension<http::request::Parts>,
    ) -> Result<CallToolResult, ErrorData> {
        let seen = parts
            .extensions
            .get::<Seen>()
            .ok_or_else(|| ErrorData::internal_error("no token was checked", None))?;
        let details = oauth_details(&seen.0, Timestamp::now());
        Ok(CallToolResult::success(vec![ContentBlock::text(
            details.to_string(),
        )]))
    }

    /// Multiplies two numbers.
    #[tool(description = "Multiplies a by b")]
    async fn multiply(
        &self,
        Parameters(MultiplyArgs { a, b }): Parameters<MultiplyArgs>,
    ) -> String {
        (a * b).to_string()
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for DemoTools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

/// The `oauth_details` answer: the introspected claims, the `act` chain flattened into the
/// list of acting parties (nearest first), and the time left.
pub fn oauth_details(seen: &Introspection, now: Timestamp) -> Value {
    let claims = &seen.0;
    let mut actors = Vec::new();
    let mut act = &claims["act"];
    while let Some(sub) = act["sub"].as_str() {
        actors.push(sub.to_owned());
        act = &act["act"];
    }
    let exp = claims["exp"].as_i64();
    json!({
        "subject": claims["sub"],
        "client_id": claims["client_id"],
        "scope": claims["scope"],
        "audience": claims["aud"],
        "expires_at": exp,
        "seconds_left": exp.map(|exp| exp - now.unix_seconds()),
        "act": claims["act"],
        "actors": actors,
    })
}

/// What the bearer check needs.
struct Protected {
    authority: Authority,
    resource: String,
}

fn unauthorized(resource: &str, error: Option<&str>) -> Response {
    let body = json!({"error": "invalid_token", "error_description": error.unwrap_or("a bearer token is required")});
    (
        http::StatusCode::UNAUTHORIZED,
        [(
            http::header::WWW_AUTHENTICATE,
            challenge_header(resource, error),
        )],
        axum::Json(body),
    )
        .into_response()
}

/// Lets a request through only with an active token addressed to this server.
async fn require_token(
    State(protected): State<Arc<Protected>>,
    mut request: Request,
    next: Next,
) -> Response {
    let token = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(crate::http::bearer)
        .map(str::to_owned);
    let Some(token) = token else {
        return unauthorized(&protected.resource, None);
    };
    match protected.authority.introspect(&token).await {
        Ok(seen) if seen.addressed_to(&protected.resource) => {
            request.extensions_mut().insert(Seen(seen));
            next.run(request).await
        }
        Ok(seen) if !seen.active() => {
            unauthorized(&protected.resource, Some("the token is not active"))
        }
        Ok(_) => unauthorized(
            &protected.resource,
            Some("the token is not addressed to this server"),
        ),
        Err(err) => (http::StatusCode::BAD_GATEWAY, err.to_string()).into_response(),
    }
}

/// The demo server's routes: its metadata, and `/mcp` behind the bearer check.
pub fn app(authority: Authority, resource: String) -> axum::Router {
    let metadata = {
        let document = resource_metadata(&resource, &authority.issuer, "warrant demo MCP server");
        move || {
            let document = document.clone();
            async move { axum::Json(document) }
        }
    };
    let mcp = StreamableHttpService::new(
        || Ok(DemoTools::default()),
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default(),
    );
    let protected = Arc::new(Protected {
        authority,
        resource,
    });
    let checked = axum::Router::new()
        .nest_service("/mcp", mcp)
        .layer(from_fn_with_state(protected, require_token));
    axum::Router::new()
        .route(METADATA_PATH, get(metadata.clone()))
        .route(&format!("{METADATA_PATH}/{{*rest}}"), get(metadata))
        .merge(checked)
}
