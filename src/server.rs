//! Assembling a running warrant: open the log, restore the read models from the checkpoint
//! and the log's tail, start the follower and the actor registries, serve HTTP.

use crate::actors::Actors;
use crate::clock::Timestamp;
use crate::config::IdentityConfig;
use crate::config::ServeConfig;
use crate::events::filelog::{FileLog, FileLogOptions};
use crate::events::{EventStore, StoreError};
use crate::events::{ExpectedVersion, NewEvent, SigningKeyPublished, SigningKeyRetired};
use crate::http::client_document::DocumentCache;
use crate::identity::{Identity, Tailscaled};
use crate::projections::checkpoint;
use crate::projections::live::{CheckpointPolicy, LiveModels};
use crate::tokens::keys::{KeyError, NodeKeys};
use std::net::TcpListener;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// How often the age of the signing keys is checked against the rotation schedule.
const KEY_ROTATION_CHECK: Duration = Duration::from_secs(3600);

/// The least time between two checkpoints written while serving.
const CHECKPOINT_MIN_INTERVAL: Duration = Duration::from_secs(60);

/// A due checkpoint waits for this long without appends (writing one pauses folding)...
const CHECKPOINT_QUIET: Duration = Duration::from_secs(1);

/// ...unless the last one is this old.
const CHECKPOINT_MAX_INTERVAL: Duration = Duration::from_secs(600);

/// How often idle actors are looked for.
const PASSIVATION_SWEEP: Duration = Duration::from_secs(15);

/// The shared state every handler sees.
pub struct Warrant {
    /// The configuration it runs with.
    pub config: ServeConfig,
    /// The event log.
    pub store: Arc<dyn EventStore>,
    /// The read models.
    pub models: Arc<LiveModels>,
    /// The actor registries.
    pub actors: Actors,
    keys: RwLock<Arc<NodeKeys>>,
    /// The client for fetching client metadata documents.
    pub http: reqwest::Client,
    /// When each fetched client metadata document is due for a refetch.
    pub documents: DocumentCache,
    /// Where users come from.
    pub identity: Identity,
}

impl Warrant {
    /// The keys this node signs with now.
    pub fn signing_keys(&self) -> Arc<NodeKeys> {
        self.keys.read().unwrap().clone()
    }

    /// Replaces this node's keys: the new public keys are recorded (and visible in JWKS)
    /// before anything is signed with them; the old ones are retired, and JWKS keeps them
    /// until every token they signed has expired.
    pub async fn rotate_keys(&self) -> Result<(), StartError> {
        let old = self.signing_keys();
        let new = NodeKeys::rotate(&self.config.dir)?;
        let retired: Vec<String> = old.all().iter().map(|k| k.kid.clone()).collect();
        let last = record_keys(self.store.as_ref(), &new, &retired, &self.config.node).await?;
        self.models.wait_for(last).await;
        tracing::info!(retired = ?retired, ed25519 = %new.ed25519.kid, rsa = %new.rsa.kid, "signing keys rotated");
        *self.keys.write().unwrap() = Arc::new(new);
        Ok(())
    }

    fn checkpoint_policy(&self) -> CheckpointPolicy {
        CheckpointPolicy {
            path: checkpoint::path_in(&self.config.dir),
            every_events: self.config.checkpoint_every,
            min_interval: CHECKPOINT_MIN_INTERVAL,
            quiet: CHECKPOINT_QUIET,
            max_interval: CHECKPOINT_MAX_INTERVAL,
        }
    }
}

/// Why warrant could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The event log could not be opened or read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The signing keys could not be loaded or created.
    #[error(transparent)]
    Keys(#[from] KeyError),
}

/// Opens the data directory, brings the read models up to the log's head and publishes this
/// node's public keys if the log does not have them yet.
pub async fn build(config: ServeConfig) -> Result<Warrant, StartError> {
    let started = Instant::now();
    let options = FileLogOptions {
        index_streams_in_memory: config.index_streams_in_memory,
        ..FileLogOptions::writer(config.node.clone())
    };
    let log = FileLog::open(&config.dir, options)?;
    let store: Arc<dyn EventStore> = Arc::new(log);
    let head = *store.head().borrow();
    let mut models = checkpoint::load_for(&checkpoint::path_in(&config.dir), store.as_ref()).await;
    models.spill_to(&config.dir, config.token_records_in_memory);
    let from_checkpoint = models.position;
    models.catch_up(store.as_ref(), None, |_| {}).await?;
    let mut keys = NodeKeys::load_or_generate(&config.dir)?;
    if config
        .key_rotation
        .is_some_and(|every| NodeKeys::age(&config.dir).is_some_and(|age| age >= every))
    {
        keys = NodeKeys::rotate(&config.dir)?;
    }
    // Retire this node's older keys still listed (after a rotation, or one cut short).
    let stale: Vec<String> = models
        .keys
        .active()
        .filter(|(kid, key)| key.node == config.node && keys.all().iter().all(|k| k.kid != **kid))
        .map(|(kid, _)| kid.clone())
        .collect();
    let unpublished = keys.all().iter().any(|k| models.keys.get(&k.kid).is_none());
    if unpublished || !stale.is_empty() {
        record_keys(store.as_ref(), &keys, &stale, &config.node).await?;
        models.catch_up(store.as_ref(), None, |_| {}).await?;
    }
    tracing::info!(
        dir = %config.dir.display(),
        head,
        from_checkpoint,
        replayed = models.position - from_checkpoint,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "event log opened and read models restored"
    );
    let actors = Actors::new(store.clone(), config.actor_capacity, config.actor_idle);
    let identity = match &config.identity {
        IdentityConfig::Local(user) => Identity::Local(user.clone()),
        IdentityConfig::Tailscale { socket } => Identity::Tailscale(Tailscaled::new(socket)),
    };
    Ok(Warrant {
        config,
        store,
        models: LiveModels::new(models),
        actors,
        keys: RwLock::new(Arc::new(keys)),
        http: crate::http::client_document::http_client(),
        documents: DocumentCache::default(),
        identity,
    })
}

