//! Read models: live state equals a rebuild from scratch, checkpoints restore exactly what
//! they captured, and a checkpoint that does not belong to the log is ignored.

use crate::support::Counting;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;
use warrant::actors::grant::{Grant, GrantCommand, IssuedToken};
use warrant::actors::{Aggregate, CommandContext, Loaded, Registry};
use warrant::clock::Timestamp;
use warrant::events::filelog::{FileLog, FileLogOptions};
use warrant::events::*;
use warrant::http;
use warrant::projections::live::LiveModels;
use warrant::projections::tokens::TokenStatus;
use warrant::projections::{ReadModels, checkpoint};
use warrant::secret::SecretHash;

const NOW: Timestamp = Timestamp(1_795_000_000_000);

fn open(dir: &std::path::Path) -> Arc<dyn EventStore> {
    Arc::new(FileLog::open(dir, FileLogOptions::writer("node-a")).unwrap())
}

async fn append(store: &dyn EventStore, (stream, events): (String, Vec<NewEvent>)) -> u64 {
    store
        .append(&stream, ExpectedVersion::Any, events)
        .await
        .unwrap()
        .last_position
}

/// Clients, token families, a key, then rotations, an exchange, revocations and a reuse
/// through the grant actors: every kind of event the models fold.
async fn busy_history(store: &Arc<dyn EventStore>) -> u64 {
    for i in 0..5 {
        append(store.as_ref(), synthetic::client(i, NOW)).await;
    }
    for i in 0..40 {
        append(store.as_ref(), synthetic::token_family(i, NOW)).await;
    }
    let key = NewEvent::new(
        SigningKeyPublished {
            kid: "k1".into(),
            alg: "EdDSA".into(),
            node: "node-a".into(),
            public_jwk: serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": "abc"}),
        },
        NOW,
        Uuid::new_v4(),
    );
    store
        .append("key-k1", ExpectedVersion::Exact(0), vec![key])
        .await
        .unwrap();
    let grants = Registry::<Grant>::new(store.clone(), 100, Duration::from_secs(60));
    let ctx = CommandContext::at(NOW);
    let grant = |i: u128| Uuid::from_u128(0x5eed_0000_0000 + i);
    let access = |i: u128, token: &str| AccessTokenIssued {
        grant_id: grant(i),
        jti: Uuid::new_v4(),
        token_hash: SecretHash::of(token),
        client_id: format!("client-{i}"),
        subject: Some(format!("user{i}@example.com")),
        scope: "openid offline_access".into(),
        audience: vec![],
        issued_at: NOW,
        expires_at: NOW.plus_seconds(600),
    };
    // What the token model says of family i's access token `at-{i}` or refresh token
    // `rt-{i}`, as `synthetic::token_family` issued them.
    let issued = |i: u128, kind: TokenKind| {
        let (text, seconds) = match kind {
            TokenKind::Access => (format!("at-{i}"), 3600),
            TokenKind::Refresh => (format!("rt-{i}"), 30 * 86_400),
        };
        IssuedToken {
            hash: SecretHash::of(&text),
            kind,
            client_id: format!("client-{i}"),
            expires_at: NOW.plus_seconds(seconds),
        }
    };
    // Family 1 rotates its refresh token; family 2 revokes its access token; family 3
    // reuses a rotated refresh token (revoking the grant); family 4's token is exchanged.
    for i in [1u128, 3] {
        let refresh = GrantCommand::Refresh {
            presented: issued(i, TokenKind::Refresh),
            client_id: format!("client-{i}"),
            access: access(i, &format!("at-{i}-2")),
            next_refresh: SecretHash::of(&format!("rt-{i}-2")),
            refresh_expires_at: NOW.plus_seconds(86_400),
        };
        grants
            .execute(&grant(i).to_string(), refresh.clone(), ctx)
            .await
            .unwrap();
        if i == 3 {
            grants
                .execute(&grant(i).to_string(), refresh, ctx)
                .await
                .unwrap_err();
        }
    }
    let revoke = GrantCommand::RevokeToken {
        token: issued(2, TokenKind::Access),
        client_id: "client-2".into(),
    };
    grants
        .execute(&grant(2).to_string(), revoke, ctx)
        .await
        .unwrap();
    let exchanged = Box::new(TokenExchanged {
        subject_jti: Uuid::from_u128(0x7a1_0000_0000 + 4),
        ..synthetic::exchanged(grant(4), 77, "user4@example.com", "gateway", NOW, 300)
    });
    let exchange = GrantCommand::Exchange {
        exchanged,
        subject: issued(4, TokenKind::Access),
    };
    let committed = grants
        .execute(&grant(4).to_string(), exchange, ctx)
        .await
        .unwrap();
    committed.last_position.unwrap()
}

