//! The client aggregate (`client-{client_id}`): registration, metadata updates, secret
//! rotation and deletion of an OAuth client (RFC 7591, RFC 7592).

use super::aggregate::{Aggregate, Refusal};
use crate::clock::Timestamp;
use crate::events::{
    ClientDeleted, ClientMetadata, ClientRegistered, ClientSecretRotated, ClientUpdated,
    DeniedRequest, Event, RequestDenied,
};
use crate::secret::SecretHash;
use url::{Host, Url};

/// Token endpoint authentication methods warrant accepts.
pub const AUTH_METHODS: &[&str] = &["client_secret_basic", "client_secret_post", "none"];

/// A client as its stream describes it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Client {
    registered: Option<Registered>,
}

#[derive(Clone, Debug, PartialEq)]
struct Registered {
    client_id: String,
    metadata: ClientMetadata,
    secret_hash: Option<SecretHash>,
    deleted: bool,
}

/// What a client can be asked to do.
#[derive(Clone, Debug)]
pub enum ClientCommand {
    /// Register it (its id is the aggregate id).
    Register {
        /// Its metadata.
        metadata: ClientMetadata,
        /// SHA-256 of its secret (required unless the auth method is `none`).
        secret_hash: Option<SecretHash>,
        /// The user registering it.
        registered_by: Option<String>,
        /// SHA-256 of its RFC 7592 registration access token.
        registration_token_hash: Option<SecretHash>,
        /// Whether it may be used through Tailscale Funnel.
        funnel: bool,
    },
    /// Replace its metadata.
    Update {
        /// The new metadata.
        metadata: ClientMetadata,
    },
    /// Replace its secret.
    RotateSecret {
        /// SHA-256 of the new secret.
        secret_hash: SecretHash,
    },
    /// Delete it.
    Delete,
}

/// Why a client command was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// RFC 7591 §3.2.2 `invalid_client_metadata`.
    #[error("{0}")]
    InvalidMetadata(String),
    /// RFC 7591 §3.2.2 `invalid_redirect_uri`.
    #[error("{0}")]
    InvalidRedirectUri(String),
    /// The id is taken.
    #[error("client `{0}` is already registered")]
    AlreadyRegistered(String),
    /// No such client (or deleted). RFC 7592 §2: 401 `invalid_token` at the HTTP edge.
    #[error("unknown client")]
    NotFound,
    /// A public client has no secret to rotate.
    #[error("a public client (auth method `none`) has no secret")]
    PublicClient,
}

impl ClientError {
    /// The OAuth error code for the wire.
    pub fn code(&self) -> &'static str {
        match self {
            ClientError::InvalidMetadata(_)
            | ClientError::PublicClient
            | ClientError::AlreadyRegistered(_) => "invalid_client_metadata",
            ClientError::InvalidRedirectUri(_) => "invalid_redirect_uri",
            ClientError::NotFound => "invalid_client",
        }
    }
}

impl Refusal for ClientError {
    fn denial(&self, client_id: &str) -> Option<RequestDenied> {
        let request = match self {
            ClientError::InvalidMetadata(_)
            | ClientError::InvalidRedirectUri(_)
            | ClientError::AlreadyRegistered(_) => DeniedRequest::Registration,
            ClientError::NotFound | ClientError::PublicClient => DeniedRequest::ClientManagement,
        };
        Some(RequestDenied {
            request,
            error: self.code().to_owned(),
            reason: self.to_string(),
            client_id: Some(client_id.to_owned()),
            subject: None,
        })
    }
}

/// Grant types a client may register.
pub const GRANT_TYPES: &[&str] = &[
    "authorization_code",
    "refresh_token",
    "client_credentials",
    "urn:ietf:params:oauth:grant-type:token-exchange",
];

/// Redirect URI schemes that are never acceptable.
const REFUSED_SCHEMES: &[&str] = &["javascript", "data", "file", "vbscript", "about", "blob"];

/// Most redirect URIs (and contacts) one client may register.
const MAX_LIST: usize = 32;
/// Longest URI or name accepted.
const MAX_VALUE: usize = 2000;

