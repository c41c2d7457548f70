//! Wall-clock time, read in exactly one place so domain code can take `now` as a parameter.

use serde::{Deserialize, Serialize};
use std::fmt;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// An instant as milliseconds since the Unix epoch (UTC).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The current wall-clock time. Only the edges (HTTP handlers, the CLI) call this;
    /// domain code receives the instant as a parameter.
    #[allow(clippy::disallowed_methods)]
    pub fn now() -> Timestamp {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp(now.as_millis() as i64)
    }

    /// The instant `seconds` later.
    pub fn plus_seconds(self, seconds: i64) -> Timestamp {
        Timestamp(self.0 + seconds * 1000)
    }

    /// Whole seconds since the epoch (the unit of JWT `exp`/`iat`).
    pub fn unix_seconds(self) -> i64 {
        self.0.div_euclid(1000)
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339 with milliseconds, e.g. `2026-11-26T07:44:51.123Z`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nanos = i128::from(self.0) * 1_000_000;
        match OffsetDateTime::from_unix_timestamp_nanos(nanos)
            .ok()
            .and_then(|t| t.format(&Rfc3339).ok())
        {
            Some(text) => f.write_str(&text),
            None => write!(f, "@{}ms", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_rfc3339_utc() {
        assert_eq!(Timestamp(0).to_string(), "1970-01-01T00:00:00Z");
        assert_eq!(
            Timestamp(1_795_000_000_123).to_string(),
            "2026-11-18T11:06:40.123Z"
        );
    }

    #[test]
    fn seconds_round_down() {
        assert_eq!(Timestamp(1999).unix_seconds(), 1);
        assert_eq!(Timestamp(1000).plus_seconds(60), Timestamp(61_000));
    }
}
