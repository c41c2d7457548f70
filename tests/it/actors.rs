//! Actors over a real file log: hydration on first use, passivation, and replicas racing on
//! one aggregate (a code redeemed once, a refresh token rotated once).

use crate::support::Counting;
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;
use warrant::actors::client::{Client, ClientCommand, ClientError};
use warrant::actors::grant::{Grant, GrantCommand, GrantError, IssuedToken};
use warrant::actors::session::{Session, SessionCommand, SessionError, s256_challenge};
use warrant::actors::{Aggregate, CommandContext, CommandError, Loaded, Registry};
use warrant::clock::Timestamp;
use warrant::events::filelog::{FileLog, FileLogOptions};
use warrant::events::*;
use warrant::secret::SecretHash;

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

fn store(dir: &tempfile::TempDir) -> Arc<dyn EventStore> {
    Arc::new(FileLog::open(dir.path(), FileLogOptions::writer("node-a")).unwrap())
}

fn ctx() -> CommandContext {
    CommandContext::at(Timestamp(1_000_000))
}

fn rotate(secret: &str) -> ClientCommand {
    ClientCommand::RotateSecret {
        secret_hash: SecretHash::of(secret),
    }
}

/// Registers client `id` (which starts no actor), then rotates its secret (which does).
async fn register_and_touch(registry: &Registry<Client>, id: &str) {
    registry.execute(id, register(), ctx()).await.unwrap();
    registry.execute(id, rotate("s2"), ctx()).await.unwrap();
}

fn register() -> ClientCommand {
    ClientCommand::Register {
        metadata: ClientMetadata {
            client_name: None,
            redirect_uris: vec!["https://app.example/cb".into()],
            grant_types: vec!["authorization_code".into()],
            response_types: vec!["code".into()],
            token_endpoint_auth_method: "client_secret_basic".into(),
            ..ClientMetadata::default()
        },
        secret_hash: Some(SecretHash::of("s")),
        registered_by: None,
        registration_token_hash: None,
        funnel: false,
    }
}

#[actix_rt::test]
async fn registry_stays_under_capacity_and_rehydrates_passivated_actors() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::<Client>::new(store(&dir), 10, Duration::from_secs(60));
    for i in 0..50 {
        register_and_touch(&registry, &format!("c{i}")).await;
        assert!(registry.live() <= 10, "{} live actors", registry.live());
    }
    // c0 was passivated long ago; a fresh actor must rebuild its state from the log.
    let committed = registry.execute("c0", ClientCommand::Delete, ctx()).await;
    assert!(matches!(
        committed.unwrap().events[..],
        [Event::ClientDeleted(_)]
    ));
    let again = registry
        .execute("c0", rotate("t"), ctx())
        .await
        .unwrap_err();
    assert!(matches!(
        again,
        CommandError::Refused(ClientError::NotFound)
    ));
}

#[actix_rt::test]
async fn idle_actors_are_passivated_and_come_back_on_demand() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::<Client>::new(store(&dir), 100, Duration::from_secs(30));
    for i in 0..5 {
        register_and_touch(&registry, &format!("c{i}")).await;
    }
    assert_eq!(registry.passivate_idle(Instant::now()), 0, "none idle yet");
    assert_eq!(
        registry.passivate_idle(Instant::now() + Duration::from_secs(31)),
        5
    );
    assert_eq!(registry.live(), 0);
    registry
        .execute("c3", ClientCommand::Delete, ctx())
        .await
        .unwrap();
    assert_eq!(registry.live(), 1);
}

/// A node's registry of aggregates `A` on `store`: up to 100 live actors, passivated after a
/// minute idle.
fn node<A: Aggregate>(store: Arc<dyn EventStore>) -> Registry<A> {
    Registry::new(store, 100, Duration::from_secs(60))
}

fn issue_code(session_id: Uuid) -> SessionCommand {
    SessionCommand::IssueCode(Box::new(AuthorizationCodeIssued {
        session_id,
        code_hash: SecretHash::of("code"),
        client_id: "c1".into(),
        subject: "alice@example.com".into(),
        profile: None,
        redirect_uri: "https://app.example/cb".into(),
        scope: "openid".into(),
        code_challenge: Some(s256_challenge(VERIFIER)),
        nonce: None,
        resources: vec![],
        expires_at: Timestamp(2_000_000),
    }))
}

