//! Criterion benchmarks of the event-sourced core: durable appends under concurrency (group
//! commit), projection rebuild rate, start-up with a million events in the log, writing a
//! checkpoint of their read models, loading a busy grant's aggregate from its stream
//! (exchanged or refreshed 10,000 times), the token model's sweep of expired tokens, and its
//! lookup of a token by hash.
//!
//! `cargo bench --bench core`; logs live under the target directory (a real disk: fdatasync
//! is not free there, unlike on a tmpfs).

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;
use warrant::actors::Loaded;
use warrant::actors::grant::Grant;
use warrant::clock::Timestamp;
use warrant::config::ServeConfig;
use warrant::events::contract::sample;
use warrant::events::filelog::{FileLog, FileLogOptions};
use warrant::events::{Event, EventStore, ExpectedVersion, NewEvent, synthetic};
use warrant::projections::tokens::Tokens;
use warrant::projections::{ReadModels, checkpoint, slab};
use warrant::secret::SecretHash;

const NOW: Timestamp = Timestamp(1_795_000_000_000);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn scratch(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(name)
}

/// `iters` single-event appends spread over `appenders` concurrent tasks, each on its own
/// streams; returns the wall time until the last one is durable.
async fn appends(log: Arc<FileLog>, appenders: usize, iters: u64) -> Duration {
    let started = Instant::now();
    let tasks: Vec<_> = (0..appenders)
        .map(|task| {
            let log = log.clone();
            let count =
                iters / appenders as u64 + u64::from((task as u64) < iters % appenders as u64);
            tokio::spawn(async move {
                for i in 0..count {
                    let stream = format!("bench-{task}-{}", i % 64);
                    log.append(&stream, ExpectedVersion::Any, vec![sample("x")])
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    started.elapsed()
}

fn durable_appends(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("durable_appends");
    group.throughput(Throughput::Elements(1));
    group.measurement_time(Duration::from_secs(8));
    for appenders in [1usize, 16, 256] {
        let dir = scratch(&format!("appends-{appenders}"));
        let _ = std::fs::remove_dir_all(&dir);
        let log = Arc::new(FileLog::open(&dir, FileLogOptions::writer("bench")).unwrap());
        group.bench_with_input(
            BenchmarkId::from_parameter(appenders),
            &appenders,
            |b, &n| {
                b.to_async(&rt)
                    .iter_custom(|iters| appends(log.clone(), n, iters));
            },
        );
    }
    group.finish();
}

/// Writes synthetic token families until the log at `dir` holds at least `events` events
/// (reusing a log left by an earlier run); returns the head.
fn filled_log(dir: &Path, events: u64) -> u64 {
    let rt = runtime();
    rt.block_on(async {
        let log = Arc::new(FileLog::open(dir, FileLogOptions::writer("bench")).unwrap());
        let mut head = *log.head().borrow();
        if head == 0 {
            for i in 0..synthetic::CLIENTS {
                let (stream, batch) = synthetic::client(i, NOW);
                log.append(&stream, ExpectedVersion::Exact(0), batch)
                    .await
                    .unwrap();
            }
        }
        let mut next = (head / 3) as usize;
        while head < events {
            let tasks: Vec<_> = (0..256)
                .map(|k| {
                    let log = log.clone();
                    let i = next + k;
                    tokio::spawn(async move {
                        let (stream, batch) = synthetic::token_family(i, NOW);
                        log.append(&stream, ExpectedVersion::Any, batch)
                            .await
                            .unwrap()
                    })
                })
                .collect();
            for task in tasks {
                head = head.max(task.await.unwrap().last_position);
            }
            next += 256;
        }
        head
    })
}

fn projection_rebuild(c: &mut Criterion) {
    let dir = scratch("rebuild-100k");
    let head = filled_log(&dir, 100_000);
    let rt = runtime();
    let log = FileLog::open(&dir, FileLogOptions::reader()).unwrap();
    let mut group = c.benchmark_group("projection_rebuild");
    group.throughput(Throughput::Elements(head));
    group.sample_size(10);
    group.bench_function(BenchmarkId::from_parameter(head), |b| {
        b.to_async(&rt)
            .iter(|| async { ReadModels::rebuild(&log, None, |_| {}).await.unwrap() });
    });
    group.finish();
}

/// What `warrant serve` does before it listens: open the log (scan, CRC and hash chain of
/// every record), load the checkpoint, fold the tail.
fn startup(c: &mut Criterion) {
    let dir = scratch("startup-1m");
    filled_log(&dir, 1_000_000);
    let rt = runtime();
    let build = || warrant::server::build(ServeConfig::embedded(dir.clone(), 8080));
    // A first start generates and publishes this node's keys if the directory has none:
    // the measured starts then append nothing.
    let head = rt.block_on(async { build().await.unwrap().models.position() });
    let path = checkpoint::path_in(&dir);
    let mut group = c.benchmark_group("startup_1m_events");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    let start = || async {
        let warrant = build().await.unwrap();
        assert_eq!(warrant.models.position(), head);
    };
    let _ = std::fs::remove_file(&path);
    group.bench_function("without_checkpoint", |b| b.to_async(&rt).iter(start));
    rt.block_on(async {
        let log = FileLog::open(&dir, FileLogOptions::reader()).unwrap();
        let models = ReadModels::rebuild(&log, None, |_| {}).await.unwrap();
        checkpoint::save(&path, &models).unwrap();
    });
    group.bench_function("with_checkpoint", |b| b.to_async(&rt).iter(start));
    group.finish();
}

/// A checkpoint of the models of a million events (about 667,000 tokens): writing it, which
/// is all the time the follower holds the models (and folds nothing), and writing it
/// durably (synced and renamed into place).
fn checkpoint_writes(c: &mut Criterion) {
    let dir = scratch("startup-1m");
    filled_log(&dir, 1_000_000);
    let models = runtime().block_on(async {
        let log = FileLog::open(&dir, FileLogOptions::reader()).unwrap();
        ReadModels::rebuild(&log, None, |_| {}).await.unwrap()
    });
    let path = scratch("checkpoint-1m").join("projections.ckpt");
    let mut group = c.benchmark_group("checkpoint_1m_events");
    group.sample_size(10);
    group.bench_function("write", |b| {
        b.iter(|| checkpoint::write(&path, &models).unwrap())
    });
    group.bench_function("write_and_commit", |b| {
        b.iter(|| checkpoint::save(&path, &models).unwrap())
    });
    group.finish();
}

/// What the next command to a passivated grant reads first: its stream, here a code-flow
/// grant whose access token a gateway exchanged 10,000 times, in batches of 64 as a busy
/// grant actor writes them, between other grants' appends.
/// A grant of `token_family(0)` with `count` later appends, each followed by another grant's
/// creation (as other requests interleave in the log): `exchanges` of its access token in
/// batches of 64, as a busy grant actor writes them, or `refreshes`, one rotation (with its
/// access token) per append, as a client refreshing once an hour leaves them. Returns the log
/// and the grant's id.
fn busy_grant(rt: &tokio::runtime::Runtime, kind: &str, count: usize) -> (FileLog, String) {
    let dir = scratch(&format!("grant-load-{kind}"));
    let _ = std::fs::remove_dir_all(&dir);
    let log = FileLog::open(&dir, FileLogOptions::writer("bench")).unwrap();
    let (stream, created) = synthetic::token_family(0, NOW);
    let grant_id = stream.strip_prefix("grant-").unwrap().to_owned();
    let id = Uuid::parse_str(&grant_id).unwrap();
    let batch = if kind == "exchanges" { 64 } else { 1 };
    rt.block_on(async {
        log.append(&stream, ExpectedVersion::Exact(0), created)
            .await
            .unwrap();
        for (n, first) in (0..count).step_by(batch).enumerate() {
            let events = (first..(first + batch).min(count))
                .flat_map(|i| {
                    let events: Vec<Event> = if kind == "exchanges" {
                        let exchanged = synthetic::exchanged(
                            id,
                            i as u128,
                            "user0@example.com",
                            "gateway",
                            NOW,
                            3600,
                        );
                        vec![exchanged.into()]
                    } else {
                        synthetic::refreshed(id, "client-0", i, NOW)
                    };
                    events
                        .into_iter()
                        .map(|event| NewEvent::new(event, NOW, Uuid::new_v4()))
                })
                .collect();
            log.append(&stream, ExpectedVersion::Any, events)
                .await
                .unwrap();
            let (other, family) = synthetic::token_family(n + 1, NOW);
            log.append(&other, ExpectedVersion::Exact(0), family)
                .await
                .unwrap();
        }
    });
    (log, grant_id)
}

fn grant_load(c: &mut Criterion) {
    const COUNT: usize = 10_000;
    let rt = runtime();
    let mut group = c.benchmark_group("grant_load");
    group.sample_size(20);
    for kind in ["exchanges", "refreshes"] {
        let (log, grant_id) = busy_grant(&rt, kind, COUNT);
        // The family's three events, then one event per exchange or two per refresh.
        let version = 3 + (COUNT * if kind == "exchanges" { 1 } else { 2 }) as u64;
        group.bench_function(BenchmarkId::new(kind, COUNT), |b| {
            b.to_async(&rt).iter(|| async {
                let loaded = Loaded::<Grant>::load(&log, &grant_id).await.unwrap();
                assert_eq!(loaded.version, version);
            });
        });
        // As the next actor does with the state its registry kept when the last one stopped:
        // read what was appended since (here nothing), not the whole stream.
        let kept = rt.block_on(Loaded::<Grant>::load(&log, &grant_id)).unwrap();
        group.bench_function(BenchmarkId::new(format!("{kind}_kept"), COUNT), |b| {
            b.to_async(&rt).iter_batched(
                || kept.clone(),
                |kept| async {
                    let loaded = kept.catch_up(&log, &grant_id).await.unwrap();
                    assert_eq!(loaded.version, version);
                },
                BatchSize::SmallInput,
            );
        });
    }
    group.finish();
}

/// A token model of `families` token families (an access token for an hour and a refresh
/// token for 30 days each), its older records in `dir` if given; and the last position folded.
fn token_model(families: usize, dir: Option<&Path>) -> (Tokens, u64) {
    let mut tokens = Tokens::default();
    if let Some(dir) = dir {
        tokens.spill_to(dir, slab::IN_MEMORY);
    }
    let mut position = 0;
    for i in 0..families {
        for new in synthetic::token_family(i, NOW).1 {
            position += 1;
            tokens.apply(&synthetic::envelope(position, new));
        }
    }
    (tokens, position)
}

/// The token model's sweep, which runs under the read models' write lock: a model of
/// 500,000 token families (an access token for an hour and a refresh token for 30 days
/// each, 1,000,000 records), then the first event three hours on (the access tokens go) or
/// 31 days on (every token goes, and every grant with them).
fn token_sweep(c: &mut Criterion) {
    const FAMILIES: usize = 500_000;
    let dir = tempfile::tempdir().unwrap();
    let model = |on_disk: bool| token_model(FAMILIES, on_disk.then_some(dir.path()));
    let mut group = c.benchmark_group("token_sweep_500k_families");
    group.sample_size(10);
    for (name, hours, on_disk) in [
        ("access_tokens_forgotten", 3, false),
        ("all_forgotten", 31 * 24, false),
        ("access_tokens_forgotten_records_on_disk", 3, true),
    ] {
        let later = synthetic::token_family(FAMILIES, NOW.plus_seconds(hours * 3600)).1;
        group.bench_function(name, |b| {
            b.iter_batched(
                || model(on_disk),
                |(mut tokens, position)| {
                    tokens.apply(&synthetic::envelope(position + 1, later[0].clone()));
                    tokens
                },
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

/// Introspection's lookup, `Tokens::by_hash`, in a model of 500,000 token families (1,000,000
/// records, all in memory, so the index and not the disk is measured): 4,096 tokens present,
/// access and refresh, in a scattered order, and 4,096 absent.
fn token_lookup(c: &mut Criterion) {
    const FAMILIES: usize = 500_000;
    const LOOKUPS: usize = 4096;
    let (tokens, _) = token_model(FAMILIES, None);
    let present: Vec<SecretHash> = (0..LOOKUPS)
        .map(|k| {
            let kind = ["at", "rt"][k % 2];
            SecretHash::of(&format!("{kind}-{}", k * 7919 % FAMILIES))
        })
        .collect();
    let absent: Vec<SecretHash> = (0..LOOKUPS)
        .map(|k| SecretHash::of(&format!("absent-{k}")))
        .collect();
    let found = |hashes: &[SecretHash]| {
        hashes
            .iter()
            .filter(|h| tokens.by_hash(h).is_some())
            .count()
    };
    assert_eq!((found(&present), found(&absent)), (LOOKUPS, 0));
    let mut group = c.benchmark_group("token_lookup_500k_families");
    group.throughput(Throughput::Elements(LOOKUPS as u64));
    for (name, hashes) in [("present", &present), ("absent", &absent)] {
        group.bench_function(name, |b| b.iter(|| found(std::hint::black_box(hashes))));
    }
    group.finish();
}

criterion_group!(
    benches,
    durable_appends,
    projection_rebuild,
    startup,
    checkpoint_writes,
    grant_load,
    token_sweep,
    token_lookup
);
criterion_main!(benches);
