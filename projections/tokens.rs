//! The token read model behind introspection (RFC 7662) and revocation (RFC 7009): every
//! access and refresh token by the hash of its text, with status and expiry.
//!
//! Memory layout, since this model holds every live token: records sit in one chunked slab
//! and keep the first 16 bytes of their token's SHA-256 (see [`HashKey`]), grants in another;
//! once told where ([`Tokens::spill_to`], as a server is), each slab keeps its newest chunks
//! in memory and the older ones in a file (see `slab`). The indexes (token by hash, grant
//! by id) keep a slab position and a 24-bit tag of the key, sorted (see `tag_index`), about
//! 7.5 bytes an entry, so they grow without reading a record and a lookup reads only the
//! records its tag names;
//! strings, and the combinations of them that tokens and grants share, are interned; a
//! revoked grant's tokens are inactive through their grant, so revoking it touches no token
//! record. The slabs grow a piece at a time (see [`crate::growth`]) and the indexes a shard
//! at a time, so folding under the write lock never copies or rehashes the whole model.
//!
//! Expired tokens are forgotten, so memory follows the tokens that are alive rather than
//! every token ever issued: when an event's time enters a new hour, the records that expired
//! more than an hour before it are dropped, but only once they are a quarter of all records
//! (dropping rebuilds the slab and its indexes, so each rebuild is paid for by the tokens it
//! forgets). A grant goes with the last of its tokens: none of them can be presented again,
//! so nothing can be asked of it. The sweep depends on the events alone, so a live model and
//! one rebuilt from the log forget the same tokens and grants at the same event. An
//! introspection answers a forgotten token as it answers an expired one: inactive.

use super::interner::{Distinct, Interner, Sym};
use super::slab::{Fixed, Slab};
use super::tag_index::TagIndex;
use crate::events::{
    ActorClaim, Envelope, Event, GRANT_STREAM_PREFIX, RevocationReason, TokenKind,
};
use crate::growth::Chunked;
use crate::secret::SecretHash;
use hashbrown::DefaultHashBuilder;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::hash::BuildHasher;
use uuid::Uuid;

/// Whole hours a token stays after its expiry before a sweep may forget it.
const FORGET_AFTER_HOURS: u32 = 1;

/// The hour (since the epoch) a time in seconds falls in.
fn hour(seconds: u32) -> u32 {
    seconds / 3600
}

/// Counts `record` in the hour it expires in.
fn count_expiry(expiring: &mut BTreeMap<u32, u32>, record: &TokenRecord) {
    *expiring.entry(hour(record.expires_at)).or_default() += 1;
}

/// A token's state, apart from expiry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TokenStatus {
    /// Usable until it expires.
    Active,
    /// Revoked, alone or with its grant (a record keeps only its own revocation; the view
    /// of a token whose grant is revoked says `Revoked` unless it was rotated first).
    Revoked,
    /// A refresh token that was used and replaced.
    Rotated,
}

/// The first 16 bytes of a token's SHA-256, which is what a record keeps and the hash index
/// compares. 128 bits of a cryptographic hash still leave a second preimage out of reach
/// (about 2^108 work even against a million live tokens at once) and two issued tokens
/// sharing a key at odds below 10^-26 at that count; the events keep the whole hash.
type HashKey = [u8; 16];

fn hash_key(hash: &SecretHash) -> HashKey {
    let mut key = [0; 16];
    key.copy_from_slice(&hash.0[..16]);
    key
}

/// A [`HashKey`] serialized as one byte string rather than as sixteen elements of one byte
/// each: a checkpoint writes and reads each key with one copy instead of sixteen calls.
mod hash_key_bytes {
    use super::HashKey;
    use serde::de::{Error, Visitor};

    pub fn serialize<S: serde::Serializer>(key: &HashKey, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(key)
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<HashKey, D::Error> {
        struct Key;
        impl Visitor<'_> for Key {
            type Value = HashKey;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("16 bytes")
            }
            fn visit_bytes<E: Error>(self, bytes: &[u8]) -> Result<HashKey, E> {
                bytes
                    .try_into()
                    .map_err(|_| E::invalid_length(bytes.len(), &self))
            }
        }
        d.deserialize_bytes(Key)
    }
}

/// One token, compactly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    #[serde(with = "hash_key_bytes")]
    hash: HashKey,
    jti: Option<Uuid>,
    kind: TokenKind,
    status: TokenStatus,
    issued_at: u32,
    expires_at: u32,
    grant: u32,
    facts: u32,
}

/// The statuses in the order of their number in a record on disk.
const STATUSES: [TokenStatus; 3] = [
    TokenStatus::Active,
    TokenStatus::Revoked,
    TokenStatus::Rotated,
];

/// On disk: the hash key, the `jti` (zeros if none), a byte of flags (whether there is a
/// `jti`, whether a refresh token, the status times four), then `iat`, `exp`, the grant and
/// the facts as four bytes each, little-endian.
impl Fixed for TokenRecord {
    const SIZE: usize = 49;

    fn encode(&self, out: &mut [u8]) {
        out[..16].copy_from_slice(&self.hash);
        out[16..32].copy_from_slice(self.jti.unwrap_or_default().as_bytes());
        let status = STATUSES.iter().position(|s| *s == self.status);
        out[32] = u8::from(self.jti.is_some())
            | u8::from(self.kind == TokenKind::Refresh) << 1
            | (status.expect("every status is listed") as u8) << 2;
        let numbers = [self.issued_at, self.expires_at, self.grant, self.facts];
        for (n, out) in numbers.iter().zip(out[33..].chunks_exact_mut(4)) {
            out.copy_from_slice(&n.to_le_bytes());
        }
    }