#[actix_rt::test]
async fn live_models_equal_a_rebuild_from_scratch() {
    let dir = tempfile::tempdir().unwrap();
    live_models_equal_a_rebuild_of(open(dir.path())).await;
}

#[actix_rt::test]
async fn live_models_of_a_store_that_hands_nothing_over_equal_a_rebuild_from_scratch() {
    let dir = tempfile::tempdir().unwrap();
    live_models_equal_a_rebuild_of(Arc::new(Counting::new(open(dir.path())))).await;
}

#[actix_rt::test]
async fn a_follower_behind_the_head_reads_up_to_it_then_folds_each_batch_before_its_answer() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    for i in 0..5 {
        append(store.as_ref(), synthetic::client(i, NOW)).await;
    }
    let live = LiveModels::new(ReadModels::default());
    let follower = actix_rt::spawn(live.clone().follow(store.clone(), None));
    live.wait_for(5).await;
    for i in 0..40 {
        let position = append(store.as_ref(), synthetic::token_family(i, NOW)).await;
        assert_eq!(
            live.position(),
            position,
            "folded before the append returned"
        );
    }
    follower.abort();
    let rebuilt = ReadModels::rebuild(store.as_ref(), None, |_| {})
        .await
        .unwrap();
    assert_eq!(*live.read(), rebuilt);
    assert_eq!(rebuilt.clients.len(), 5);
}

/// Folds [`busy_history`] appended to `store` live, and checks it against a rebuild.
async fn live_models_equal_a_rebuild_of(store: Arc<dyn EventStore>) {
    let live = LiveModels::new(ReadModels::default());
    let follower = actix_rt::spawn(live.clone().follow(store.clone(), None));
    let head = busy_history(&store).await;
    live.wait_for(head).await;
    follower.abort();

    let rebuilt = ReadModels::rebuild(store.as_ref(), None, |_| {})
        .await
        .unwrap();
    let live = live.read();
    assert_eq!(*live, rebuilt);
    assert_eq!(rebuilt.position, head);

    let now = NOW.unix_seconds() + 1;
    let by_text = |t: &str| rebuilt.tokens.by_hash(&SecretHash::of(t)).unwrap();
    assert!(by_text("at-0").is_active(now));
    assert!(!by_text("at-0").is_active(now + 3600), "expired");
    assert_eq!(by_text("rt-1").status, TokenStatus::Rotated);
    assert!(by_text("rt-1-2").is_active(now));
    assert_eq!(by_text("at-2").status, TokenStatus::Revoked);
    assert!(
        by_text("rt-2").is_active(now),
        "revoking an access token leaves the family"
    );
    let reused = by_text("at-3-2");
    assert_eq!(
        reused.grant_revoked,
        Some(RevocationReason::RefreshTokenReuse)
    );
    assert!(!reused.is_active(now) && !by_text("at-3").is_active(now));
    // Revoking the grant revokes what was in use and leaves what was rotated as it was.
    assert_eq!(by_text("rt-3-2").status, TokenStatus::Revoked);
    assert_eq!(by_text("rt-3").status, TokenStatus::Rotated);
    let exchanged = by_text("exchanged-77");
    assert_eq!(exchanged.jti, Some(Uuid::from_u128(77)));
    assert_eq!(exchanged.audience, vec!["https://server.example"]);
    assert_eq!(exchanged.act.unwrap().sub, "gateway");
    assert_eq!(exchanged.subject, Some("user4@example.com"));
    assert!(
        rebuilt
            .tokens
            .by_hash(&SecretHash::of("never issued"))
            .is_none()
    );

    assert_eq!(rebuilt.clients.len(), 5);
    assert_eq!(rebuilt.keys.active().count(), 1);
    assert_eq!(rebuilt.audit.for_subject("user3@example.com").count(), 6);
    assert_eq!(
        rebuilt.audit.denials().count(),
        1,
        "the refresh token reuse"
    );
    assert_eq!(rebuilt.audit.counts()["grant_created"], 40);
}