/// The redemption of the code `issue_code` issued, creating grant `grant`.
fn redeem_code(grant: u128) -> SessionCommand {
    SessionCommand::RedeemCode {
        code_hash: SecretHash::of("code"),
        client_id: "c1".into(),
        redirect_uri: "https://app.example/cb".into(),
        code_verifier: Some(VERIFIER.into()),
        grant_id: Uuid::from_u128(grant),
    }
}

#[actix_rt::test]
async fn two_replicas_redeem_one_code_exactly_once() {
    // RFC 6749 §4.1.2: however many nodes race, one redemption wins; the other is a replay.
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    let node_a = node::<Session>(store.clone());
    let node_b = node::<Session>(store.clone());
    for round in 0..20 {
        let id = Uuid::new_v4().to_string();
        node_a
            .execute(&id, issue_code(Uuid::parse_str(&id).unwrap()), ctx())
            .await
            .unwrap();
        let (a, b) = tokio::join!(
            node_a.execute(&id, redeem_code(1), ctx()),
            node_b.execute(&id, redeem_code(2), ctx())
        );
        let outcomes = [a, b];
        let wins = outcomes.iter().filter(|o| o.is_ok()).count();
        assert_eq!(wins, 1, "round {round}: {outcomes:?}");
        let loser = outcomes.into_iter().find_map(Result::err).unwrap();
        assert!(
            matches!(loser, CommandError::Refused(SessionError::Replayed { .. })),
            "{loser:?}"
        );
    }
    let denials = store.read_stream(DENIALS_STREAM, 1).await.unwrap();
    assert_eq!(denials.len(), 20, "every replay is recorded as a denial");
}

/// Access token `token` of grant `grant_id` (client c1, alice), valid until 4,600 s.
fn access_token(grant_id: Uuid, token: &str) -> AccessTokenIssued {
    AccessTokenIssued {
        grant_id,
        jti: Uuid::new_v4(),
        token_hash: SecretHash::of(token),
        client_id: "c1".into(),
        subject: Some("alice@example.com".into()),
        scope: "openid offline_access".into(),
        audience: vec![],
        issued_at: Timestamp(1_000_000),
        expires_at: Timestamp(4_600_000),
    }
}

/// Creates grant `grant_id` for c1 and alice with access token `at-0` and refresh token `rt-0`.
fn create_grant(grant_id: Uuid) -> GrantCommand {
    GrantCommand::Create {
        created: Box::new(GrantCreated {
            grant_id,
            client_id: "c1".into(),
            subject: Some("alice@example.com".into()),
            profile: None,
            scope: "openid offline_access".into(),
            resources: vec![],
            origin: GrantOrigin::ClientCredentials,
        }),
        access: access_token(grant_id, "at-0"),
        refresh: Some(RefreshTokenIssued {
            grant_id,
            token_hash: SecretHash::of("rt-0"),
            expires_at: Timestamp(90_000_000),
        }),
    }
}

/// Refresh token `presented` of grant `grant_id` (as the token model knows it) used by c1,
/// replaced by `next`.
fn refresh_grant(grant_id: Uuid, presented: &str, next: &str) -> GrantCommand {
    GrantCommand::Refresh {
        presented: issued(presented, TokenKind::Refresh),
        client_id: "c1".into(),
        access: access_token(grant_id, &format!("at-{next}")),
        next_refresh: SecretHash::of(next),
        refresh_expires_at: Timestamp(90_000_000),
    }
}

/// A new grant, created on `grants` (`create_grant`).
async fn created_grant(grants: &Registry<Grant>) -> Uuid {
    let grant_id = Uuid::new_v4();
    grants
        .execute(&grant_id.to_string(), create_grant(grant_id), ctx())
        .await
        .unwrap();
    grant_id
}

/// Two nodes' grant registries on `store`, and a grant created by the first.
async fn two_nodes_and_a_grant(
    store: &Arc<dyn EventStore>,
) -> (Registry<Grant>, Registry<Grant>, Uuid) {
    let node_a = node::<Grant>(store.clone());
    let node_b = node::<Grant>(store.clone());
    let grant_id = created_grant(&node_a).await;
    (node_a, node_b, grant_id)
}

