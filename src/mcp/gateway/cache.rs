//! Exchanged tokens, kept per subject token until shortly before they expire, so a session's
//! requests cost one exchange rather than one each. Keyed by the subject token's SHA-256:
//! the cache holds no token a client presented.

use crate::clock::Timestamp;
use crate::secret::SecretHash;
use std::collections::HashMap;
use std::sync::Mutex;

/// How long before its expiry an exchanged token stops being reused, in seconds.
pub const EXPIRY_MARGIN_SECONDS: i64 = 30;

/// Most entries kept; when full, expired ones are dropped, then the cache is cleared.
const CAPACITY: usize = 100_000;

/// The cache.
#[derive(Default)]
pub struct ExchangeCache {
    entries: Mutex<HashMap<SecretHash, (String, i64)>>,
}

impl ExchangeCache {
    /// The exchanged token for `subject`, if it has time left.
    pub fn get(&self, subject: &SecretHash, now: Timestamp) -> Option<String> {
        let entries = self.entries.lock().unwrap();
        entries
            .get(subject)
            .filter(|(_, expires_at)| now.unix_seconds() < expires_at - EXPIRY_MARGIN_SECONDS)
            .map(|(token, _)| token.clone())
    }

    /// Remembers the token exchanged for `subject` until `expires_at` (seconds).
    pub fn put(&self, subject: SecretHash, token: String, expires_at: i64, now: Timestamp) {
        let mut entries = self.entries.lock().unwrap();
        if entries.len() >= CAPACITY {
            entries.retain(|_, (_, exp)| now.unix_seconds() < *exp - EXPIRY_MARGIN_SECONDS);
            if entries.len() >= CAPACITY {
                entries.clear();
            }
        }
        entries.insert(subject, (token, expires_at));
    }

    /// Forgets the token exchanged for `subject` (revoked, or refused by warrant).
    pub fn forget(&self, subject: &SecretHash) {
        self.entries.lock().unwrap().remove(subject);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_early_and_can_be_forgotten() {
        let cache = ExchangeCache::default();
        let now = Timestamp(1_000_000);
        let key = SecretHash::of("subject");
        cache.put(key, "exchanged".into(), now.unix_seconds() + 60, now);
        assert_eq!(cache.get(&key, now).as_deref(), Some("exchanged"));
        assert_eq!(
            cache.get(&key, now.plus_seconds(31)),
            None,
            "within the margin"
        );
        cache.forget(&key);
        assert_eq!(cache.get(&key, now), None);
    }
}