#[actix_rt::test]
async fn checkpoint_restores_exactly_and_the_tail_is_folded_on_top() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    busy_history(&store).await;
    let path = checkpoint::path_in(dir.path());
    let at_checkpoint = ReadModels::rebuild(store.as_ref(), None, |_| {})
        .await
        .unwrap();
    checkpoint::save(&path, &at_checkpoint).unwrap();
    assert_eq!(checkpoint::read(&path).unwrap(), at_checkpoint);

    for i in 100..110 {
        append(store.as_ref(), synthetic::token_family(i, NOW)).await;
    }
    let mut restored = checkpoint::load_for(&path, store.as_ref()).await;
    assert_eq!(restored.position, at_checkpoint.position);
    restored
        .catch_up(store.as_ref(), None, |_| {})
        .await
        .unwrap();
    assert_eq!(
        restored,
        ReadModels::rebuild(store.as_ref(), None, |_| {})
            .await
            .unwrap()
    );
}

/// A checkpoint written but not committed (a crash while it is being synced) leaves the
/// previous one in place and whole; the commit replaces it.
#[actix_rt::test]
async fn a_checkpoint_replaces_the_last_only_once_committed() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let path = checkpoint::path_in(dir.path());
    append(store.as_ref(), synthetic::token_family(0, NOW)).await;
    let first = ReadModels::rebuild(store.as_ref(), None, |_| {})
        .await
        .unwrap();
    checkpoint::save(&path, &first).unwrap();
    busy_history(&store).await;
    let second = ReadModels::rebuild(store.as_ref(), None, |_| {})
        .await
        .unwrap();
    assert!(second.position > first.position);

    let written = checkpoint::write(&path, &second).unwrap();
    assert_eq!(checkpoint::read(&path).unwrap(), first, "not yet committed");
    written.commit().unwrap();
    assert_eq!(checkpoint::read(&path).unwrap(), second);
    assert!(
        !path.with_extension("tmp").exists(),
        "the temporary file became the checkpoint"
    );
}

/// What the token model says of a grant while one of its refresh tokens is in use decides
/// a refresh as the grant's folded stream does, at the same version, for every refresh token
/// of a busy history and for its own client and another; where the model says nothing (the
/// token rotated, its grant revoked) the stream refuses.
#[actix_rt::test]
async fn the_models_word_on_a_grant_in_use_decides_as_its_stream_does() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    busy_history(&store).await;
    let models = ReadModels::rebuild(store.as_ref(), None, |_| {})
        .await
        .unwrap();
    let Event::AccessTokenIssued(access) = synthetic::token_family(999, NOW).1[1].event.clone()
    else {
        panic!("a family's second event is its access token");
    };
    let texts = (0..40).flat_map(|i| [format!("rt-{i}"), format!("rt-{i}-2")]);
    let (mut known, mut refused) = (0, 0);
    for text in texts {
        let hash = SecretHash::of(&text);
        let Some(view) = models.tokens.by_hash(&hash) else {
            continue;
        };
        let id = view.grant_id.to_string();
        let folded = Loaded::<Grant>::load(store.as_ref(), &id).await.unwrap();
        assert_eq!(view.grant_version, folded.version, "{text}");
        let token = http::issued_token(hash, &view);
        let in_use = http::grant_in_use(&view, &token, NOW.unix_seconds());
        for client_id in [view.client_id, "another-client"] {
            let refresh = GrantCommand::Refresh {
                presented: token.clone(),
                client_id: client_id.to_owned(),
                access: access.clone(),
                next_refresh: SecretHash::of("next"),
                refresh_expires_at: NOW.plus_seconds(86_400),
            };
            let decided = folded.state.handle(&id, &refresh, NOW);
            match &in_use {
                Some(in_use) => {
                    assert_eq!(in_use.version, folded.version, "{text}");
                    assert_eq!(in_use.state.handle(&id, &refresh, NOW), decided, "{text}");
                    known += 1;
                }
                None => {
                    assert!(decided.is_err(), "{text}: {decided:?}");
                    refused += 1;
                }
            }
        }
    }
    assert_eq!(known, 2 * 39, "38 families' first tokens, and 1's new one");
    assert_eq!(refused, 2 * 3, "1's and 3's rotated tokens and 3's new one");
}