#[actix_rt::test]
async fn two_replicas_rotate_one_refresh_token_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    let (node_a, node_b, grant_id) = two_nodes_and_a_grant(&store).await;
    let id = grant_id.to_string();
    let refresh = |next: &str| refresh_grant(grant_id, "rt-0", next);
    let (a, b) = tokio::join!(
        node_a.execute(&id, refresh("rt-a"), ctx()),
        node_b.execute(&id, refresh("rt-b"), ctx())
    );
    let outcomes = [a, b];
    assert_eq!(
        outcomes.iter().filter(|o| o.is_ok()).count(),
        1,
        "{outcomes:?}"
    );
    let loser = outcomes.into_iter().find_map(Result::err).unwrap();
    assert!(matches!(
        loser,
        CommandError::Refused(GrantError::RefreshTokenReused { .. })
    ));
    // The second use of a rotated token revoked the family, durably.
    let stream = format!("grant-{id}");
    let what = "creation (3), the rotation (2), the revocation";
    ends_revoked_for_reuse(store.as_ref(), &stream, 6, what).await;
}

/// Asserts that `stream` holds `count` events (`what` they are), the last the revocation of
/// its grant for a reused refresh token.
async fn ends_revoked_for_reuse(store: &dyn EventStore, stream: &str, count: usize, what: &str) {
    let events = store.read_stream(stream, 1).await.unwrap();
    assert_eq!(events.len(), count, "{what}");
    assert!(matches!(
        &events.last().unwrap().event,
        Event::GrantRevoked(GrantRevoked {
            reason: RevocationReason::RefreshTokenReuse,
            ..
        })
    ));
}

/// The exchange `n` by gateway gw of grant `grant_id`'s access token `subject`.
fn exchange_of(grant_id: Uuid, n: u128, subject: &str) -> GrantCommand {
    let exchanged = synthetic::exchanged(
        grant_id,
        n,
        "alice@example.com",
        "gw",
        Timestamp(1_000_000),
        3600,
    );
    GrantCommand::Exchange {
        exchanged: Box::new(exchanged),
        subject: issued(subject, TokenKind::Access),
    }
}

/// What the token model knows of c1's token `token` of `kind`: an access token valid until
/// 4,600 s (as `access_token` issues them), a refresh token until 90,000 s (as `create_grant`
/// and `refresh_grant` issue them).
fn issued(token: &str, kind: TokenKind) -> IssuedToken {
    IssuedToken {
        hash: SecretHash::of(token),
        kind,
        client_id: "c1".into(),
        expires_at: Timestamp(match kind {
            TokenKind::Access => 4_600_000,
            TokenKind::Refresh => 90_000_000,
        }),
    }
}

/// Once its actor is passivated, a grant's next command reads its stream without the
/// access tokens and exchanges (`Grant::folds`) and decides as the live actor would have:
/// an exchange of a token revoked alone is refused, one of a live token is appended at the
/// stream's true version, and a rotated refresh token presented again revokes the grant.
#[actix_rt::test]
async fn a_passivated_grant_decides_as_its_live_actor_did() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    let grants = node::<Grant>(store.clone());
    let grant_id = created_grant(&grants).await;
    let id = grant_id.to_string();
    let passivate = || grants.passivate_idle(Instant::now() + Duration::from_secs(61));
    for n in 0..10 {
        grants
            .execute(&id, exchange_of(grant_id, n, "at-0"), ctx())
            .await
            .unwrap();
    }
    grants
        .execute(&id, refresh_grant(grant_id, "rt-0", "rt-1"), ctx())
        .await
        .unwrap();
    let revoke_at_0 = GrantCommand::RevokeToken {
        token: issued("at-0", TokenKind::Access),
        client_id: "c1".into(),
    };
    grants.execute(&id, revoke_at_0, ctx()).await.unwrap();
    assert_eq!(passivate(), 1);

    let refused = grants
        .execute(&id, exchange_of(grant_id, 10, "at-0"), ctx())
        .await
        .unwrap_err();
    assert!(
        matches!(
            refused,
            CommandError::Refused(GrantError::SubjectTokenInactive)
        ),
        "{refused:?}"
    );
    assert_eq!(passivate(), 1);
    grants
        .execute(&id, exchange_of(grant_id, 11, "at-rt-1"), ctx())
        .await
        .unwrap();
    assert_eq!(passivate(), 1);
    let reused = grants
        .execute(&id, refresh_grant(grant_id, "rt-0", "rt-2"), ctx())
        .await
        .unwrap_err();
    assert!(
        matches!(
            reused,
            CommandError::Refused(GrantError::RefreshTokenReused { .. })
        ),
        "{reused:?}"
    );

    let stream = store.read_stream(&format!("grant-{id}"), 1).await.unwrap();
    let versions: Vec<u64> = stream.iter().map(|e| e.version).collect();
    assert_eq!(versions, (1..=18).collect::<Vec<_>>());
    assert!(matches!(
        &stream[16].event,
        Event::TokenExchanged(TokenExchanged { jti, .. }) if *jti == Uuid::from_u128(11)
    ));
    assert!(matches!(
        &stream[17].event,
        Event::GrantRevoked(GrantRevoked {
            reason: RevocationReason::RefreshTokenReuse,
            ..
        })
    ));
}