fn invalid(reason: impl Into<String>) -> ClientError {
    ClientError::InvalidMetadata(reason.into())
}

/// Checks metadata against RFC 7591 §2, RFC 8252 and warrant's policy.
pub fn validate_metadata(metadata: &ClientMetadata) -> Result<(), ClientError> {
    if !AUTH_METHODS.contains(&metadata.token_endpoint_auth_method.as_str()) {
        return Err(invalid(format!(
            "token_endpoint_auth_method `{}` is not one of {}",
            metadata.token_endpoint_auth_method,
            AUTH_METHODS.join(", ")
        )));
    }
    if let Some(unknown) = metadata
        .grant_types
        .iter()
        .find(|g| !GRANT_TYPES.contains(&g.as_str()))
    {
        return Err(invalid(format!("grant type `{unknown}` is not supported")));
    }
    if let Some(unknown) = metadata.response_types.iter().find(|r| *r != "code") {
        return Err(invalid(format!(
            "response type `{unknown}` is not supported; only `code`"
        )));
    }
    let public = metadata.token_endpoint_auth_method == "none";
    if let Some(grant) = metadata
        .grant_types
        .iter()
        .find(|g| public && (*g == "client_credentials" || g.starts_with("urn:")))
    {
        return Err(invalid(format!(
            "a public client cannot use the `{grant}` grant"
        )));
    }
    if let Some(kind) = &metadata.application_type
        && kind != "web"
        && kind != "native"
    {
        return Err(invalid(format!(
            "application_type `{kind}` is not web or native"
        )));
    }
    if let Some(alg) = &metadata.id_token_signed_response_alg
        && alg != "RS256"
        && alg != "EdDSA"
    {
        return Err(invalid(format!(
            "id_token_signed_response_alg `{alg}` is not RS256 or EdDSA"
        )));
    }
    let names = metadata
        .client_name
        .iter()
        .chain(metadata.client_uri.iter())
        .chain(metadata.logo_uri.iter());
    if names
        .chain(metadata.contacts.iter())
        .any(|v| v.len() > MAX_VALUE)
        || metadata.contacts.len() > MAX_LIST
        || metadata.redirect_uris.len() > MAX_LIST
    {
        return Err(invalid(format!(
            "at most {MAX_LIST} redirect URIs or contacts, each value at most {MAX_VALUE} bytes"
        )));
    }
    for (field, uri) in [
        ("client_uri", &metadata.client_uri),
        ("logo_uri", &metadata.logo_uri),
    ] {
        if let Some(uri) = uri
            && !Url::parse(uri).is_ok_and(|u| u.scheme() == "https" || u.scheme() == "http")
        {
            return Err(invalid(format!("{field} `{uri}` is not an http(s) URL")));
        }
    }
    let uses_code = metadata
        .grant_types
        .iter()
        .any(|g| g == "authorization_code");
    if uses_code && metadata.redirect_uris.is_empty() {
        return Err(ClientError::InvalidRedirectUri(
            "the authorization_code grant needs at least one redirect URI".into(),
        ));
    }
    metadata
        .redirect_uris
        .iter()
        .try_for_each(|uri| validate_redirect_uri(uri))
}

/// Whether `url`'s host is `localhost` or a loopback address.
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(domain)) => domain == "localhost",
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// A redirect URI must be absolute without a fragment (RFC 6749 §3.1.2): https, http on a
/// loopback address, or a private-use scheme of a native app (RFC 8252 §7); never a
/// scheme that runs or reads something locally.
fn validate_redirect_uri(uri: &str) -> Result<(), ClientError> {
    let refuse = |why: &str| Err(ClientError::InvalidRedirectUri(format!("`{uri}` {why}")));
    if uri.len() > MAX_VALUE {
        return refuse("is too long");
    }
    if uri.contains('#') {
        return refuse("has a fragment (RFC 6749 §3.1.2)");
    }
    let Ok(url) = Url::parse(uri) else {
        return refuse("is not an absolute URI");
    };
    match url.scheme() {
        "https" if url.host().is_some() => Ok(()),
        "https" => refuse("has no host"),
        "http" if is_loopback(&url) => Ok(()),
        "http" => refuse("uses http on a non-loopback host; use https"),
        scheme if REFUSED_SCHEMES.contains(&scheme) => {
            refuse("uses a scheme that is never allowed")
        }
        _ => Ok(()),
    }
}

