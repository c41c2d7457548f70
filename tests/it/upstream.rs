//! A stand-in MCP server for the gateway's tests: it records the `Authorization` header of
//! every request, echoes `POST /mcp`, and streams `GET /stream` as server-sent events whose
//! second event waits until the test releases it.

use actix_web::{HttpRequest, HttpResponse, web};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

struct State {
    seen: Mutex<Vec<String>>,
    release: Notify,
}

/// A running upstream.
pub struct Upstream {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    state: Arc<State>,
    handle: actix_web::dev::ServerHandle,
}

fn record(state: &State, request: &HttpRequest) {
    let authorization = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    state.seen.lock().unwrap().push(authorization);
}

async fn echo(state: web::Data<State>, request: HttpRequest, body: web::Bytes) -> HttpResponse {
    record(&state, &request);
    HttpResponse::Ok().json(serde_json::json!({
        "body": String::from_utf8_lossy(&body),
        "mcp_session_id": request.headers().get("mcp-session-id").and_then(|v| v.to_str().ok()),
    }))
}

async fn stream(state: web::Data<State>, request: HttpRequest) -> HttpResponse {
    record(&state, &request);
    let state = state.into_inner();
    let events = futures_util::stream::unfold(0, move |step| {
        let state = state.clone();
        async move {
            let event = match step {
                0 => "data: first\n\n",
                1 => {
                    state.release.notified().await;
                    "data: second\n\n"
                }
                _ => return None,
            };
            Some((Ok::<_, actix_web::Error>(web::Bytes::from(event)), step + 1))
        }
    });
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .streaming(events)
}

impl Upstream {
    /// Starts the upstream on a free loopback port.
    pub fn start() -> Upstream {
        let state = Arc::new(State {
            seen: Mutex::new(Vec::new()),
            release: Notify::new(),
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let data = web::Data::from(state.clone());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            actix_rt::System::new().block_on(async move {
                let server = actix_web::HttpServer::new(move || {
                    actix_web::App::new()
                        .app_data(data.clone())
                        .route("/mcp", web::post().to(echo))
                        .route("/stream", web::get().to(stream))
                })
                .workers(1)
                .disable_signals()
                .listen(listener)
                .unwrap()
                .run();
                tx.send(server.handle()).unwrap();
                server.await.unwrap();
            })
        });
        Upstream {
            url,
            state,
            handle: rx.recv().unwrap(),
        }
    }

    /// The `Authorization` header of every request, in order.
    pub fn seen(&self) -> Vec<String> {
        self.state.seen.lock().unwrap().clone()
    }

    /// Lets the held-back second event of `GET /stream` go.
    pub fn release(&self) {
        self.state.release.notify_one();
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}