    fn decode(bytes: &[u8]) -> TokenRecord {
        let number = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
        let flags = bytes[32];
        TokenRecord {
            hash: bytes[..16].try_into().expect("16 bytes"),
            jti: (flags & 1 != 0).then(|| Uuid::from_slice(&bytes[16..32]).expect("16 bytes")),
            kind: match flags & 2 {
                0 => TokenKind::Access,
                _ => TokenKind::Refresh,
            },
            // A number no status has (the file is this process's own) reads as revoked.
            status: *STATUSES
                .get(usize::from(flags >> 2))
                .unwrap_or(&TokenStatus::Revoked),
            issued_at: number(33),
            expires_at: number(37),
            grant: number(41),
            facts: number(45),
        }
    }
}

/// The number and value of the entry of `slab` that `index` files under `tag` and `is` picks;
/// only entries whose tag matches are read (from disk, for older ones).
fn find<T: Fixed>(
    index: &TagIndex,
    slab: &Slab<T>,
    tag: u32,
    is: impl Fn(&T) -> bool,
) -> Option<(u32, T)> {
    let mut found = None;
    index.find(tag, |number| {
        let value = slab.get(number as usize);
        let hit = is(&value);
        if hit {
            found = Some((number, value));
        }
        hit
    })?;
    found
}

/// A token's hash key's tag: its first bytes, already uniform (a SHA-256 prefix).
fn key_tag(key: &HashKey) -> u32 {
    u32::from_le_bytes(key[..4].try_into().expect("4 bytes"))
}

/// A token's client, user, scope, audience and actor chain: shared by many tokens, so each
/// distinct combination is kept once and a record holds its number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
struct TokenFacts {
    client: Sym,
    subject: Sym,
    scope: Sym,
    audience: Sym,
    act: Sym,
}

/// What never changes about a grant: in a slab, on disk once old.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct GrantEntry {
    id: Uuid,
    facts: u32,
}

/// On disk: the id, then the facts as four bytes, little-endian.
impl Fixed for GrantEntry {
    const SIZE: usize = 20;

    fn encode(&self, out: &mut [u8]) {
        out[..16].copy_from_slice(self.id.as_bytes());
        out[16..].copy_from_slice(&self.facts.to_le_bytes());
    }

    fn decode(bytes: &[u8]) -> GrantEntry {
        GrantEntry {
            id: Uuid::from_slice(&bytes[..16]).expect("16 bytes"),
            facts: u32::from_le_bytes(bytes[16..].try_into().expect("4 bytes")),
        }
    }
}

/// What changes about a grant with its events: in memory whatever the grant's age (12
/// bytes), so folding a grant's event writes to no file and a sweep finds the grants it
/// forgets without reading the token records.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct GrantState {
    revoked: Option<RevocationReason>,
    /// How many events of the grant's stream are folded in (0 once past `u32::MAX`: unknown).
    version: u32,
    /// The hour its latest-expiring token expires in, plus one (0: it never had a token). A
    /// sweep forgets the grant when it forgets that token, and so all of them.
    last_expiry: u32,
}

/// A grant's client, user, scope, resources and the user's profile, kept once per distinct
/// combination like [`TokenFacts`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
struct GrantFacts {
    client: Sym,
    subject: Sym,
    scope: Sym,
    resources: Sym,
    profile: Sym,
}

/// What introspection needs to know about a token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenView<'a> {
    /// Access or refresh.
    pub kind: TokenKind,
    /// Status, apart from expiry.
    pub status: TokenStatus,
    /// Why its grant was revoked, if it was.
    pub grant_revoked: Option<RevocationReason>,
    /// How many events of its grant's stream the model has folded: what it says of the grant
    /// is true of the stream at that version (0: not known).
    pub grant_version: u64,
    /// Its `jti` (access tokens).
    pub jti: Option<Uuid>,
    /// Its grant.
    pub grant_id: Uuid,
    /// The client it was issued to.
    pub client_id: &'a str,
    /// Its `sub`.
    pub subject: Option<&'a str>,
    /// Its scopes, space-separated.
    pub scope: &'a str,
    /// Its `aud` values.
    pub audience: Vec<&'a str>,
    /// Its `act` claim, for exchanged tokens.
    pub act: Option<ActorClaim>,
    /// The user's profile recorded at login (JSON of [`crate::identity::Profile`]).
    pub profile: Option<&'a str>,
    /// `iat`, seconds since the epoch.
    pub issued_at: i64,
    /// `exp`, seconds since the epoch.
    pub expires_at: i64,
}

impl TokenView<'_> {
    /// Active per RFC 7662 §2.2: not revoked, not rotated, grant not revoked, not expired.
    pub fn is_active(&self, now_seconds: i64) -> bool {
        self.status == TokenStatus::Active
            && self.grant_revoked.is_none()
            && now_seconds < self.expires_at
    }
}

