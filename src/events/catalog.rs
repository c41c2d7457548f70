//! The catalog of event types: each event's wire name and schema version, and the one
//! [`Event`] enum that every stream carries.

use super::client::*;
use super::denial::*;
use super::grant::*;
use super::key::*;
use super::session::*;

/// An event's payload could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    /// The type name is not one this build knows (written by a newer build, or damaged).
    #[error("unknown event type `{event_type}` (written by a newer warrant?)")]
    UnknownType {
        /// The type name found.
        event_type: String,
    },
    /// The type is known but its schema version is not one this build reads.
    #[error(
        "event type `{event_type}` has schema version {found}, this build reads up to {supported} (written by a newer warrant?)"
    )]
    UnsupportedVersion {
        /// The type name.
        event_type: String,
        /// The version found.
        found: u16,
        /// The newest version this build reads.
        supported: u16,
    },
    /// The payload does not match its declared type.
    #[error("event type `{event_type}`: malformed payload: {reason}")]
    Malformed {
        /// The type name.
        event_type: String,
        /// What serde said.
        reason: String,
    },
}

macro_rules! catalog {
    ($($variant:ident($name:literal, $version:literal)),* $(,)?) => {
        /// Every fact warrant records. Each variant's payload is the struct of the same name.
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub enum Event {
            $(
                #[doc = concat!("`", $name, "`, schema version ", $version, ".")]
                $variant($variant),
            )*
        }

        $(
            impl $variant {
                /// This event type's wire name.
                pub const TYPE: &'static str = $name;
            }

            impl From<$variant> for Event {
                fn from(event: $variant) -> Event {
                    Event::$variant(event)
                }
            }
        )*

        impl Event {
            /// The wire name of this event's type.
            pub fn event_type(&self) -> &'static str {
                match self { $(Event::$variant(_) => $name,)* }
            }

            /// The schema version this build writes for this event's type.
            pub fn schema_version(&self) -> u16 {
                match self { $(Event::$variant(_) => $version,)* }
            }

            /// The payload as JSON bytes.
            pub fn encode_payload(&self) -> Vec<u8> {
                let encoded = match self { $(Event::$variant(e) => serde_json::to_vec(e),)* };
                encoded.expect("event payloads are plain data and always serialize")
            }

            /// The payload as a JSON value (for export).
            pub fn payload_json(&self) -> serde_json::Value {
                let value = match self { $(Event::$variant(e) => serde_json::to_value(e),)* };
                value.expect("event payloads are plain data and always serialize")
            }

            /// Reads a payload of the given type and schema version.
            pub fn decode(event_type: &str, schema_version: u16, payload: &[u8]) -> Result<Event, DecodeError> {
                match event_type {
                    $($name => {
                        if schema_version != $version {
                            return Err(DecodeError::UnsupportedVersion {
                                event_type: event_type.to_owned(),
                                found: schema_version,
                                supported: $version,
                            });
                        }
                        serde_json::from_slice::<$variant>(payload)
                            .map(Event::$variant)
                            .map_err(|e| DecodeError::Malformed {
                                event_type: event_type.to_owned(),
                                reason: e.to_string(),
                            })
                    })*
                    _ => Err(DecodeError::UnknownType { event_type: event_type.to_owned() }),
                }
            }

            /// Every type name this build knows, in catalog order.
            pub const TYPES: &'static [&'static str] = &[$($name),*];
        }
    };
}

catalog! {
    ClientRegistered("client_registered", 1),
    ClientUpdated("client_updated", 1),
    ClientSecretRotated("client_secret_rotated", 1),
    ClientDeleted("client_deleted", 1),
    AuthorizationCodeIssued("authorization_code_issued", 1),
    AuthorizationCodeRedeemed("authorization_code_redeemed", 1),
    GrantCreated("grant_created", 1),
    AccessTokenIssued("access_token_issued", 1),
    RefreshTokenIssued("refresh_token_issued", 1),
    RefreshTokenRotated("refresh_token_rotated", 1),
    TokenExchanged("token_exchanged", 1),
    TokenRevoked("token_revoked", 1),
    GrantRevoked("grant_revoked", 1),
    RequestDenied("request_denied", 1),
    SigningKeyPublished("signing_key_published", 1),
    SigningKeyRetired("signing_key_retired", 1),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::SecretHash;

    #[test]
    fn payload_round_trips_by_type_and_version() {
        let event = Event::from(ClientSecretRotated {
            client_id: "c1".into(),
            secret_hash: SecretHash::of("s"),
        });
        let bytes = event.encode_payload();
        let back = Event::decode(event.event_type(), event.schema_version(), &bytes).unwrap();
        assert_eq!(back, event);
    }

    #[test]
    fn unknown_type_is_a_clear_error() {
        let err = Event::decode("client_teleported", 1, b"{}").unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown event type `client_teleported` (written by a newer warrant?)"
        );
    }

    #[test]
    fn newer_schema_version_is_a_clear_error() {
        let err = Event::decode("client_deleted", 2, br#"{"client_id":"c"}"#).unwrap_err();
        assert!(matches!(
            err,
            DecodeError::UnsupportedVersion {
                found: 2,
                supported: 1,
                ..
            }
        ));
    }

    #[test]
    fn malformed_payload_is_a_clear_error() {
        let err = Event::decode("client_deleted", 1, b"{\"nope\":1}").unwrap_err();
        assert!(
            err.to_string().contains("missing field `client_id`"),
            "{err}"
        );
    }

    #[test]
    fn type_names_are_unique() {
        let mut names = Event::TYPES.to_vec();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Event::TYPES.len());
    }
}
