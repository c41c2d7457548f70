//! `warrant demo-client`: an MCP client on the official Rust SDK's OAuth support. Given an MCP
//! URL it discovers the protected resource and warrant from the 401, registers itself
//! dynamically, runs the authorization code flow with PKCE and `resource`, lists the tools
//! and calls `oauth_details` and `multiply`. It is headless: instead of opening a browser it
//! follows the authorization request itself and reads the redirect, which is what a browser
//! of the approved local user would get from warrant.

use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::auth::{AuthClient, AuthorizationRequest, OAuthState};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::{Value, json};

/// Where the client says it listens for the authorization response (RFC 8252 loopback).
pub const REDIRECT_URI: &str = "http://127.0.0.1:33418/callback";

/// One step of the flow, as it is reported.
#[derive(Debug)]
pub struct Step {
    /// Its name (`authorization`, `token`, `tools`, ...).
    pub name: &'static str,
    /// What happened.
    pub detail: String,
}

/// What the client learned.
#[derive(Debug)]
pub struct Outcome {
    /// The tools the server offers, by name.
    pub tools: Vec<String>,
    /// `oauth_details` as the server answered it.
    pub oauth_details: Value,
    /// `multiply(6, 7)` as the server answered it.
    pub product: String,
}

fn text_of(result: &CallToolResult) -> Result<String, String> {
    if result.is_error == Some(true) {
        return Err(format!("the tool failed: {:?}", result.content));
    }
    result
        .content
        .iter()
        .find_map(|block| block.as_text().map(|t| t.text.clone()))
        .ok_or_else(|| "the tool answered no text".to_owned())
}

/// Runs the whole flow against `mcp_url`, reporting each step.
pub async fn run(mcp_url: &str, report: &mut dyn FnMut(Step)) -> Result<Outcome, String> {
    let fail = |what: &str, err: &dyn std::fmt::Display| format!("{what}: {err}");
    let mut oauth = OAuthState::new(mcp_url, None)
        .await
        .map_err(|e| fail("discovery", &e))?;
    oauth
        .start_authorization(
            AuthorizationRequest::new(REDIRECT_URI)
                .with_client_name("warrant demo client")
                .with_scopes(["openid", "profile"]),
        )
        .await
        .map_err(|e| fail("registration", &e))?;
    let authorization_url = oauth
        .get_authorization_url()
        .await
        .map_err(|e| fail("authorization", &e))?;
    let client_id = url::Url::parse(&authorization_url)
        .ok()
        .and_then(|u| {
            u.query_pairs()
                .find(|(k, _)| k == "client_id")
                .map(|(_, v)| v.into_owned())
        })
        .unwrap_or_default();
    report(Step {
        name: "registration",
        detail: format!("registered as client {client_id} by dynamic client registration"),
    });
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| fail("browser", &e))?;
    let response = browser
        .get(&authorization_url)
        .send()
        .await
        .map_err(|e| fail("authorization", &e))?;
    let location = response
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| format!("authorization: no redirect ({})", response.status()))?
        .to_owned();
    let callback = url::Url::parse(&location).map_err(|e| fail("authorization", &e))?;
    if let Some((_, error)) = callback.query_pairs().find(|(k, _)| k == "error") {
        return Err(format!("authorization refused: {error}"));
    }
    report(Step {
        name: "authorization",
        detail: format!(
            "code flow with PKCE S256 and resource; redirected to {}",
            callback.path()
        ),
    });
    oauth
        .handle_callback_url(&location)
        .await
        .map_err(|e| fail("token", &e))?;
    let manager = oauth
        .into_authorization_manager()
        .ok_or("token: no authorization manager after the callback")?;
    report(Step {
        name: "token",
        detail: "authorization code redeemed for an access token".into(),
    });
    let transport = StreamableHttpClientTransport::with_client(
        AuthClient::new(reqwest::Client::default(), manager),
        StreamableHttpClientTransportConfig::with_uri(mcp_url),
    );
    let client = ().serve(transport).await.map_err(|e| fail("connect", &e))?;
    let tools: Vec<String> = client
        .list_all_tools()
        .await
        .map_err(|e| fail("tools/list", &e))?
        .into_iter()
        .map(|tool| tool.name.to_string())
        .collect();
    report(Step {
        name: "tools",
        detail: format!("listed through the gateway: {}", tools.join(", ")),
    });
    let details = client
        .call_tool(CallToolRequestParams::new("oauth_details"))
        .await
        .map_err(|e| fail("oauth_details", &e))?;
    let oauth_details: Value =
        serde_json::from_str(&text_of(&details)?).map_err(|e| fail("oauth_details", &e))?;
    let arguments = json!({"a": 6, "b": 7})
        .as_object()
        .cloned()
        .unwrap_or_default();
    let product = client
        .call_tool(CallToolRequestParams::new("multiply").with_arguments(arguments))
        .await
        .map_err(|e| fail("multiply", &e))?;
    let product = text_of(&product)?;
    let _ = client.cancel().await;
    Ok(Outcome {
        tools,
        oauth_details,
        product,
    })
}
