//! The client read model: every registered, not deleted client, for client authentication
//! and the registration endpoints.

use crate::clock::Timestamp;
use crate::events::{ClientMetadata, Envelope, Event};
use crate::secret::SecretHash;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A client as the read side sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientView {
    /// Its metadata.
    pub metadata: ClientMetadata,
    /// SHA-256 of its secret (`None` for public clients).
    pub secret_hash: Option<SecretHash>,
    /// When it was registered.
    pub registered_at: Timestamp,
    /// Who registered it.
    pub registered_by: Option<String>,
    /// SHA-256 of its RFC 7592 registration access token.
    pub registration_token_hash: Option<SecretHash>,
    /// Whether it may be used through Tailscale Funnel.
    pub funnel: bool,
}

/// Every live client by id. Views are shared, so a request that authenticates a client
/// takes it along without copying its metadata.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Clients {
    by_id: BTreeMap<String, Arc<ClientView>>,
}

impl Clients {
    /// The client with this id.
    pub fn get(&self, client_id: &str) -> Option<&Arc<ClientView>> {
        self.by_id.get(client_id)
    }

    /// How many clients exist.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Every client, ordered by id.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &ClientView)> {
        self.by_id.iter().map(|(id, view)| (id, &**view))
    }

    /// Folds one event.
    pub fn apply(&mut self, envelope: &Envelope) {
        match &envelope.event {
            Event::ClientRegistered(e) => {
                self.by_id.insert(
                    e.client_id.clone(),
                    Arc::new(ClientView {
                        metadata: e.metadata.clone(),
                        secret_hash: e.secret_hash,
                        registered_at: envelope.time,
                        registered_by: e.registered_by.clone(),
                        registration_token_hash: e.registration_token_hash,
                        funnel: e.funnel,
                    }),
                );
            }
            Event::ClientUpdated(e) => {
                if let Some(client) = self.by_id.get_mut(&e.client_id) {
                    Arc::make_mut(client).metadata = e.metadata.clone();
                }
            }
            Event::ClientSecretRotated(e) => {
                if let Some(client) = self.by_id.get_mut(&e.client_id) {
                    Arc::make_mut(client).secret_hash = Some(e.secret_hash);
                }
            }
            Event::ClientDeleted(e) => {
                self.by_id.remove(&e.client_id);
            }
            _ => {}
        }
    }
}
