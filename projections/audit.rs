//! The audit trail index: which log positions concern which user and which client, so an
//! auditor's question ("who got which token when") reads a few records, not the whole log.
//! The records themselves stay in the log; this model holds only positions.

use super::interner::{Interner, Sym};
use crate::events::{Envelope, Event};
use hashbrown::HashMap;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

/// Positions by subject and by client, and counts by event type.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Audit {
    names: Interner,
    by_subject: BTreeMap<Sym, Vec<u64>>,
    by_client: BTreeMap<Sym, Vec<u64>>,
    grants: HashMap<Uuid, (Sym, Sym)>,
    denials: Vec<u64>,
    counts: BTreeMap<String, u64>,
}

impl Audit {
    /// Positions of events concerning this user, in order.
    pub fn for_subject(&self, subject: &str) -> &[u64] {
        self.lookup(&self.by_subject, subject)
    }

    /// Positions of events concerning this client, in order.
    pub fn for_client(&self, client_id: &str) -> &[u64] {
        self.lookup(&self.by_client, client_id)
    }

    /// Positions of every denial.
    pub fn denials(&self) -> &[u64] {
        &self.denials
    }

    /// How many events of each type the log holds.
    pub fn counts(&self) -> &BTreeMap<String, u64> {
        &self.counts
    }

    fn lookup<'a>(&'a self, index: &'a BTreeMap<Sym, Vec<u64>>, name: &str) -> &'a [u64] {
        self.names
            .lookup(name)
            .and_then(|sym| index.get(&sym))
            .map_or(&[], Vec::as_slice)
    }

    /// A copy of the grants map with room for `incoming` more, if it has not: growing it
    /// rehashes every grant, so it is done ahead of a batch while readers go on (see
    /// [`super::ReadModels::room_for`]).
    pub fn room_for(&self, incoming: usize) -> Option<HashMap<Uuid, (Sym, Sym)>> {
        (self.grants.capacity() - self.grants.len() < incoming).then(|| {
            let mut grown = HashMap::with_capacity(
                (self.grants.len() + incoming).max(2 * self.grants.capacity()),
            );
            grown.extend(self.grants.iter().map(|(id, names)| (*id, *names)));
            grown
        })
    }

    /// Swaps in what [`Audit::room_for`] grew (nothing may have changed in between) and
    /// returns what it replaced, to be dropped after the write lock is released.
    pub fn make_room(
        &mut self,
        grants: Option<HashMap<Uuid, (Sym, Sym)>>,
    ) -> Option<HashMap<Uuid, (Sym, Sym)>> {
        let mut grants = grants?;
        debug_assert_eq!(grants.len(), self.grants.len(), "the map changed meanwhile");
        std::mem::swap(&mut self.grants, &mut grants);
        Some(grants)
    }

    /// Folds one event.
    pub fn apply(&mut self, envelope: &Envelope) {
        let event_type = envelope.event.event_type();
        match self.counts.get_mut(event_type) {
            Some(count) => *count += 1,
            None => {
                self.counts.insert(event_type.to_owned(), 1);
            }
        }
        let (client, subject): (Option<&str>, Option<&str>) = match &envelope.event {
            Event::ClientRegistered(e) => (Some(&e.client_id), e.registered_by.as_deref()),
            Event::ClientUpdated(e) => (Some(&e.client_id), None),
            Event::ClientSecretRotated(e) => (Some(&e.client_id), None),
            Event::ClientDeleted(e) => (Some(&e.client_id), None),
            Event::AuthorizationCodeIssued(e) => (Some(&e.client_id), Some(&e.subject)),
            Event::GrantCreated(e) => {
                let client = self.names.intern(&e.client_id);
                let subject = self.names.intern_opt(e.subject.as_deref());
                self.grants.insert(e.grant_id, (client, subject));
                (Some(&e.client_id), e.subject.as_deref())
            }
            Event::AccessTokenIssued(e) => (Some(&e.client_id), e.subject.as_deref()),
            Event::TokenExchanged(e) => (Some(&e.client_id), e.subject.as_deref()),
            Event::RequestDenied(e) => {
                self.denials.push(envelope.position);
                (e.client_id.as_deref(), e.subject.as_deref())
            }
            Event::RefreshTokenIssued(e) => {
                return self.record_grant(&e.grant_id, envelope.position);
            }
            Event::RefreshTokenRotated(e) => {
                return self.record_grant(&e.grant_id, envelope.position);
            }
            Event::TokenRevoked(e) => return self.record_grant(&e.grant_id, envelope.position),
            Event::GrantRevoked(e) => return self.record_grant(&e.grant_id, envelope.position),
            Event::AuthorizationCodeRedeemed(_)
            | Event::SigningKeyPublished(_)
            | Event::SigningKeyRetired(_) => (None, None),
        };
        let client = self.names.intern_opt(client);
        let subject = self.names.intern_opt(subject);
        self.record(client, subject, envelope.position);
    }

    fn record_grant(&mut self, grant_id: &Uuid, position: u64) {
        if let Some(&(client, subject)) = self.grants.get(grant_id) {
            self.record(client, subject, position);
        }
    }

    fn record(&mut self, client: Sym, subject: Sym, position: u64) {
        if client != Sym::NONE {
            self.by_client.entry(client).or_default().push(position);
        }
        if subject != Sym::NONE {
            self.by_subject.entry(subject).or_default().push(position);
        }
    }
}