#[tokio::test]
async fn checkpoint_of_another_log_or_damaged_is_ignored() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (store_a, store_b) = (open(a.path()), open(b.path()));
    for i in 0..3 {
        append(store_a.as_ref(), synthetic::token_family(i, NOW)).await;
        append(store_b.as_ref(), synthetic::token_family(i + 50, NOW)).await;
    }
    let path = checkpoint::path_in(b.path());
    let from_a = ReadModels::rebuild(store_a.as_ref(), None, |_| {})
        .await
        .unwrap();
    checkpoint::save(&path, &from_a).unwrap();
    assert_eq!(
        checkpoint::load_for(&path, store_b.as_ref()).await.position,
        0,
        "another log"
    );
    assert_eq!(
        checkpoint::load_for(&path, store_a.as_ref()).await,
        from_a,
        "its own log"
    );

    let mut data = std::fs::read(&path).unwrap();
    let last = data.len() - 1;
    data[last] ^= 1;
    std::fs::write(&path, data).unwrap();
    assert!(
        checkpoint::read(&path)
            .unwrap_err()
            .contains("checksum mismatch")
    );
    assert_eq!(
        checkpoint::load_for(&path, store_a.as_ref()).await.position,
        0
    );
}

/// A follower checkpointing into `dir` after every event, once nothing has been appended for
/// `quiet`, or under unbroken load once the last checkpoint is `max_interval` old.
fn checkpointing_follower(
    dir: &std::path::Path,
    store: &Arc<dyn EventStore>,
    quiet: Duration,
    max_interval: Duration,
) -> (
    std::path::PathBuf,
    actix_rt::task::JoinHandle<Result<(), StoreError>>,
) {
    let path = checkpoint::path_in(dir);
    let policy = warrant::projections::live::CheckpointPolicy {
        path: path.clone(),
        every_events: 1,
        min_interval: Duration::ZERO,
        quiet,
        max_interval,
    };
    let live = LiveModels::new(ReadModels::default());
    let follower = actix_rt::spawn(live.follow(store.clone(), Some(policy)));
    (path, follower)
}

/// Appends one client registration every 10 ms for `how_long`; returns the last position.
async fn steady_appends(store: &dyn EventStore, first: usize, how_long: Duration) -> u64 {
    let start = std::time::Instant::now();
    let mut i = first;
    let mut last = 0;
    while start.elapsed() < how_long {
        last = append(store, synthetic::client(i, NOW)).await;
        i += 1;
        actix_rt::time::sleep(Duration::from_millis(10)).await;
    }
    last
}

#[actix_rt::test]
async fn a_due_checkpoint_waits_for_a_quiet_moment() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let (path, follower) = checkpointing_follower(
        dir.path(),
        &store,
        Duration::from_secs(1),
        Duration::from_secs(3600),
    );
    let head = steady_appends(store.as_ref(), 0, Duration::from_millis(1500)).await;
    assert!(!path.exists(), "written while appends kept coming");
    for _ in 0..100 {
        if path.exists() {
            break;
        }
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
    follower.abort();
    let models = checkpoint::read(&path).expect("a checkpoint once quiet");
    assert_eq!(models.position, head, "it holds everything appended");
}

#[actix_rt::test]
async fn under_unbroken_load_a_checkpoint_is_written_when_the_last_is_old() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let (path, follower) = checkpointing_follower(
        dir.path(),
        &store,
        Duration::from_secs(3600),
        Duration::from_millis(300),
    );
    let mut first = 0;
    while !path.exists() && first < 500 {
        steady_appends(store.as_ref(), first, Duration::from_millis(100)).await;
        first += 10;
    }
    follower.abort();
    assert!(path.exists(), "no checkpoint though the last was long due");
}
