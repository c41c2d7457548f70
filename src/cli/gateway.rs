//! `warrant gateway`: the MCP gateway in front of one MCP server.

use super::{fail, shutdown_signal};
use crate::mcp::Authority;
use crate::mcp::gateway::{ExchangeCache, Gateway, routes};
use clap::Args;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

/// Flags of `warrant gateway`.
#[derive(Debug, Args)]
pub struct GatewayArgs {
    /// warrant's URL (its issuer, or where its metadata is served).
    #[arg(long, env = "WARRANT_AUTH_SERVER_URL")]
    auth_server_url: String,
    /// The MCP server behind the gateway; the audience of exchanged tokens.
    #[arg(long, env = "WARRANT_MCP_SERVER_URL")]
    mcp_server_url: String,
    /// Port to listen on, on 127.0.0.1 (0: any free port).
    #[arg(long, env = "WARRANT_GATEWAY_PORT", default_value_t = 8003)]
    port: u16,
    /// The gateway's resource identifier [default: http://localhost:PORT].
    #[arg(long, env = "WARRANT_GATEWAY_RESOURCE")]
    resource: Option<String>,
    /// The gateway's client id at warrant [default: register one dynamically].
    #[arg(long, env = "WARRANT_GATEWAY_CLIENT_ID", requires = "client_secret")]
    client_id: Option<String>,
    /// The gateway's client secret.
    #[arg(long, env = "WARRANT_GATEWAY_CLIENT_SECRET", requires = "client_id")]
    client_secret: Option<String>,
    /// Largest request body forwarded, in bytes.
    #[arg(long, env = "WARRANT_MAX_BODY_BYTES", default_value_t = 4 * 1024 * 1024)]
    max_body_bytes: usize,
    /// Log level or filter.
    #[arg(long, env = "WARRANT_LOG", default_value = "info")]
    log: String,
}

/// Runs `warrant gateway`.
pub fn run(args: GatewayArgs) -> ExitCode {
    super::serve::init_logging(&args.log, super::serve::LogFormat::Human);
    let Ok(upstream_url) = url::Url::parse(&args.mcp_server_url) else {
        return fail(format!(
            "--mcp-server-url `{}` is not a URL",
            args.mcp_server_url
        ));
    };
    let (listener, port, resource) = match super::listen_on_loopback(args.port, args.resource) {
        Ok(bound) => bound,
        Err(err) => return fail(err),
    };
    actix_rt::System::new().block_on(async move {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("an HTTP client builds");
        let credentials = args.client_id.zip(args.client_secret);
        let authority = match Authority::connect(
            http.clone(),
            &args.auth_server_url,
            credentials,
            "warrant gateway",
            &[crate::http::TOKEN_EXCHANGE],
        )
        .await
        {
            Ok(authority) => authority,
            Err(err) => return fail(format!("cannot start: {err}")),
        };
        tracing::info!(client_id = authority.client_id(), %resource, upstream = %args.mcp_server_url, "gateway ready");
        let gateway = actix_web::web::Data::new(Gateway {
            authority,
            cache: ExchangeCache::default(),
            resource,
            upstream: args.mcp_server_url,
            upstream_url,
            http,
            max_body: args.max_body_bytes,
        });
        let shutdown = match shutdown_signal() {
            Ok(shutdown) => shutdown,
            Err(err) => return fail(format!("cannot handle signals: {err}")),
        };
        let server = match actix_web::HttpServer::new(move || {
            actix_web::App::new()
                .app_data(gateway.clone())
                .configure(routes)
        })
        .on_connect(crate::http::no_delay)
        .disable_signals()
        .listen(listener)
        {
            Ok(server) => server.run(),
            Err(err) => return fail(err),
        };
        println!("gateway listening on http://127.0.0.1:{port}");
        let _ = std::io::stdout().flush();
        let handle = server.handle();
        actix_rt::spawn(async move {
            shutdown.await;
            handle.stop(true).await;
        });
        match server.await {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => fail(err),
        }
    })
}
