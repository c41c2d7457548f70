//! The signing key read model behind JWKS: every published key, and whether it is retired.

use crate::clock::Timestamp;
use crate::events::{Envelope, Event};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A published public key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyView {
    /// JWS algorithm.
    pub alg: String,
    /// The node holding the private half.
    pub node: String,
    /// The public JWK, as published.
    pub public_jwk: String,
    /// When it was published.
    pub published_at: Timestamp,
    /// When it was retired, if it was.
    pub retired_at: Option<Timestamp>,
}

/// Every key ever published, by `kid`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Keys {
    by_kid: BTreeMap<String, KeyView>,
}

impl Keys {
    /// The key with this `kid`, retired or not.
    pub fn get(&self, kid: &str) -> Option<&KeyView> {
        self.by_kid.get(kid)
    }

    /// The keys not retired, ordered by `kid`: what may sign.
    pub fn active(&self) -> impl Iterator<Item = (&String, &KeyView)> {
        self.by_kid.iter().filter(|(_, k)| k.retired_at.is_none())
    }

    /// What JWKS lists at `now`: the active keys, and retired ones for `grace_seconds` after
    /// their retirement, so tokens they signed verify until they expire.
    pub fn listed(
        &self,
        now: Timestamp,
        grace_seconds: i64,
    ) -> impl Iterator<Item = (&String, &KeyView)> {
        self.by_kid.iter().filter(move |(_, k)| {
            k.retired_at
                .is_none_or(|at| now < at.plus_seconds(grace_seconds))
        })
    }

    /// Folds one event.
    pub fn apply(&mut self, envelope: &Envelope) {
        match &envelope.event {
            Event::SigningKeyPublished(e) => {
                self.by_kid.insert(
                    e.kid.clone(),
                    KeyView {
                        alg: e.alg.clone(),
                        node: e.node.clone(),
                        public_jwk: e.public_jwk.to_string(),
                        published_at: envelope.time,
                        retired_at: None,
                    },
                );
            }
            Event::SigningKeyRetired(e) => {
                if let Some(key) = self.by_kid.get_mut(&e.kid) {
                    key.retired_at.get_or_insert(envelope.time);
                }
            }
            _ => {}
        }
    }
}
