//! `warrant demo-server`, `warrant demo-client` and `warrant demo`: the MCP gateway pattern
//! end to end, on loopback.

use super::{fail, shutdown_signal};
use crate::mcp::client::{self, Step};
use crate::mcp::{Authority, server};
use axum::serve::ListenerExt;
use clap::Args;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};

/// Flags of `warrant demo-server`.
#[derive(Debug, Args)]
pub struct DemoServerArgs {
    /// warrant's URL (its issuer).
    #[arg(long, env = "WARRANT_AUTH_SERVER_URL")]
    auth_server_url: String,
    /// Port to listen on, on 127.0.0.1 (0: any free port).
    #[arg(long, env = "WARRANT_DEMO_SERVER_PORT", default_value_t = 8001)]
    port: u16,
    /// The server's resource identifier, required in `aud` [default: http://localhost:PORT].
    #[arg(long, env = "WARRANT_DEMO_SERVER_RESOURCE")]
    resource: Option<String>,
    /// The server's client id at warrant [default: register one dynamically].
    #[arg(
        long,
        env = "WARRANT_DEMO_SERVER_CLIENT_ID",
        requires = "client_secret"
    )]
    client_id: Option<String>,
    /// The server's client secret.
    #[arg(
        long,
        env = "WARRANT_DEMO_SERVER_CLIENT_SECRET",
        requires = "client_id"
    )]
    client_secret: Option<String>,
    /// Log level or filter.
    #[arg(long, env = "WARRANT_LOG", default_value = "info")]
    log: String,
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime starts")
}

/// Runs `warrant demo-server`.
pub fn run_server(args: DemoServerArgs) -> ExitCode {
    super::serve::init_logging(&args.log, super::serve::LogFormat::Human);
    let (listener, port, resource) = match super::listen_on_loopback(args.port, args.resource) {
        Ok(bound) => bound,
        Err(err) => return fail(err),
    };
    runtime().block_on(async move {
        let credentials = args.client_id.zip(args.client_secret);
        let authority = match Authority::connect(
            reqwest::Client::new(),
            &args.auth_server_url,
            credentials,
            "warrant demo MCP server",
            &["client_credentials"],
        )
        .await
        {
            Ok(authority) => authority,
            Err(err) => return fail(format!("cannot start: {err}")),
        };
        let listener = match listener
            .set_nonblocking(true)
            .and_then(|()| tokio::net::TcpListener::from_std(listener))
        {
            Ok(listener) => listener,
            Err(err) => return fail(err),
        };
        let shutdown = match shutdown_signal() {
            Ok(shutdown) => shutdown,
            Err(err) => return fail(format!("cannot handle signals: {err}")),
        };
        println!("demo-server listening on http://127.0.0.1:{port}");
        let _ = std::io::stdout().flush();
        // Small responses (a tool result in one SSE event) must not wait for Nagle.
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        match axum::serve(listener, server::app(authority, resource))
            .with_graceful_shutdown(shutdown)
            .await
        {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => fail(err),
        }
    })
}

/// Flags of `warrant demo-client`.
#[derive(Debug, Args)]
pub struct DemoClientArgs {
    /// The MCP endpoint to connect to (the gateway's, e.g. http://localhost:8003/mcp).
    url: String,
}

fn print_step(step: Step) {
    println!("✓ {:<14} {}", step.name, step.detail);
}

/// Runs `warrant demo-client`.
pub fn run_client(args: DemoClientArgs) -> ExitCode {
    match runtime().block_on(client::run(&args.url, &mut print_step)) {
        Ok(outcome) => {
            println!(
                "oauth_details: {}",
                serde_json::to_string_pretty(&outcome.oauth_details).unwrap_or_default()
            );
            println!("multiply(6, 7) = {}", outcome.product);
            ExitCode::SUCCESS
        }
        Err(err) => fail(err),
    }
}

/// Flags of `warrant demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Keep the data directory (its event log is the audit trail of the run) here instead of
    /// a temporary one.
    #[arg(long, env = "WARRANT_DEMO_DIR")]
    dir: Option<PathBuf>,
}

/// A child process stopped (SIGTERM, then reaped) when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        // SIGTERM lets the child shut down gracefully; a child already gone is fine.
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

/// Starts `warrant ARGS`, waits for its ready line.
fn start(args: &[&str]) -> Result<Running, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut child = Command::new(exe)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("warrant {}: {e}", args[0]))?;
    let mut line = String::new();
    let stdout = child.stdout.take().ok_or("no stdout")?;
    BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    if !line.contains("listening on") {
        let _ = child.kill();
        return Err(format!("warrant {} did not start", args[0]));
    }
    Ok(Running(child))
}