#[actix_rt::test]
async fn commands_arriving_together_are_decided_in_order_and_written_in_few_appends() {
    let dir = tempfile::tempdir().unwrap();
    let counting = Arc::new(Counting::new(store(&dir)));
    let registry = Registry::<Client>::new(counting.clone(), 10, Duration::from_secs(60));
    registry.execute("c1", register(), ctx()).await.unwrap();

    // 40 rotations with a deletion in the middle, all sent before any is answered.
    let commands: Vec<ClientCommand> = (0..41)
        .map(|i| match i {
            20 => ClientCommand::Delete,
            _ => ClientCommand::RotateSecret {
                secret_hash: SecretHash::of(&format!("secret-{i}")),
            },
        })
        .collect();
    let outcomes = futures_util::future::join_all(
        commands
            .into_iter()
            .map(|command| registry.execute("c1", command, ctx())),
    )
    .await;

    // Each is decided against the state the earlier ones left: the deletion ends the client.
    for (i, outcome) in outcomes.iter().enumerate() {
        match (i, outcome) {
            (0..=19, Ok(committed)) => {
                assert!(matches!(
                    committed.events[..],
                    [Event::ClientSecretRotated(_)]
                ))
            }
            (20, Ok(committed)) => {
                assert!(matches!(committed.events[..], [Event::ClientDeleted(_)]))
            }
            (21.., Err(CommandError::Refused(ClientError::NotFound))) => {}
            (i, other) => panic!("command {i}: {other:?}"),
        }
    }
    let stream = counting.log.read_stream("client-c1", 1).await.unwrap();
    assert_eq!(stream.len(), 22, "registration, 20 rotations, deletion");
    assert!(stream.iter().zip(1..).all(|(e, v)| e.version == v));
    assert!(matches!(
        stream.last().unwrap().event,
        Event::ClientDeleted(_)
    ));
    let appends = counting.appends_to("client-c1");
    assert!(
        appends < 21,
        "21 commands that changed the client took {appends} appends: not batched"
    );
}

#[actix_rt::test]
async fn a_creation_starts_no_actor_and_cannot_create_twice() {
    let dir = tempfile::tempdir().unwrap();
    let log = store(&dir);
    let registry = Registry::<Client>::new(log.clone(), 10, Duration::from_secs(60));
    let created = registry.execute("c1", register(), ctx()).await.unwrap();
    assert!(matches!(created.events[..], [Event::ClientRegistered(_)]));
    assert_eq!(registry.live(), 0, "no actor for a creation");

    // The id was not fresh after all: the append conflicts, the command is decided again
    // against what the stream holds, and refused; nothing is appended.
    let again = registry.execute("c1", register(), ctx()).await.unwrap_err();
    assert!(matches!(
        again,
        CommandError::Refused(ClientError::AlreadyRegistered(_))
    ));
    registry.execute("c1", rotate("t"), ctx()).await.unwrap();
    assert_eq!(registry.live(), 1, "the next command starts the actor");
    let stream = log.read_stream("client-c1", 1).await;
    let versions: Vec<u64> = stream.unwrap().iter().map(|e| e.version).collect();
    assert_eq!(versions, [1, 2]);
}

#[actix_rt::test]
async fn a_creation_after_a_refused_command_is_seen_by_the_next_command() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::<Client>::new(store(&dir), 10, Duration::from_secs(60));
    // The actor starts, finds no client and keeps that (empty) state.
    let early = registry
        .execute("c1", rotate("s1"), ctx())
        .await
        .unwrap_err();
    assert!(matches!(
        early,
        CommandError::Refused(ClientError::NotFound)
    ));
    assert_eq!(registry.live(), 1);
    registry.execute("c1", register(), ctx()).await.unwrap();
    let committed = registry.execute("c1", rotate("s2"), ctx()).await.unwrap();
    assert!(matches!(
        committed.events[..],
        [Event::ClientSecretRotated(_)]
    ));
}

/// Two nodes' registries of aggregates `A` over one counted log in `dir`.
fn two_counted_nodes<A: Aggregate>(
    dir: &tempfile::TempDir,
) -> (Arc<Counting>, Registry<A>, Registry<A>) {
    let counting = Arc::new(Counting::new(store(dir)));
    (counting.clone(), node(counting.clone()), node(counting))
}