/// Records `keys` as published (idempotently: a key already published is left alone) and
/// the keys `retired` as retired; returns the position of the last record.
pub async fn record_keys(
    store: &dyn EventStore,
    keys: &NodeKeys,
    retired: &[String],
    node: &str,
) -> Result<u64, StoreError> {
    let now = Timestamp::now();
    let mut last = *store.head().borrow();
    for key in keys.all() {
        let published = SigningKeyPublished {
            kid: key.kid.clone(),
            alg: key.public_jwk["alg"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            node: node.to_owned(),
            public_jwk: key.public_jwk.clone(),
        };
        let event = NewEvent::new(published, now, uuid::Uuid::new_v4());
        match store
            .append(
                &format!("key-{}", key.kid),
                ExpectedVersion::Exact(0),
                vec![event],
            )
            .await
        {
            Ok(appended) => last = appended.last_position,
            Err(StoreError::Conflict { .. }) => {}
            Err(err) => return Err(err),
        }
    }
    for kid in retired {
        let event = NewEvent::new(
            SigningKeyRetired { kid: kid.clone() },
            now,
            uuid::Uuid::new_v4(),
        );
        last = store
            .append(&format!("key-{kid}"), ExpectedVersion::Any, vec![event])
            .await?
            .last_position;
    }
    Ok(last)
}

/// The path of the issuer URL without its trailing slash (`""` for a bare origin): every
/// endpoint is served under it.
pub fn issuer_path(issuer: &str) -> String {
    url::Url::parse(issuer)
        .map(|url| url.path().trim_end_matches('/').to_owned())
        .unwrap_or_default()
}

/// Serves `warrant` on `listeners` until `shutdown` completes, then stops gracefully and writes
/// a final checkpoint. Must run inside an actix system.
pub async fn run(
    listeners: Vec<TcpListener>,
    warrant: Warrant,
    shutdown: impl Future<Output = ()> + 'static,
) -> std::io::Result<()> {
    let warrant = actix_web::web::Data::new(warrant);
    let follower = {
        let models = warrant.models.clone();
        let store = warrant.store.clone();
        let policy = warrant.checkpoint_policy();
        actix_rt::spawn(async move {
            if let Err(err) = models.follow(store, Some(policy)).await {
                tracing::error!(%err, "projection follower stopped");
            }
        })
    };
    let sweeper = {
        let warrant = warrant.clone();
        actix_rt::spawn(async move {
            let mut ticks = actix_rt::time::interval(PASSIVATION_SWEEP);
            loop {
                ticks.tick().await;
                let passivated = warrant.actors.passivate_idle(Instant::now());
                if passivated > 0 {
                    tracing::debug!(passivated, "idle actors passivated");
                }
            }
        })
    };
    let rotation = warrant.config.key_rotation.map(|every| {
        let warrant = warrant.clone();
        actix_rt::spawn(async move {
            let mut ticks = actix_rt::time::interval(KEY_ROTATION_CHECK);
            loop {
                ticks.tick().await;
                if NodeKeys::age(&warrant.config.dir).is_some_and(|age| age >= every)
                    && let Err(err) = warrant.rotate_keys().await
                {
                    tracing::error!(%err, "scheduled key rotation failed; keeping the current keys");
                }
            }
        })
    });
    let app_state = warrant.clone();
    let prefix = issuer_path(&warrant.config.issuer);
    let max_body = warrant.config.max_body;
    let mut server = actix_web::HttpServer::new(move || {
        actix_web::App::new()
            .app_data(app_state.clone())
            .wrap(actix_web::middleware::from_fn(
                crate::http::funnel::served_only_with_flag,
            ))
            .configure(|config| crate::http::mount(config, &prefix, max_body))
    })
    .on_connect(crate::http::no_delay)
    .disable_signals();
    for listener in listeners {
        server = server.listen(listener)?;
    }
    let server = server.run();
    let handle = server.handle();
    actix_rt::spawn(async move {
        shutdown.await;
        tracing::info!("shutting down");
        handle.stop(true).await;
    });
    server.await?;
    follower.abort();
    sweeper.abort();
    if let Some(rotation) = rotation {
        rotation.abort();
    }
    warrant
        .models
        .checkpoint(&warrant.checkpoint_policy())
        .await;
    tracing::info!("stopped");
    Ok(())
}