/// Three free loopback ports (taken, read, released).
fn free_ports() -> Result<[u16; 3], String> {
    let listeners: Vec<TcpListener> = (0..3)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let port = |i: usize| listeners[i].local_addr().map(|a| a.port());
    Ok([
        port(0).map_err(|e| e.to_string())?,
        port(1).map_err(|e| e.to_string())?,
        port(2).map_err(|e| e.to_string())?,
    ])
}

fn write_grants(path: &Path, resources: &[&str]) -> Result<(), String> {
    let grants = serde_json::json!({"grants": [{"src": ["*"], "dst": ["*"], "app": {
        "tailscale.com/cap/tsidp": [{"users": ["*"], "resources": resources, "allow_dcr": true}]}}]});
    std::fs::write(path, grants.to_string()).map_err(|e| format!("{}: {e}", path.display()))
}

/// Runs `warrant demo`.
pub fn run_demo(args: DemoArgs) -> ExitCode {
    let scratch = std::env::temp_dir().join(format!("warrant-demo-{}", uuid::Uuid::new_v4()));
    let dir = args.dir.clone().unwrap_or_else(|| scratch.clone());
    let outcome = demo(&dir);
    if args.dir.is_none() {
        let _ = std::fs::remove_dir_all(&scratch);
    }
    match outcome {
        Ok(()) => {
            println!("every step succeeded");
            ExitCode::SUCCESS
        }
        Err(err) => fail(err),
    }
}

fn demo(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let [warrant_port, server_port, gateway_port] = free_ports()?;
    let issuer = format!("http://localhost:{warrant_port}");
    let server = format!("http://localhost:{server_port}");
    let gateway = format!("http://localhost:{gateway_port}");
    let grants = dir.join("grants.json");
    write_grants(&grants, &[&gateway, &server])?;
    let data = dir.join("data");
    let ports = [warrant_port, server_port, gateway_port].map(|p| p.to_string());
    let _warrant = start(&[
        "serve",
        "--port",
        &ports[0],
        "--dir",
        data.to_str().ok_or("the data directory is not UTF-8")?,
        "--enable-sts",
        "--grants",
        grants.to_str().ok_or("the grants path is not UTF-8")?,
        "--log",
        "warn",
    ])?;
    println!(
        "✓ {:<14} warrant at {issuer} (embedded log in {})",
        "warrant",
        data.display()
    );
    let _server = start(&[
        "demo-server",
        "--auth-server-url",
        &issuer,
        "--port",
        &ports[1],
        "--log",
        "warn",
    ])?;
    println!(
        "✓ {:<14} MCP server at {server}/mcp, registered at warrant",
        "server"
    );
    let _gateway = start(&[
        "gateway",
        "--auth-server-url",
        &issuer,
        "--mcp-server-url",
        &server,
        "--port",
        &ports[2],
        "--log",
        "warn",
    ])?;
    println!(
        "✓ {:<14} gateway at {gateway}/mcp in front of it",
        "gateway"
    );
    let outcome = runtime().block_on(client::run(&format!("{gateway}/mcp"), &mut print_step))?;
    let details = &outcome.oauth_details;
    let audience = crate::mcp::audiences(&details["audience"]);
    if !audience
        .iter()
        .any(|a| crate::capabilities::same_resource(a, &server))
    {
        return Err(format!(
            "the server saw a token for {audience:?}, not for {server}"
        ));
    }
    let actors = details["actors"].as_array().cloned().unwrap_or_default();
    let Some(gateway_client) = actors.first().and_then(|a| a.as_str()) else {
        return Err("the server's token names no acting gateway (act)".into());
    };
    println!(
        "✓ {:<14} the gateway (client {gateway_client}) exchanged the user's token for one addressed to {server}",
        "exchange"
    );
    println!(
        "✓ {:<14} the server introspected it at warrant: active, subject {}, {}s left",
        "introspection",
        details["subject"].as_str().unwrap_or("?"),
        details["seconds_left"]
    );
    println!(
        "✓ {:<14} oauth_details = {}",
        "tool",
        serde_json::to_string(details).unwrap_or_default()
    );
    if outcome.product != "42" {
        return Err(format!("multiply(6, 7) answered {}", outcome.product));
    }
    println!("✓ {:<14} multiply(6, 7) = {}", "tool", outcome.product);
    Ok(())
}
