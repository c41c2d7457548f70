//! Synthetic but valid histories, for tests and benchmarks that need many realistic events
//! without driving the HTTP surface.

use super::envelope::{Envelope, NewEvent};
use super::{
    AccessTokenIssued, ActorClaim, ClientMetadata, ClientRegistered, Event, GrantCreated,
    GrantOrigin, RefreshTokenIssued, RefreshTokenRotated, TokenExchanged,
};
use crate::clock::Timestamp;
use crate::secret::SecretHash;
use uuid::Uuid;

/// `new` as a read model folds it at `position`, outside any stream or hash chain: for
/// models tested or measured without a log.
pub fn envelope(position: u64, new: NewEvent) -> Envelope {
    Envelope {
        position,
        stream: String::new(),
        version: 1,
        time: new.time,
        node: String::new(),
        correlation_id: new.correlation_id,
        prev_hash: [0; 32],
        hash: [0; 32],
        event: new.event,
    }
}

/// How many clients the synthetic families are spread over.
pub const CLIENTS: usize = 100;

/// The registration of synthetic client `i`, as `(stream, events)`.
pub fn client(i: usize, now: Timestamp) -> (String, Vec<NewEvent>) {
    let client_id = format!("client-{i}");
    let registered = ClientRegistered {
        client_id: client_id.clone(),
        metadata: ClientMetadata {
            client_name: Some(format!("synthetic {i}")),
            redirect_uris: vec![format!("https://app{i}.example/cb")],
            grant_types: vec!["authorization_code".into(), "refresh_token".into()],
            response_types: vec!["code".into()],
            token_endpoint_auth_method: "client_secret_basic".into(),
            ..ClientMetadata::default()
        },
        secret_hash: Some(SecretHash::of(&format!("secret-{i}"))),
        registered_by: Some("admin@example.com".into()),
        funnel: false,
        registration_token_hash: None,
    };
    (
        format!("client-{client_id}"),
        vec![NewEvent::new(registered, now, Uuid::new_v4())],
    )
}

/// Token family `i`: a grant with one access token (text `at-{i}`) and one refresh token
/// (text `rt-{i}`), as `(stream, events)`.
pub fn token_family(i: usize, now: Timestamp) -> (String, Vec<NewEvent>) {
    let grant_id = Uuid::from_u128(0x5eed_0000_0000 + i as u128);
    let client_id = format!("client-{}", i % CLIENTS);
    let subject = Some(format!("user{}@example.com", i % 1000));
    let correlation = Uuid::new_v4();
    let events = vec![
        NewEvent::new(
            GrantCreated {
                grant_id,
                client_id: client_id.clone(),
                subject: subject.clone(),
                profile: None,
                scope: "openid offline_access".into(),
                resources: vec![format!("https://mcp{}.example", i % 10)],
                origin: GrantOrigin::ClientCredentials,
            },
            now,
            correlation,
        ),
        NewEvent::new(
            AccessTokenIssued {
                grant_id,
                jti: Uuid::from_u128(0x7a1_0000_0000 + i as u128),
                token_hash: SecretHash::of(&format!("at-{i}")),
                client_id,
                subject,
                scope: "openid offline_access".into(),
                audience: vec![format!("https://mcp{}.example", i % 10)],
                issued_at: now,
                expires_at: now.plus_seconds(3600),
            },
            now,
            correlation,
        ),
        NewEvent::new(
            RefreshTokenIssued {
                grant_id,
                token_hash: SecretHash::of(&format!("rt-{i}")),
                expires_at: now.plus_seconds(30 * 86_400),
            },
            now,
            correlation,
        ),
    ];
    (format!("grant-{grant_id}"), events)
}

/// Exchange `n` (its `jti` is `n`, its token's text `exchanged-{n}`) of an access token of
/// grant `grant_id` for `subject` by the client `gateway`, for `https://server.example`,
/// issued at `now` and valid for `seconds`.
pub fn exchanged(
    grant_id: Uuid,
    n: u128,
    subject: &str,
    gateway: &str,
    now: Timestamp,
    seconds: i64,
) -> TokenExchanged {
    TokenExchanged {
        grant_id,
        subject_jti: Uuid::nil(),
        jti: Uuid::from_u128(n),
        token_hash: SecretHash::of(&format!("exchanged-{n}")),
        client_id: gateway.to_owned(),
        subject: Some(subject.to_owned()),
        actor: ActorClaim {
            sub: gateway.to_owned(),
            client_id: Some(gateway.to_owned()),
            act: None,
        },
        audience: vec!["https://server.example".into()],
        scope: "openid".into(),
        issued_at: now,
        expires_at: now.plus_seconds(seconds),
    }
}

/// Refresh `n` of grant `grant_id` (of client `client_id` for `user0@example.com`) at `now`:
/// the refresh token with text `refresh-{n}` rotated into `refresh-{n + 1}`, and the access
/// token issued with it (text `refreshed-{n}`).
pub fn refreshed(grant_id: Uuid, client_id: &str, n: usize, now: Timestamp) -> Vec<Event> {
    vec![
        RefreshTokenRotated {
            grant_id,
            previous_hash: SecretHash::of(&format!("refresh-{n}")),
            token_hash: SecretHash::of(&format!("refresh-{}", n + 1)),
            expires_at: now.plus_seconds(30 * 86_400),
        }
        .into(),
        AccessTokenIssued {
            grant_id,
            jti: Uuid::from_u128(0x4ef_0000_0000 + n as u128),
            token_hash: SecretHash::of(&format!("refreshed-{n}")),
            client_id: client_id.to_owned(),
            subject: Some("user0@example.com".into()),
            scope: "openid offline_access".into(),
            audience: vec!["https://mcp0.example".into()],
            issued_at: now,
            expires_at: now.plus_seconds(3600),
        }
        .into(),
    ]
}