impl Client {
    fn live(&self) -> Result<&Registered, ClientError> {
        self.registered
            .as_ref()
            .filter(|r| !r.deleted)
            .ok_or(ClientError::NotFound)
    }

    /// The client's metadata, if registered and not deleted.
    pub fn metadata(&self) -> Option<&ClientMetadata> {
        self.live().ok().map(|r| &r.metadata)
    }
}

impl Aggregate for Client {
    type Command = ClientCommand;
    type Error = ClientError;
    const STREAM_PREFIX: &'static str = "client-";

    fn handle(
        &self,
        client_id: &str,
        command: &ClientCommand,
        _now: Timestamp,
    ) -> Result<Vec<Event>, ClientError> {
        match command {
            ClientCommand::Register {
                metadata,
                secret_hash,
                registered_by,
                registration_token_hash,
                funnel,
            } => {
                if self.registered.is_some() {
                    return Err(ClientError::AlreadyRegistered(client_id.to_owned()));
                }
                validate_metadata(metadata)?;
                let public = metadata.token_endpoint_auth_method == "none";
                if public != secret_hash.is_none() {
                    return Err(ClientError::InvalidMetadata(
                        "a confidential client needs a secret and a public one has none".into(),
                    ));
                }
                Ok(vec![
                    ClientRegistered {
                        client_id: client_id.to_owned(),
                        metadata: metadata.clone(),
                        secret_hash: *secret_hash,
                        registered_by: registered_by.clone(),
                        registration_token_hash: *registration_token_hash,
                        funnel: *funnel,
                    }
                    .into(),
                ])
            }
            ClientCommand::Update { metadata } => {
                let current = self.live()?;
                validate_metadata(metadata)?;
                let was_public = current.metadata.token_endpoint_auth_method == "none";
                let is_public = metadata.token_endpoint_auth_method == "none";
                if was_public != is_public {
                    return Err(ClientError::InvalidMetadata(
                        "a client cannot switch between public and confidential".into(),
                    ));
                }
                if current.metadata == *metadata {
                    return Ok(Vec::new());
                }
                Ok(vec![
                    ClientUpdated {
                        client_id: client_id.to_owned(),
                        metadata: metadata.clone(),
                    }
                    .into(),
                ])
            }
            ClientCommand::RotateSecret { secret_hash } => {
                if self.live()?.secret_hash.is_none() {
                    return Err(ClientError::PublicClient);
                }
                Ok(vec![
                    ClientSecretRotated {
                        client_id: client_id.to_owned(),
                        secret_hash: *secret_hash,
                    }
                    .into(),
                ])
            }
            ClientCommand::Delete => {
                self.live()?;
                Ok(vec![
                    ClientDeleted {
                        client_id: client_id.to_owned(),
                    }
                    .into(),
                ])
            }
        }
    }

    fn creates(command: &ClientCommand) -> bool {
        matches!(command, ClientCommand::Register { .. })
    }

