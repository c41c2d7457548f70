//! The envelope every recorded event travels in, and its canonical binary encoding, which
//! the hash chain covers whatever backend stores it.
//!
//! # Record body layout (all integers little-endian)
//!
//! ```text
//! offset  size  field
//! 0       8     position         global, 1-based, gap-free
//! 8       8     version          within the stream, 1-based
//! 16      8     time             ms since the Unix epoch
//! 24      2     schema_version
//! 26      32    prev_hash        SHA-256 of the previous record's body (zeros for the first)
//! 58      16    correlation_id   UUID of the HTTP request (or command) that caused it
//! 74      2     stream length S, then S bytes of UTF-8
//! ..      1     event type length T, then T bytes of UTF-8
//! ..      1     node length N, then N bytes of UTF-8
//! ..      rest  payload: the event as JSON
//! ```
//!
//! A record's hash is the SHA-256 of its body; the next record carries it as `prev_hash`.

use super::catalog::{DecodeError, Event};
use crate::clock::Timestamp;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// A SHA-256 digest linking records into a chain.
pub type ChainHash = [u8; 32];

/// An event recorded in the log, with everything the log knows about it.
#[derive(Clone, Debug, PartialEq)]
pub struct Envelope {
    /// Global position (1-based, gap-free).
    pub position: u64,
    /// The stream it belongs to.
    pub stream: String,
    /// Its version within the stream (1-based).
    pub version: u64,
    /// When it was recorded.
    pub time: Timestamp,
    /// The node that wrote it.
    pub node: String,
    /// The request that caused it.
    pub correlation_id: Uuid,
    /// The hash of the record before it.
    pub prev_hash: ChainHash,
    /// The hash of this record.
    pub hash: ChainHash,
    /// The fact itself.
    pub event: Event,
}

/// An event about to be appended: the fact and its context, before the log places it.
#[derive(Clone, Debug, PartialEq)]
pub struct NewEvent {
    /// The fact.
    pub event: Event,
    /// When it happened.
    pub time: Timestamp,
    /// The request that caused it.
    pub correlation_id: Uuid,
}

impl NewEvent {
    /// Wraps an event with its time and correlation id.
    pub fn new(event: impl Into<Event>, time: Timestamp, correlation_id: Uuid) -> NewEvent {
        NewEvent {
            event: event.into(),
            time,
            correlation_id,
        }
    }
}

/// The fields of a record body before its payload is decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawRecord<'a> {
    /// Global position.
    pub position: u64,
    /// Stream version.
    pub version: u64,
    /// Recording time.
    pub time: Timestamp,
    /// Schema version of the payload.
    pub schema_version: u16,
    /// Hash of the previous record.
    pub prev_hash: ChainHash,
    /// Correlation id.
    pub correlation_id: Uuid,
    /// Stream name.
    pub stream: &'a str,
    /// Event type name.
    pub event_type: &'a str,
    /// Writing node.
    pub node: &'a str,
    /// JSON payload.
    pub payload: &'a [u8],
}

/// A record body could not be parsed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    /// The body is shorter than its fields say.
    #[error("record body truncated")]
    Truncated,
    /// A name is not UTF-8.
    #[error("record field is not UTF-8")]
    NotUtf8,
    /// The payload cannot be read by this build.
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

const FIXED: usize = 74;

/// Fields the log assigns to an event when it places it.
#[derive(Clone, Copy, Debug)]
pub struct Placement<'a> {
    /// Global position.
    pub position: u64,
    /// Stream version.
    pub version: u64,
    /// Stream name.
    pub stream: &'a str,
    /// Writing node.
    pub node: &'a str,
    /// Hash of the previous record.
    pub prev_hash: ChainHash,
}

/// Appends the body of one record to `out`; returns the record's hash.
///
/// `payload` is `event.encode_payload()`, passed in so callers can encode off the writer's
/// critical path.
pub fn encode_body(
    out: &mut Vec<u8>,
    place: &Placement<'_>,
    event: &NewEvent,
    payload: &[u8],
) -> ChainHash {
    let start = out.len();
    out.extend_from_slice(&place.position.to_le_bytes());
    out.extend_from_slice(&place.version.to_le_bytes());
    out.extend_from_slice(&event.time.0.to_le_bytes());
    out.extend_from_slice(&event.event.schema_version().to_le_bytes());
    out.extend_from_slice(&place.prev_hash);
    out.extend_from_slice(event.correlation_id.as_bytes());
    let stream = clip(place.stream, u16::MAX as usize);
    out.extend_from_slice(&(stream.len() as u16).to_le_bytes());
    out.extend_from_slice(stream.as_bytes());
    for short in [event.event.event_type(), place.node] {
        let short = clip(short, u8::MAX as usize);
        out.push(short.len() as u8);
        out.extend_from_slice(short.as_bytes());
    }
    out.extend_from_slice(payload);
    Sha256::digest(&out[start..]).into()
}