/// Every token, by hash.
#[derive(Debug, Default)]
pub struct Tokens {
    records: Slab<TokenRecord>,
    grants: Slab<GrantEntry>,
    /// Each grant's [`GrantState`], numbered as `grants`.
    grant_states: Chunked<GrantState>,
    /// The grant of the latest event folded that named one. A grant's events come together
    /// (a refresh's rotation and its access token, then the audit index asking whose they
    /// are), and an entry never changes but for its number, which only a sweep changes: so
    /// each is read from disk once, not three times.
    last_grant: Option<(u32, GrantEntry)>,
    strings: Interner,
    token_facts: Distinct<TokenFacts>,
    grant_facts: Distinct<GrantFacts>,
    by_hash: TagIndex,
    by_grant: TagIndex,
    hasher: DefaultHashBuilder,
    /// The hour of the latest event folded: a sweep runs when an event starts a later one.
    swept_hour: u32,
    /// How many records expire in each hour: what a sweep would forget.
    expiring: BTreeMap<u32, u32>,
}

impl PartialEq for Tokens {
    fn eq(&self, other: &Tokens) -> bool {
        self.swept_hour == other.swept_hour
            && self.records == other.records
            && self.grants == other.grants
            && self.grant_states == other.grant_states
            && self.strings == other.strings
            && self.token_facts == other.token_facts
            && self.grant_facts == other.grant_facts
    }
}

fn seconds(ms: crate::clock::Timestamp) -> u32 {
    ms.unix_seconds().clamp(0, i64::from(u32::MAX)) as u32
}

/// The fields of a newly issued token, before it is interned.
struct Issue<'e> {
    grant_id: Uuid,
    hash: SecretHash,
    jti: Option<Uuid>,
    kind: TokenKind,
    issued_at: u32,
    expires_at: u32,
    client: Option<&'e str>,
    subject: Option<&'e str>,
    scope: Option<&'e str>,
    audience: &'e [String],
    act: Option<&'e ActorClaim>,
}

impl Issue<'static> {
    /// A refresh token: client, subject, scope and audience are its grant's.
    fn refresh(
        grant_id: Uuid,
        hash: SecretHash,
        recorded: &Envelope,
        expires_at: crate::clock::Timestamp,
    ) -> Issue<'static> {
        Issue {
            grant_id,
            hash,
            jti: None,
            kind: TokenKind::Refresh,
            issued_at: seconds(recorded.time),
            expires_at: seconds(expires_at),
            client: None,
            subject: None,
            scope: None,
            audience: &[],
            act: None,
        }
    }
}

impl Tokens {
    /// How many tokens are recorded (of any status; expired ones until a sweep forgets them).
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether no token is recorded.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The grants of `client_id` that are not revoked (a scan: for rare operations such as
    /// deleting a client).
    pub fn live_grants_of(&self, client_id: &str) -> Vec<Uuid> {
        let Some(client) = self.strings.lookup(client_id) else {
            return Vec::new();
        };
        self.grants
            .iter()
            .zip(self.grant_states.iter())
            .filter(|(g, state)| {
                self.grant_facts.get(g.facts).client == client && state.revoked.is_none()
            })
            .map(|(g, _)| g.id)
            .collect()
    }

    /// The token whose text hashes to `hash`.
    pub fn by_hash(&self, hash: &SecretHash) -> Option<TokenView<'_>> {
        self.find_hash(hash).map(|(_, record)| self.view(&record))
    }

    /// Keeps about the newest `records` token records and as many grants in memory and the
    /// others in files in `dir`.
    pub fn spill_to(&mut self, dir: &std::path::Path, records: usize) {
        self.records.spill_to(dir, records);
        self.grants.spill_to(dir, records);
    }

    /// How many bytes of token records and grants are in those files rather than in memory.
    pub fn bytes_on_disk(&self) -> usize {
        self.records.on_disk() * TokenRecord::SIZE + self.grants.on_disk() * GrantEntry::SIZE
    }

    /// The tag of a grant's id in its index.
    fn grant_tag(&self, id: &Uuid) -> u32 {
        (self.hasher.hash_one(id) >> 32) as u32
    }