    fn apply(&mut self, event: &Event) {
        match event {
            Event::ClientRegistered(e) => {
                self.registered = Some(Registered {
                    client_id: e.client_id.clone(),
                    metadata: e.metadata.clone(),
                    secret_hash: e.secret_hash,
                    deleted: false,
                });
            }
            Event::ClientUpdated(e) => {
                if let Some(r) = &mut self.registered {
                    r.metadata = e.metadata.clone();
                }
            }
            Event::ClientSecretRotated(e) => {
                if let Some(r) = &mut self.registered {
                    r.secret_hash = Some(e.secret_hash);
                }
            }
            Event::ClientDeleted(_) => {
                if let Some(r) = &mut self.registered {
                    r.deleted = true;
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(method: &str) -> ClientMetadata {
        ClientMetadata {
            client_name: Some("app".into()),
            redirect_uris: vec!["https://app.example/cb".into()],
            grant_types: vec!["authorization_code".into()],
            response_types: vec!["code".into()],
            token_endpoint_auth_method: method.into(),
            ..ClientMetadata::default()
        }
    }

    fn register(method: &str, secret: Option<&str>) -> ClientCommand {
        ClientCommand::Register {
            metadata: metadata(method),
            secret_hash: secret.map(SecretHash::of),
            registered_by: Some("alice@example.com".into()),
            registration_token_hash: None,
            funnel: false,
        }
    }

    fn registered() -> Client {
        let mut client = Client::default();
        for e in client
            .handle(
                "c1",
                &register("client_secret_basic", Some("s")),
                Timestamp(0),
            )
            .unwrap()
        {
            client.apply(&e);
        }
        client
    }

    #[test]
    fn registration_records_only_the_secret_hash() {
        let events = Client::default()
            .handle(
                "c1",
                &register("client_secret_post", Some("s3cret")),
                Timestamp(0),
            )
            .unwrap();
        let Event::ClientRegistered(e) = &events[0] else {
            panic!()
        };
        assert_eq!(e.secret_hash, Some(SecretHash::of("s3cret")));
        assert!(
            !String::from_utf8(events[0].encode_payload())
                .unwrap()
                .contains("s3cret")
        );
    }

    #[test]
    fn registering_twice_is_refused() {
        let err = registered()
            .handle(
                "c1",
                &register("client_secret_basic", Some("s")),
                Timestamp(0),
            )
            .unwrap_err();
        assert_eq!(err, ClientError::AlreadyRegistered("c1".into()));
        assert_eq!(
            err.denial("c1").unwrap().request,
            DeniedRequest::Registration
        );
    }

    #[test]
    fn bad_metadata_is_refused_with_the_rfc_7591_code() {
        let mut bad = metadata("client_secret_basic");
        bad.redirect_uris = vec!["https://app.example/cb#frag".into()];
        assert_eq!(
            validate_metadata(&bad).unwrap_err().code(),
            "invalid_redirect_uri"
        );
        bad.redirect_uris = vec!["not a uri".into()];
        assert_eq!(
            validate_metadata(&bad).unwrap_err().code(),
            "invalid_redirect_uri"
        );
        bad.redirect_uris = vec![];
        assert_eq!(
            validate_metadata(&bad).unwrap_err().code(),
            "invalid_redirect_uri"
        );
        let mut bad = metadata("private_key_jwt");
        bad.redirect_uris = vec!["https://a/cb".into()];
        assert_eq!(
            validate_metadata(&bad).unwrap_err().code(),
            "invalid_client_metadata"
        );
        assert!(
            Client::default()
                .handle("c1", &register("none", Some("s")), Timestamp(0))
                .is_err()
        );
        assert!(
            Client::default()
                .handle("c1", &register("client_secret_basic", None), Timestamp(0))
                .is_err()
        );
    }

    #[test]
    fn deleted_client_refuses_everything() {
        let mut client = registered();
        for e in client
            .handle("c1", &ClientCommand::Delete, Timestamp(0))
            .unwrap()
        {
            client.apply(&e);
        }
        assert!(client.metadata().is_none());
        let rotate = ClientCommand::RotateSecret {
            secret_hash: SecretHash::of("n"),
        };
        assert_eq!(
            client.handle("c1", &rotate, Timestamp(0)).unwrap_err(),
            ClientError::NotFound
        );
        assert_eq!(
            client
                .handle("c1", &ClientCommand::Delete, Timestamp(0))
                .unwrap_err(),
            ClientError::NotFound
        );
    }

    #[test]
    fn unchanged_update_records_nothing() {
        let update = ClientCommand::Update {
            metadata: metadata("client_secret_basic"),
        };
        assert!(
            registered()
                .handle("c1", &update, Timestamp(0))
                .unwrap()
                .is_empty()
        );
    }
}