fn clip(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Parses a record body without decoding its payload.
pub fn parse_body(body: &[u8]) -> Result<RawRecord<'_>, RecordError> {
    if body.len() < FIXED + 4 {
        return Err(RecordError::Truncated);
    }
    let u64_at = |at: usize| u64::from_le_bytes(body[at..at + 8].try_into().unwrap());
    let mut cursor = FIXED;
    let mut take = |len: usize| -> Result<&[u8], RecordError> {
        let field = body
            .get(cursor..cursor + len)
            .ok_or(RecordError::Truncated)?;
        cursor += len;
        Ok(field)
    };
    let stream_len = u16::from_le_bytes(take(2)?.try_into().unwrap()) as usize;
    let stream = utf8(take(stream_len)?)?;
    let type_len = take(1)?[0] as usize;
    let event_type = utf8(take(type_len)?)?;
    let node_len = take(1)?[0] as usize;
    let node = utf8(take(node_len)?)?;
    Ok(RawRecord {
        position: u64_at(0),
        version: u64_at(8),
        time: Timestamp(u64_at(16) as i64),
        schema_version: u16::from_le_bytes(body[24..26].try_into().unwrap()),
        prev_hash: body[26..58].try_into().unwrap(),
        correlation_id: Uuid::from_bytes(body[58..74].try_into().unwrap()),
        stream,
        event_type,
        node,
        payload: &body[cursor..],
    })
}

fn utf8(bytes: &[u8]) -> Result<&str, RecordError> {
    std::str::from_utf8(bytes).map_err(|_| RecordError::NotUtf8)
}

/// The previous-record hash a body carries, without parsing the rest.
pub fn prev_hash_of(body: &[u8]) -> Option<ChainHash> {
    body.get(26..58).map(|h| h.try_into().expect("32 bytes"))
}

/// The hash of a record body.
pub fn hash_body(body: &[u8]) -> ChainHash {
    Sha256::digest(body).into()
}

impl Envelope {
    /// Decodes the payload of a parsed record body (see [`parse_body`]) whose hash is
    /// already known.
    pub fn from_raw(raw: RawRecord<'_>, hash: ChainHash) -> Result<Envelope, RecordError> {
        let event = Event::decode(raw.event_type, raw.schema_version, raw.payload)?;
        Ok(Envelope {
            position: raw.position,
            stream: raw.stream.to_owned(),
            version: raw.version,
            time: raw.time,
            node: raw.node.to_owned(),
            correlation_id: raw.correlation_id,
            prev_hash: raw.prev_hash,
            hash,
            event,
        })
    }
}

impl Envelope {
    /// The envelope of an event just framed at `place` with record hash `hash`: what
    /// [`Envelope::from_raw`] of that record gives, without reading it back.
    pub fn placed(place: &Placement<'_>, event: NewEvent, hash: ChainHash) -> Envelope {
        Envelope {
            position: place.position,
            stream: clip(place.stream, u16::MAX as usize).to_owned(),
            version: place.version,
            time: event.time,
            node: clip(place.node, u8::MAX as usize).to_owned(),
            correlation_id: event.correlation_id,
            prev_hash: place.prev_hash,
            hash,
            event: event.event,
        }
    }

    /// The envelope as one JSON object, for export: every envelope field, hashes in hex,
    /// the payload under `payload`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "position": self.position,
            "stream": self.stream,
            "version": self.version,
            "type": self.event.event_type(),
            "schema_version": self.event.schema_version(),
            "time": self.time.to_string(),
            "node": self.node,
            "correlation_id": self.correlation_id,
            "prev_hash": crate::secret::to_hex(&self.prev_hash),
            "hash": crate::secret::to_hex(&self.hash),
            "payload": self.event.payload_json(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::ClientDeleted;

    fn sample() -> NewEvent {
        NewEvent::new(
            ClientDeleted {
                client_id: "c1".into(),
            },
            Timestamp(1_700_000_000_000),
            Uuid::from_u128(7),
        )
    }

    #[test]
    fn body_round_trips_and_hash_covers_it() {
        let event = sample();
        let place = Placement {
            position: 42,
            version: 3,
            stream: "client-c1",
            node: "n1",
            prev_hash: [9; 32],
        };
        let mut body = Vec::new();
        let hash = encode_body(&mut body, &place, &event, &event.event.encode_payload());
        assert_eq!(hash, hash_body(&body));
        let env = Envelope::from_raw(parse_body(&body).unwrap(), hash).unwrap();
        assert_eq!(
            (
                env.position,
                env.version,
                env.stream.as_str(),
                env.node.as_str()
            ),
            (42, 3, "client-c1", "n1")
        );
        assert_eq!(env.prev_hash, [9; 32]);
        assert_eq!(env.correlation_id, Uuid::from_u128(7));
        assert_eq!(env.time, event.time);
        assert_eq!(env.event, event.event);
    }

    #[test]
    fn short_body_is_truncated_not_a_panic() {
        let event = sample();
        let place = Placement {
            position: 1,
            version: 1,
            stream: "s",
            node: "n",
            prev_hash: [0; 32],
        };
        let mut body = Vec::new();
        encode_body(&mut body, &place, &event, b"{}");
        for len in 0..FIXED + 6 {
            assert!(parse_body(&body[..len]).is_err(), "len {len}");
        }
    }
}