    fn view(&self, r: &TokenRecord) -> TokenView<'_> {
        let grant = &self.grants.get(r.grant as usize);
        let state = &self.grant_states[r.grant as usize];
        let facts = self.token_facts.get(r.facts);
        TokenView {
            kind: r.kind,
            status: match (r.status, state.revoked) {
                (TokenStatus::Active, Some(_)) => TokenStatus::Revoked,
                (status, _) => status,
            },
            grant_revoked: state.revoked,
            grant_version: u64::from(state.version),
            jti: r.jti,
            grant_id: grant.id,
            client_id: self.strings.get(facts.client),
            subject: self.strings.get_opt(facts.subject),
            scope: self.strings.get(facts.scope),
            audience: self
                .strings
                .get_opt(facts.audience)
                .map(|a| a.split(' ').collect())
                .unwrap_or_default(),
            act: self
                .strings
                .get_opt(facts.act)
                .and_then(|json| serde_json::from_str(json).ok()),
            profile: self
                .strings
                .get_opt(self.grant_facts.get(grant.facts).profile),
            issued_at: i64::from(r.issued_at),
            expires_at: i64::from(r.expires_at),
        }
    }

    /// The client and the user of grant `id`.
    pub fn grant_parties(&self, id: &Uuid) -> Option<(&str, Option<&str>)> {
        let (_, grant) = self.grant(id)?;
        let facts = self.grant_facts.get(grant.facts);
        Some((
            self.strings.get(facts.client),
            self.strings.get_opt(facts.subject),
        ))
    }

    /// Grant `id`'s number and entry.
    fn grant(&self, id: &Uuid) -> Option<(u32, GrantEntry)> {
        match self.last_grant {
            Some(last) if last.1.id == *id => Some(last),
            _ => find(&self.by_grant, &self.grants, self.grant_tag(id), |g| {
                g.id == *id
            }),
        }
    }

    /// The number and record of the token whose text hashes to `hash`.
    fn find_hash(&self, hash: &SecretHash) -> Option<(u32, TokenRecord)> {
        let key = hash_key(hash);
        find(&self.by_hash, &self.records, key_tag(&key), |r| {
            r.hash == key
        })
    }

    /// Folds one event.
    pub fn apply(&mut self, envelope: &Envelope) {
        let now = hour(seconds(envelope.time));
        if now > self.swept_hour {
            self.swept_hour = now;
            self.sweep(now.saturating_sub(FORGET_AFTER_HOURS));
        }
        let grant = match &envelope.event {
            Event::GrantCreated(e) => {
                let facts = GrantFacts {
                    client: self.strings.intern(&e.client_id),
                    subject: self.strings.intern_opt(e.subject.as_deref()),
                    scope: self.strings.intern(&e.scope),
                    resources: self.strings.intern(&e.resources.join(" ")),
                    profile: match &e.profile {
                        Some(profile) => self
                            .strings
                            .intern(&serde_json::to_string(profile).expect("a profile serializes")),
                        None => Sym::NONE,
                    },
                };
                let entry = GrantEntry {
                    id: e.grant_id,
                    facts: self.grant_facts.number(&facts, |f| *f),
                };
                Some(self.insert_grant(entry))
            }
            Event::AccessTokenIssued(e) => self.issue(Issue {
                grant_id: e.grant_id,
                hash: e.token_hash,
                jti: Some(e.jti),
                kind: TokenKind::Access,
                issued_at: seconds(e.issued_at),
                expires_at: seconds(e.expires_at),
                client: Some(&e.client_id),
                subject: e.subject.as_deref(),
                scope: Some(&e.scope),
                audience: &e.audience,
                act: None,
            }),
            Event::TokenExchanged(e) => self.issue(Issue {
                grant_id: e.grant_id,
                hash: e.token_hash,
                jti: Some(e.jti),
                kind: TokenKind::Access,
                issued_at: seconds(e.issued_at),
                expires_at: seconds(e.expires_at),
                client: Some(&e.client_id),
                subject: e.subject.as_deref(),
                scope: Some(&e.scope),
                audience: &e.audience,
                act: Some(&e.actor),
            }),
            Event::RefreshTokenIssued(e) => self.issue(Issue::refresh(
                e.grant_id,
                e.token_hash,
                envelope,
                e.expires_at,
            )),
            Event::RefreshTokenRotated(e) => {
                self.set_status(&e.previous_hash, TokenStatus::Rotated);
                self.issue(Issue::refresh(
                    e.grant_id,
                    e.token_hash,
                    envelope,
                    e.expires_at,
                ))
            }
            Event::TokenRevoked(e) => {
                self.set_status(&e.token_hash, TokenStatus::Revoked);
                self.grant(&e.grant_id)
            }
            Event::GrantRevoked(e) => self.revoke_grant(&e.grant_id, e.reason),
            _ => None,
        };
        if let Some(grant) = grant {
            self.count_grant_event(grant, envelope);
            self.last_grant = Some(grant);
        }
    }

    /// An event about grant `grant` moves the grant's version to the event's, when it is of
    /// the grant's own stream. Every event type of a grant's stream is about its grant; one
    /// the model did not fold would leave the version behind, which only costs the grant's
    /// next refresh a conflict and a read.
    fn count_grant_event(&mut self, (grant, entry): (u32, GrantEntry), envelope: &Envelope) {
        let mut id = Uuid::encode_buffer();
        let id = entry.id.hyphenated().encode_lower(&mut id);
        if envelope.stream.strip_prefix(GRANT_STREAM_PREFIX) == Some(id) {
            self.grant_states[grant as usize].version =
                u32::try_from(envelope.version).unwrap_or(0);
        }
    }

    /// Records a created grant; returns its number and entry (the existing one's if it was
    /// recorded).
    fn insert_grant(&mut self, entry: GrantEntry) -> (u32, GrantEntry) {
        if let Some(found) = self.grant(&entry.id) {
            return found;
        }
        let index = self.grants.len() as u32;
        self.grants.push(entry);
        self.grant_states.push(GrantState::default());
        self.by_grant.insert(index, self.grant_tag(&entry.id));
        (index, entry)
    }

    /// Records an issued token; returns its grant's number and entry (`None` for an unknown
    /// grant).
    fn issue(&mut self, issue: Issue<'_>) -> Option<(u32, GrantEntry)> {
        let (grant, entry) = self.grant(&issue.grant_id)?;
        let of_grant = *self.grant_facts.get(entry.facts);
        let audience = (!issue.audience.is_empty()).then(|| issue.audience.join(" "));
        let act = issue
            .act
            .map(|a| serde_json::to_string(a).expect("actor claims serialize"));
        let facts = TokenFacts {
            client: issue
                .client
                .map_or(of_grant.client, |c| self.strings.intern(c)),
            subject: match issue.client {
                Some(_) => self.strings.intern_opt(issue.subject),
                None => of_grant.subject,
            },
            scope: issue
                .scope
                .map_or(of_grant.scope, |s| self.strings.intern(s)),
            audience: match issue.kind {
                TokenKind::Refresh => of_grant.resources,
                TokenKind::Access => self.strings.intern_opt(audience.as_deref()),
            },
            act: self.strings.intern_opt(act.as_deref()),
        };
        let record = TokenRecord {
            hash: hash_key(&issue.hash),
            jti: issue.jti,
            kind: issue.kind,
            status: TokenStatus::Active,
            issued_at: issue.issued_at,
            expires_at: issue.expires_at,
            grant,
            facts: self.token_facts.number(&facts, |f| *f),
        };
        count_expiry(&mut self.expiring, &record);
        let last_expiry = &mut self.grant_states[grant as usize].last_expiry;
        *last_expiry = (*last_expiry).max(hour(record.expires_at) + 1);
        let index = self.records.len() as u32;
        self.records.push(record);
        self.by_hash.insert(index, key_tag(&record.hash));
        Some((grant, entry))
    }

    fn set_status(&mut self, hash: &SecretHash, status: TokenStatus) {
        if let Some((i, record)) = self.find_hash(hash) {
            self.records
                .set(i as usize, TokenRecord { status, ..record });
        }
    }

    /// Revokes a grant, and with it its tokens; returns its number and entry (`None` for an
    /// unknown grant).
    fn revoke_grant(&mut self, id: &Uuid, reason: RevocationReason) -> Option<(u32, GrantEntry)> {
        let found = self.grant(id)?;
        let state = &mut self.grant_states[found.0 as usize];
        state.revoked.get_or_insert(reason);
        Some(found)
    }

    /// Forgets the records expiring before hour `cutoff`, if they are a quarter of all, and
    /// each grant all of whose records it forgets.
    fn sweep(&mut self, cutoff: u32) {
        let expired: usize = self
            .expiring
            .range(..cutoff)
            .map(|(_, &n)| n as usize)
            .sum();
        if expired == 0 || expired * 4 < self.records.len() {
            return;
        }
        // A grant goes with the last of its records; one that never had a record stays.
        let kept = |record: &TokenRecord| hour(record.expires_at) >= cutoff;
        let dead: Vec<bool> = (self.grant_states.iter())
            .map(|state| (1..=cutoff).contains(&state.last_expiry))
            .collect();
        let renumbered = dead
            .contains(&true)
            .then(|| self.forget_grants(|grant| dead[grant]));
        let empty = self.records.empty_like();
        let old = std::mem::replace(&mut self.records, empty);
        let records = &mut self.records;
        self.by_hash = TagIndex::build(old.iter().filter(kept).map(|mut record| {
            if let Some(renumbered) = &renumbered {
                record.grant = renumbered[record.grant as usize];
            }
            let number = records.len() as u32;
            records.push(record);
            (number, key_tag(&record.hash))
        }));
        self.expiring = self.expiring.split_off(&cutoff);
    }

    /// Drops the grants `dead` picks (by index), keeping the others in order, and indexes
    /// them anew; returns the new index of each old one (a dropped grant's is that of the
    /// next kept one, unused).
    fn forget_grants(&mut self, dead: impl Fn(usize) -> bool) -> Vec<u32> {
        let mut renumbered = Vec::with_capacity(self.grants.len());
        let (mut kept, mut kept_states) = (self.grants.empty_like(), Chunked::default());
        let grants = self.grants.iter().zip(self.grant_states.iter());
        for (index, (grant, state)) in grants.enumerate() {
            renumbered.push(kept.len() as u32);
            if !dead(index) {
                kept.push(grant);
                kept_states.push(*state);
            }
        }
        self.grants = kept;
        self.grant_states = kept_states;
        self.reindex_grants();
        renumbered
    }

    /// The token index anew, after the records changed places.
    fn reindex_records(&mut self) {
        let tags = self.records.iter().map(|record| key_tag(&record.hash));
        self.by_hash = TagIndex::build((0..).zip(tags));
    }

    fn rebuild_indexes(&mut self) {
        self.reindex_records();
        self.reindex_grants();
    }

    /// The grant index anew, after the grants changed places.
    fn reindex_grants(&mut self) {
        self.last_grant = None;
        let tags = self.grants.iter().map(|grant| self.grant_tag(&grant.id));
        self.by_grant = TagIndex::build((0..).zip(tags));
    }
}