/// A grant refreshed 20 times (43 events) keeps its folded state when its actor stops; the
/// next actor reads only what was appended since, here another node's rotation, and decides
/// on it: the refresh token that node used is refused as reused, and nothing conflicts.
#[actix_rt::test]
async fn a_long_streams_state_outlives_its_actor_and_catches_up() {
    let dir = tempfile::tempdir().unwrap();
    let (counting, node_a, node_b) = two_counted_nodes::<Grant>(&dir);
    let (long, short) = (Uuid::new_v4(), Uuid::new_v4());
    for grant_id in [long, short] {
        let id = grant_id.to_string();
        node_a
            .execute(&id, create_grant(grant_id), ctx())
            .await
            .unwrap();
        let refreshes = if grant_id == long { 20 } else { 1 };
        for n in 0..refreshes {
            let command = refresh_grant(grant_id, &format!("rt-{n}"), &format!("rt-{}", n + 1));
            node_a.execute(&id, command, ctx()).await.unwrap();
        }
    }
    assert_eq!(
        node_a.passivate_idle(Instant::now() + Duration::from_secs(61)),
        2
    );
    for _ in 0..100 {
        if node_a.resting() > 0 {
            break;
        }
        actix_rt::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        node_a.resting(),
        1,
        "the long stream's state only (5 events are not kept)"
    );

    let id = long.to_string();
    node_b
        .execute(&id, refresh_grant(long, "rt-20", "rt-b"), ctx())
        .await
        .unwrap();
    let refused = node_a
        .execute(&id, refresh_grant(long, "rt-20", "rt-a"), ctx())
        .await
        .unwrap_err();
    assert!(matches!(
        refused,
        CommandError::Refused(GrantError::RefreshTokenReused { .. })
    ));
    assert_eq!(node_a.resting(), 0, "taken by the new actor");
    // node a's first actor read the whole stream, node b's too; node a's second read from
    // version 44 on, after the 43 events its kept state had folded.
    let stream = format!("grant-{id}");
    assert_eq!(counting.reads_of(&stream), [1, 1, 44]);
    let what = "43, node b's rotation (2), the revocation";
    ends_revoked_for_reuse(counting.log.as_ref(), &stream, 46, what).await;
}

/// Node a's grant actor is live and behind: node b rotated the refresh token meanwhile. The
/// token node b handed out, presented to node a, is not node a's current one, so node a
/// refuses it as a reuse; but the revocation that refusal records is appended at node a's
/// version, conflicts, and the reloaded grant rotates it.
#[actix_rt::test]
async fn a_live_grant_behind_another_node_rotates_that_nodes_refresh_token() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    let (node_a, node_b, grant_id) = two_nodes_and_a_grant(&store).await;
    let id = grant_id.to_string();
    node_a
        .execute(&id, refresh_grant(grant_id, "rt-0", "rt-1"), ctx())
        .await
        .unwrap();
    assert_eq!(node_a.live(), 1);
    node_b
        .execute(&id, refresh_grant(grant_id, "rt-1", "rt-2"), ctx())
        .await
        .unwrap();
    let committed = node_a
        .execute(&id, refresh_grant(grant_id, "rt-2", "rt-3"), ctx())
        .await
        .unwrap();
    assert!(matches!(
        &committed.events[0],
        Event::RefreshTokenRotated(rotated) if rotated.token_hash == SecretHash::of("rt-3")
    ));
    let stream = store.read_stream(&format!("grant-{id}"), 1).await.unwrap();
    assert_eq!(
        stream.len(),
        9,
        "creation (3), then three rotations (2 each), no revocation"
    );
    assert!(
        stream
            .iter()
            .all(|e| !matches!(e.event, Event::GrantRevoked(_)))
    );
}

/// Grant `grant_id` as a token model would know it while its refresh token `current` is the
/// one in use, at `version` of its stream.
fn known_in_use(grant_id: Uuid, current: &str, version: u64) -> Loaded<Grant> {
    Loaded {
        state: Grant::refreshable(grant_id, "c1".into(), &issued(current, TokenKind::Refresh)),
        version,
    }
}

/// A grant registry on a counting store, and a grant it created.
async fn counted_grant(dir: &tempfile::TempDir) -> (Arc<Counting>, Registry<Grant>, Uuid) {
    let counting = Arc::new(Counting::new(store(dir)));
    let grants = node::<Grant>(counting.clone());
    let grant_id = created_grant(&grants).await;
    (counting, grants, grant_id)
}

