//! `GET /healthz`: liveness, with how far the log and the read models are.

use crate::server::Warrant;
use actix_web::{HttpResponse, web};

/// Reports the log head, the projections' position and live actor counts.
pub async fn health(warrant: web::Data<Warrant>) -> HttpResponse {
    let head = *warrant.store.head().borrow();
    HttpResponse::Ok().json(serde_json::json!({
        "status": "ok",
        "node": warrant.config.node,
        "log_head": head,
        "projections_position": warrant.models.position(),
        "live_actors": {
            "clients": warrant.actors.clients.live(),
            "sessions": warrant.actors.sessions.live(),
            "grants": warrant.actors.grants.live(),
        },
    }))
}