#[derive(Serialize)]
struct TokensRef<'a> {
    swept_hour: u32,
    records: &'a Slab<TokenRecord>,
    grants: &'a Slab<GrantEntry>,
    grant_states: &'a Chunked<GrantState>,
    strings: &'a Interner,
    token_facts: &'a Distinct<TokenFacts>,
    grant_facts: &'a Distinct<GrantFacts>,
}

#[derive(Deserialize)]
struct TokensData {
    swept_hour: u32,
    records: Slab<TokenRecord>,
    grants: Slab<GrantEntry>,
    grant_states: Chunked<GrantState>,
    strings: Interner,
    token_facts: Distinct<TokenFacts>,
    grant_facts: Distinct<GrantFacts>,
}

impl Serialize for Tokens {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        TokensRef {
            swept_hour: self.swept_hour,
            records: &self.records,
            grants: &self.grants,
            grant_states: &self.grant_states,
            strings: &self.strings,
            token_facts: &self.token_facts,
            grant_facts: &self.grant_facts,
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Tokens {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Tokens, D::Error> {
        let data = TokensData::deserialize(deserializer)?;
        let mut tokens = Tokens {
            swept_hour: data.swept_hour,
            records: data.records,
            grants: data.grants,
            grant_states: data.grant_states,
            strings: data.strings,
            token_facts: data.token_facts,
            grant_facts: data.grant_facts,
            ..Tokens::default()
        };
        tokens.rebuild_indexes();
        for record in tokens.records.iter() {
            count_expiry(&mut tokens.expiring, &record);
        }
        Ok(tokens)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Timestamp;
    use crate::events::synthetic::{self, envelope};
    use crate::events::{GrantRevoked, NewEvent, RefreshTokenRotated, TokenRevoked};
    use crate::projections::slab::CHUNK;

    #[test]
    fn hash_keys_are_one_byte_string_and_any_other_length_is_refused() {
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        struct Key(#[serde(with = "hash_key_bytes")] HashKey);
        let bytes = postcard::to_allocvec(&Key([7; 16])).unwrap();
        assert_eq!(
            bytes,
            [&[16][..], &[7; 16]].concat(),
            "a length, then the bytes"
        );
        assert_eq!(postcard::from_bytes::<Key>(&bytes).unwrap(), Key([7; 16]));
        let short = [&[15][..], &[7; 15]].concat();
        let err = postcard::from_bytes::<Key>(&short).unwrap_err();
        assert!(matches!(err, postcard::Error::SerdeDeCustom), "{err}");
    }

    /// Folds synthetic families `range` (an access token for an hour, a refresh token for 30
    /// days each) recorded at `at` into both models, from `position` on.
    fn fold(
        mut models: [&mut Tokens; 2],
        range: std::ops::Range<usize>,
        at: Timestamp,
        position: &mut u64,
    ) {
        for new in range.flat_map(|i| synthetic::token_family(i, at).1) {
            *position += 1;
            let envelope = envelope(*position, new);
            for tokens in models.iter_mut() {
                tokens.apply(&envelope);
            }
        }
    }

    /// A minute past `n` hours after the start of an hour.
    fn hours(n: i64) -> Timestamp {
        Timestamp(498_611 * 3_600_000).plus_seconds(n * 3600 + 60)
    }

    #[test]
    fn expired_tokens_are_forgotten_once_they_are_a_quarter_and_the_rest_still_work() {
        let (mut live, mut replayed) = (Tokens::default(), Tokens::default());
        let mut position = 0;
        fold([&mut live, &mut replayed], 0..100, hours(0), &mut position);
        // Two hours on, the first access tokens have been expired for less than an hour.
        fold(
            [&mut live, &mut replayed],
            100..101,
            hours(2),
            &mut position,
        );
        assert_eq!(
            live.len(),
            202,
            "nothing is forgotten within the hour after expiry"
        );
        assert!(live.by_hash(&SecretHash::of("at-0")).is_some());

        // Three hours on they have been expired for over an hour: half of all, forgotten.
        fold(
            [&mut live, &mut replayed],
            101..102,
            hours(3),
            &mut position,
        );
        assert_eq!(
            live.len(),
            104,
            "100 refresh tokens and the 2 newer families' tokens"
        );
        assert!(live.by_hash(&SecretHash::of("at-5")).is_none());
        assert!(
            live.by_hash(&SecretHash::of("at-100")).is_some(),
            "not yet expired"
        );
        let refresh = live.by_hash(&SecretHash::of("rt-5")).unwrap();
        assert!(refresh.is_active(i64::from(seconds(hours(3)))));

        // Revoking a grant still revokes its remaining tokens, and only those.
        let revoked = GrantRevoked {
            grant_id: refresh.grant_id,
            reason: RevocationReason::Operator,
        };
        position += 1;
        let revocation = envelope(
            position,
            crate::events::NewEvent::new(revoked, hours(3), Uuid::nil()),
        );
        live.apply(&revocation);
        replayed.apply(&revocation);
        assert_eq!(
            live.by_hash(&SecretHash::of("rt-5")).unwrap().status,
            TokenStatus::Revoked
        );
        assert_eq!(
            live.by_hash(&SecretHash::of("rt-6")).unwrap().status,
            TokenStatus::Active
        );

        // Folding the same events gives the same model, and so does a checkpoint of it.
        assert_eq!(live, replayed);
        let mut restored: Tokens =
            postcard::from_bytes(&postcard::to_stdvec(&live).unwrap()).unwrap();
        assert_eq!(restored, live);
        // A restored model sweeps where the live one does: 31 days on, every older token has
        // been expired for over an hour.
        fold(
            [&mut live, &mut restored],
            102..103,
            hours(31 * 24),
            &mut position,
        );
        assert_eq!(restored, live);
        assert_eq!(live.len(), 2, "family 102's pair");
        assert!(live.by_hash(&SecretHash::of("rt-101")).is_none());
    }

    #[test]
    fn a_grant_goes_with_the_last_of_its_tokens_and_the_others_stay_whole() {
        let (mut live, mut replayed) = (Tokens::default(), Tokens::default());
        let mut position = 0;
        fold([&mut live, &mut replayed], 0..10, hours(0), &mut position);
        // Thirty days on: the access tokens go, the refresh tokens keep their grants.
        fold(
            [&mut live, &mut replayed],
            10..11,
            hours(30 * 24),
            &mut position,
        );
        assert_eq!((live.len(), live.grants.len()), (12, 11));
        let first = live.by_hash(&SecretHash::of("rt-0")).unwrap().grant_id;
        let later = live.by_hash(&SecretHash::of("rt-10")).unwrap();
        let (later_grant, later_client) = (later.grant_id, later.client_id.to_owned());

        // A day later the first ten refresh tokens have expired too: their grants go, and
        // family 10's grant, kept by its refresh token, moves to the front.
        fold(
            [&mut live, &mut replayed],
            11..12,
            hours(31 * 24),
            &mut position,
        );
        assert_eq!((live.len(), live.grants.len()), (3, 2));
        assert!(live.grant_parties(&first).is_none());
        assert!(live.live_grants_of(&later_client).contains(&later_grant));
        let later = live.by_hash(&SecretHash::of("rt-10")).unwrap();
        assert_eq!(later.grant_id, later_grant);
        assert_eq!(later.client_id, later_client);
        assert_eq!(live.grant_parties(&later_grant).unwrap().0, later_client);

        // Revoking it revokes its token, and only that.
        position += 1;
        let revoked = GrantRevoked {
            grant_id: later_grant,
            reason: RevocationReason::Operator,
        };
        let revocation = envelope(
            position,
            NewEvent::new(revoked, hours(31 * 24), Uuid::nil()),
        );
        live.apply(&revocation);
        replayed.apply(&revocation);
        let status = |hash: &str| live.by_hash(&SecretHash::of(hash)).unwrap().status;
        assert_eq!(status("rt-10"), TokenStatus::Revoked);
        assert_eq!(status("rt-11"), TokenStatus::Active);
        assert_eq!(status("at-11"), TokenStatus::Active);

        assert_eq!(live, replayed);
        let restored: Tokens = postcard::from_bytes(&postcard::to_stdvec(&live).unwrap()).unwrap();
        assert_eq!(restored, live);
        assert_eq!(
            restored.by_hash(&SecretHash::of("rt-10")).unwrap(),
            live.by_hash(&SecretHash::of("rt-10")).unwrap()
        );
    }

    #[test]
    fn expired_tokens_under_a_quarter_of_all_wait_for_a_later_sweep() {
        let (mut tokens, mut again) = (Tokens::default(), Tokens::default());
        let mut position = 0;
        fold([&mut tokens, &mut again], 0..10, hours(0), &mut position);
        fold([&mut tokens, &mut again], 10..60, hours(1), &mut position);
        // Hour 3: the first 10 access tokens are over an hour past expiry, 10 of 120 records.
        fold([&mut tokens, &mut again], 60..61, hours(3), &mut position);
        assert_eq!(tokens.len(), 122);
        assert!(tokens.by_hash(&SecretHash::of("at-0")).is_some());
        // Hour 4: 60 of 122 are, and go.
        fold([&mut tokens, &mut again], 61..62, hours(4), &mut position);
        assert_eq!(tokens.len(), 64);
        assert!(tokens.by_hash(&SecretHash::of("at-0")).is_none());
        assert!(tokens.by_hash(&SecretHash::of("at-59")).is_none());
        assert!(tokens.by_hash(&SecretHash::of("at-60")).is_some());
    }

    #[test]
    fn a_grants_version_is_that_of_the_latest_event_of_its_own_stream() {
        let now = Timestamp(1_795_000_000_000);
        let mut tokens = Tokens::default();
        let mut position = 0;
        let mut fold = |tokens: &mut Tokens, stream: &str, version: u64, new: NewEvent| {
            position += 1;
            tokens.apply(&Envelope {
                stream: stream.into(),
                version,
                ..envelope(position, new)
            });
        };
        let (stream, family) = synthetic::token_family(0, now);
        for (i, new) in family.into_iter().enumerate() {
            fold(&mut tokens, &stream, i as u64 + 1, new);
        }
        let version = |tokens: &Tokens| {
            let refresh = tokens.by_hash(&SecretHash::of("rt-0")).unwrap();
            (refresh.grant_id, refresh.grant_version)
        };
        let (grant_id, folded) = version(&tokens);
        assert_eq!(folded, 3, "creation, access token, refresh token");

        // An event about the grant recorded in another stream says nothing of the grant's.
        let revoked = || {
            let revoked = GrantRevoked {
                grant_id,
                reason: RevocationReason::Operator,
            };
            NewEvent::new(revoked, now, Uuid::nil())
        };
        fold(&mut tokens, "imported-grants", 40, revoked());
        assert_eq!(version(&tokens).1, 3);
        fold(&mut tokens, &stream, 4, revoked());
        assert_eq!(version(&tokens).1, 4);
        // Past what a record holds, the version is not known.
        fold(&mut tokens, &stream, u64::from(u32::MAX) + 1, revoked());
        assert_eq!(version(&tokens).1, 0);
    }

    #[test]
    fn every_token_folded_is_found_by_hash_across_chunks_and_shards() {
        let now = Timestamp(1_795_000_000_000);
        let mut tokens = Tokens::default();
        let families = 10_000;
        for (position, new) in (0..families)
            .flat_map(|i| synthetic::token_family(i, now).1)
            .enumerate()
        {
            tokens.apply(&envelope(position as u64 + 1, new));
        }
        assert_eq!(tokens.len(), 2 * families);
        for i in 0..families {
            let access = tokens.by_hash(&SecretHash::of(&format!("at-{i}"))).unwrap();
            assert_eq!(access.kind, TokenKind::Access);
            assert!(access.jti.is_some(), "an access token has a jti");
            let refresh = tokens.by_hash(&SecretHash::of(&format!("rt-{i}"))).unwrap();
            assert_eq!(refresh.grant_id, access.grant_id);
        }
        assert!(tokens.by_hash(&SecretHash::of("at-unknown")).is_none());
    }

    #[test]
    fn records_and_grants_encode_every_field_and_decode_the_same() {
        let mut record = TokenRecord {
            hash: [0xa5; 16],
            jti: None,
            kind: TokenKind::Access,
            status: TokenStatus::Active,
            issued_at: 1,
            expires_at: u32::MAX,
            grant: 0x0102_0304,
            facts: 7,
        };
        for jti in [
            None,
            Some(Uuid::nil()),
            Some(Uuid::from_u128(u128::MAX - 3)),
        ] {
            for kind in [TokenKind::Access, TokenKind::Refresh] {
                for status in STATUSES {
                    record = TokenRecord {
                        jti,
                        kind,
                        status,
                        ..record
                    };
                    let mut bytes = [0xff; TokenRecord::SIZE];
                    record.encode(&mut bytes);
                    assert_eq!(TokenRecord::decode(&bytes), record);
                }
            }
        }
        let grant = GrantEntry {
            id: Uuid::from_u128(u128::MAX / 3),
            facts: 0x0a0b_0c0d,
        };
        let mut bytes = [0xff; GrantEntry::SIZE];
        grant.encode(&mut bytes);
        assert_eq!(GrantEntry::decode(&bytes), grant);
    }

    #[test]
    fn a_model_with_older_records_on_disk_answers_as_one_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let (mut spilled, mut memory) = (Tokens::default(), Tokens::default());
        spilled.spill_to(dir.path(), 2 * CHUNK);
        let mut position = 0;
        let apply = |models: [&mut Tokens; 2], position: &mut u64, new: NewEvent| {
            *position += 1;
            let envelope = envelope(*position, new);
            models.into_iter().for_each(|m| m.apply(&envelope));
        };
        let families = 6_000;
        fold(
            [&mut spilled, &mut memory],
            0..families,
            hours(0),
            &mut position,
        );
        let on_disk = spilled.records.on_disk();
        assert!(on_disk >= 10 * CHUNK, "{on_disk} records on disk");
        assert!(spilled.grants.on_disk() >= 4 * CHUNK);
        // Changes to records on disk: rotations, a token's revocation, a grant's.
        let grant = |i: usize| Uuid::from_u128(0x5eed_0000_0000 + i as u128);
        for i in (0..100).map(|i| i * 59) {
            let rotated = RefreshTokenRotated {
                grant_id: grant(i),
                previous_hash: SecretHash::of(&format!("rt-{i}")),
                token_hash: SecretHash::of(&format!("rt-{i}-2")),
                expires_at: hours(30 * 24),
            };
            let new = NewEvent::new(rotated, hours(0), Uuid::nil());
            apply([&mut spilled, &mut memory], &mut position, new);
        }
        let revoked = TokenRevoked {
            grant_id: grant(3),
            token_hash: SecretHash::of("at-3"),
            kind: TokenKind::Access,
        };
        let new = NewEvent::new(revoked, hours(0), Uuid::nil());
        apply([&mut spilled, &mut memory], &mut position, new);
        let revoked = GrantRevoked {
            grant_id: grant(5),
            reason: RevocationReason::Operator,
        };
        let new = NewEvent::new(revoked, hours(0), Uuid::nil());
        apply([&mut spilled, &mut memory], &mut position, new);

        let same_answers = |spilled: &Tokens, memory: &Tokens| {
            assert_eq!(spilled, memory);
            for i in (0..families).step_by(7).chain([3, 5, 59, 5841]) {
                for text in [format!("at-{i}"), format!("rt-{i}"), format!("rt-{i}-2")] {
                    let hash = SecretHash::of(&text);
                    assert_eq!(spilled.by_hash(&hash), memory.by_hash(&hash), "{text}");
                }
            }
        };
        same_answers(&spilled, &memory);
        let status = |hash: &str| spilled.by_hash(&SecretHash::of(hash)).unwrap().status;
        assert_eq!(status("rt-59"), TokenStatus::Rotated);
        assert_eq!(status("rt-59-2"), TokenStatus::Active);
        assert_eq!(status("at-3"), TokenStatus::Revoked);
        assert_eq!(status("rt-5"), TokenStatus::Revoked);
        assert_eq!(status("at-4"), TokenStatus::Active);

        // A checkpoint of it is that of the model in memory.
        let bytes = postcard::to_stdvec(&spilled).unwrap();
        assert_eq!(bytes, postcard::to_stdvec(&memory).unwrap());

        // Three hours on, the access tokens are forgotten; the rest moves to a new file.
        fold(
            [&mut spilled, &mut memory],
            families..families + 1,
            hours(3),
            &mut position,
        );
        assert_eq!(spilled.len(), families + 100 + 2);
        assert!(spilled.records.on_disk() >= 4 * CHUNK);
        assert!(spilled.by_hash(&SecretHash::of("at-4")).is_none());
        same_answers(&spilled, &memory);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "the files have no names"
        );
    }
}