/// A refresh decided on what a read model knows of the grant, at the version it folded,
/// costs no actor and no read of the stream. A model behind the stream (here: still taking
/// the rotated `rt-0` for the token in use) loses the append's race, and the grant decides
/// again on its stream: a reuse, which revokes it.
#[actix_rt::test]
async fn a_grant_known_at_its_version_refreshes_without_an_actor_or_a_read() {
    let dir = tempfile::tempdir().unwrap();
    let (counting, grants, grant_id) = counted_grant(&dir).await;
    let (id, stream) = (grant_id.to_string(), format!("grant-{grant_id}"));

    let refresh = refresh_grant(grant_id, "rt-0", "rt-1");
    let committed = grants
        .execute_from(&id, refresh, ctx(), known_in_use(grant_id, "rt-0", 3))
        .await
        .unwrap();
    assert!(matches!(
        &committed.events[0],
        Event::RefreshTokenRotated(rotated) if rotated.token_hash == SecretHash::of("rt-1")
    ));
    assert_eq!(grants.live(), 0);
    assert!(counting.reads_of(&stream).is_empty());

    let stale = known_in_use(grant_id, "rt-0", 3);
    let refused = grants
        .execute_from(&id, refresh_grant(grant_id, "rt-0", "rt-x"), ctx(), stale)
        .await
        .unwrap_err();
    assert!(matches!(
        refused,
        CommandError::Refused(GrantError::RefreshTokenReused { .. })
    ));
    assert_eq!(
        counting.reads_of(&stream),
        [1],
        "the reload after the conflict"
    );
    let what = "creation (3), the rotation (2), the revocation";
    ends_revoked_for_reuse(counting.log.as_ref(), &stream, 6, what).await;
}

/// While the grant's actor is live, its state decides and what the caller knew is not used:
/// here that was behind (version 3, `rt-0` in use), and using it would have cost a conflict
/// and a second read.
#[actix_rt::test]
async fn a_live_grant_decides_on_its_own_state_over_what_the_caller_knew() {
    let dir = tempfile::tempdir().unwrap();
    let (counting, grants, grant_id) = counted_grant(&dir).await;
    let (id, stream) = (grant_id.to_string(), format!("grant-{grant_id}"));
    grants
        .execute(&id, refresh_grant(grant_id, "rt-0", "rt-1"), ctx())
        .await
        .unwrap();
    assert_eq!(grants.live(), 1);

    let behind = known_in_use(grant_id, "rt-0", 3);
    grants
        .execute_from(&id, refresh_grant(grant_id, "rt-1", "rt-2"), ctx(), behind)
        .await
        .unwrap();
    assert_eq!(counting.reads_of(&stream), [1], "the actor's one load");
    assert_eq!(counting.log.read_stream(&stream, 1).await.unwrap().len(), 7);
}

/// An authorization session keeps the state its creation left, so the actor of its
/// redemption reads only what was appended after it: nothing, when the code is redeemed
/// where it was issued; another node's redemption, when that node was first, which this one
/// then refuses as a replay as it would on the whole stream.
#[actix_rt::test]
async fn a_session_is_redeemed_from_the_state_its_creation_left() {
    let dir = tempfile::tempdir().unwrap();
    let (counting, node_a, node_b) = two_counted_nodes::<Session>(&dir);
    let (here, elsewhere) = (Uuid::new_v4(), Uuid::new_v4());
    for id in [here, elsewhere] {
        node_a
            .execute(&id.to_string(), issue_code(id), ctx())
            .await
            .unwrap();
    }
    assert_eq!(node_a.resting(), 2);

    node_a
        .execute(&here.to_string(), redeem_code(1), ctx())
        .await
        .unwrap();
    assert_eq!(
        counting.reads_of(&format!("session-{here}")),
        [2],
        "only past the issued code"
    );

    node_b
        .execute(&elsewhere.to_string(), redeem_code(2), ctx())
        .await
        .unwrap();
    let replay = node_a
        .execute(&elsewhere.to_string(), redeem_code(3), ctx())
        .await
        .unwrap_err();
    assert!(
        matches!(replay, CommandError::Refused(SessionError::Replayed { .. })),
        "{replay:?}"
    );
    // node_b, which kept nothing, read the whole stream; node_a only what followed its state.
    assert_eq!(counting.reads_of(&format!("session-{elsewhere}")), [1, 2]);
    assert_eq!(
        node_a.resting(),
        0,
        "each kept state was taken by its next actor"
    );
}
