//! The audit trail index: which log positions concern which user and which client, so an
//! auditor's question ("who got which token when") reads a few records, not the whole log.
//! The records themselves stay in the log; this model holds only positions, as compressed
//! bitmaps (roaring): a client or user busy enough to have thousands of events costs about
//! a bit per position, a rare one about two bytes.

use super::interner::{Interner, Sym};
use super::tokens::Tokens;
use crate::events::{Envelope, Event};
use roaring::RoaringTreemap;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

/// Positions by subject and by client, and counts by event type.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Audit {
    names: Interner,
    by_subject: BTreeMap<Sym, RoaringTreemap>,
    by_client: BTreeMap<Sym, RoaringTreemap>,
    denials: RoaringTreemap,
    counts: BTreeMap<String, u64>,
}

impl Audit {
    /// Positions of events concerning this user, in order.
    pub fn for_subject(&self, subject: &str) -> impl Iterator<Item = u64> + '_ {
        self.lookup(&self.by_subject, subject)
    }

    /// Positions of events concerning this client, in order.
    pub fn for_client(&self, client_id: &str) -> impl Iterator<Item = u64> + '_ {
        self.lookup(&self.by_client, client_id)
    }

    /// Positions of every denial, in order.
    pub fn denials(&self) -> impl Iterator<Item = u64> + '_ {
        self.denials.iter()
    }

    /// How many events of each type the log holds.
    pub fn counts(&self) -> &BTreeMap<String, u64> {
        &self.counts
    }

    fn lookup<'a>(
        &'a self,
        index: &'a BTreeMap<Sym, RoaringTreemap>,
        name: &str,
    ) -> impl Iterator<Item = u64> + 'a {
        self.names
            .lookup(name)
            .and_then(|sym| index.get(&sym))
            .into_iter()
            .flat_map(RoaringTreemap::iter)
    }

    /// Folds one event. Events that name only their grant are attributed to its client and
    /// user as the token model (already folded up to this event) records them.
    pub fn apply(&mut self, envelope: &Envelope, tokens: &Tokens) {
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
            Event::GrantCreated(e) => (Some(&e.client_id), e.subject.as_deref()),
            Event::AccessTokenIssued(e) => (Some(&e.client_id), e.subject.as_deref()),
            Event::TokenExchanged(e) => (Some(&e.client_id), e.subject.as_deref()),
            Event::RequestDenied(e) => {
                self.denials.insert(envelope.position);
                (e.client_id.as_deref(), e.subject.as_deref())
            }
            Event::RefreshTokenIssued(e) => {
                return self.record_grant(tokens, &e.grant_id, envelope.position);
            }
            Event::RefreshTokenRotated(e) => {
                return self.record_grant(tokens, &e.grant_id, envelope.position);
            }
            Event::TokenRevoked(e) => {
                return self.record_grant(tokens, &e.grant_id, envelope.position);
            }
            Event::GrantRevoked(e) => {
                return self.record_grant(tokens, &e.grant_id, envelope.position);
            }
            Event::AuthorizationCodeRedeemed(_)
            | Event::SigningKeyPublished(_)
            | Event::SigningKeyRetired(_) => (None, None),
        };
        let client = self.names.intern_opt(client);
        let subject = self.names.intern_opt(subject);
        self.record(client, subject, envelope.position);
    }

    fn record_grant(&mut self, tokens: &Tokens, grant_id: &Uuid, position: u64) {
        if let Some((client, subject)) = tokens.grant_parties(grant_id) {
            let client = self.names.intern(client);
            let subject = self.names.intern_opt(subject);
            self.record(client, subject, position);
        }
    }

    fn record(&mut self, client: Sym, subject: Sym, position: u64) {
        if client != Sym::NONE {
            self.by_client.entry(client).or_default().insert(position);
        }
        if subject != Sym::NONE {
            self.by_subject.entry(subject).or_default().insert(position);
        }
    }
}
