//! A stand-in for tailscaled's LocalAPI, the one part of a tailnet that cannot run here. It
//! listens on a real unix socket and answers `GET /localapi/v0/whois?addr=...` with the JSON
//! shape of tailscale's `apitype.WhoIsResponse` (a `tailcfg.Node`, a `tailcfg.UserProfile`
//! and a `tailcfg.PeerCapMap`), as tailscaled does: 403 for a request not addressed to
//! `local-tailscaled.sock`, 400 for an unreadable `addr`, 404 for an unknown peer.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// One tailnet peer as WhoIs describes it.
pub struct Peer {
    /// Its tailnet IPv4 address.
    pub ip: &'static str,
    /// Its owner's login (`tagged-devices` for a tagged node).
    pub login: &'static str,
    /// Its owner's display name.
    pub display_name: &'static str,
    /// Its MagicDNS name (first label).
    pub host: &'static str,
    /// ACL tags (a tagged node has no human user).
    pub tags: &'static [&'static str],
    /// The `tailscale.com/cap/tsidp` rules the policy grants it.
    pub rules: Value,
}

impl Peer {
    /// The `apitype.WhoIsResponse` tailscaled would send for this peer.
    fn whois(&self, index: usize) -> Value {
        let node_id = 1000 + index as i64;
        let user_id = if self.tags.is_empty() {
            500 + index as i64
        } else {
            0
        };
        let mut node = json!({
            "ID": node_id,
            "StableID": format!("n{node_id}CNTRL"),
            "Name": format!("{}.tail1234.ts.net.", self.host),
            "User": user_id,
            "Key": format!("nodekey:{:064x}", node_id),
            "KeyExpiry": "2027-05-01T00:00:00Z",
            "Machine": format!("mkey:{:064x}", node_id + 1),
            "DiscoKey": format!("discokey:{:064x}", node_id + 2),
            "Addresses": [format!("{}/32", self.ip), format!("fd7a:115c:a1e0::{node_id:x}/128")],
            "AllowedIPs": [format!("{}/32", self.ip)],
            "Endpoints": ["192.0.2.10:41641"],
            "HomeDERP": 1,
            "Hostinfo": {"OS": "linux", "Hostname": self.host},
            "Created": "2026-01-01T00:00:00Z",
            "Cap": 113,
            "PrimaryRoutes": [],
            "LastSeen": "2026-11-26T09:00:00Z",
            "Online": true,
            "MachineAuthorized": true,
            "ComputedName": self.host,
            "ComputedNameWithHost": self.host,
        });
        if !self.tags.is_empty() {
            node["Tags"] = json!(self.tags);
        }
        let mut whois = json!({
            "Node": node,
            "UserProfile": {
                "ID": user_id,
                "LoginName": self.login,
                "DisplayName": self.display_name,
                "ProfilePicURL": format!("https://pics.example/{}.png", self.host),
            },
        });
        if !self.rules.is_null() {
            whois["CapMap"] = json!({ "tailscale.com/cap/tsidp": self.rules });
        }
        whois
    }
}

struct State {
    peers: HashMap<IpAddr, Value>,
    asked: Mutex<Vec<String>>,
}

/// A running LocalAPI double.
pub struct Tailscaled {
    /// The unix socket it listens on.
    pub socket: PathBuf,
    state: Arc<State>,
    handle: actix_web::dev::ServerHandle,
    _dir: tempfile::TempDir,
}

async fn whois(state: web::Data<State>, request: HttpRequest) -> HttpResponse {
    if request.connection_info().host() != "local-tailscaled.sock" {
        return HttpResponse::Forbidden().body("invalid localapi request\n");
    }
    let addr = web::Query::<HashMap<String, String>>::from_query(request.query_string())
        .ok()
        .and_then(|q| q.get("addr").cloned())
        .unwrap_or_default();
    state.asked.lock().unwrap().push(addr.clone());
    let ip = addr
        .parse::<SocketAddr>()
        .map(|a| a.ip())
        .or_else(|_| addr.parse::<IpAddr>());
    let Ok(ip) = ip else {
        return HttpResponse::BadRequest().body("invalid 'addr' parameter\n");
    };
    match state.peers.get(&ip) {
        Some(answer) => HttpResponse::Ok().json(answer),
        None => HttpResponse::NotFound().body("no match for IP:port\n"),
    }
}

impl Tailscaled {
    /// Starts the double on a fresh socket, knowing `peers`.
    pub fn start(peers: &[Peer]) -> Tailscaled {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("tailscaled.sock");
        let state = Arc::new(State {
            peers: peers
                .iter()
                .enumerate()
                .map(|(i, p)| (p.ip.parse().unwrap(), p.whois(i)))
                .collect(),
            asked: Mutex::new(Vec::new()),
        });
        let (tx, rx) = std::sync::mpsc::channel();
        let (path, data) = (socket.clone(), web::Data::from(state.clone()));
        std::thread::spawn(move || {
            actix_rt::System::new().block_on(async move {
                let server = actix_web::HttpServer::new(move || {
                    actix_web::App::new()
                        .app_data(data.clone())
                        .route("/localapi/v0/whois", web::get().to(whois))
                })
                .workers(1)
                .disable_signals()
                .bind_uds(&path)
                .unwrap()
                .run();
                tx.send(server.handle()).unwrap();
                server.await.unwrap();
            })
        });
        let handle = rx.recv().unwrap();
        Tailscaled {
            socket,
            state,
            handle,
            _dir: dir,
        }
    }

    /// Every `addr` warrant asked about, in order.
    pub fn asked(&self) -> Vec<String> {
        self.state.asked.lock().unwrap().clone()
    }
}

impl Drop for Tailscaled {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}
