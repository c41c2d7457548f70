//! Bytes of heap per active token in the token read model (all in memory, and with older
//! records and grants on disk as a server keeps them), per client-credentials grant in
//! each part of a running warrant's memory (the log's index and every read model), left in
//! the read models by such a grant once its token is forgotten, and in all of the log's index
//! for 200,000 and a million three-event streams, measured with a counting allocator:
//! `cargo bench --bench memory`.
//!
//! Each token is a client-credentials-like family (one grant, one access token), the worst
//! case for the per-grant bookkeeping; strings (clients, users, audiences) repeat as they do
//! in practice.

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use uuid::Uuid;
use warrant::clock::Timestamp;
use warrant::events::filelog::index::{Index, Location, Segment, Spill};
use warrant::events::{
    AccessTokenIssued, Envelope, Event, GrantCreated, GrantOrigin, NewEvent, synthetic,
};
use warrant::projections::tokens::Tokens;
use warrant::projections::{ReadModels, slab};
use warrant::secret::SecretHash;

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// When the measured families are recorded.
const NOW: Timestamp = Timestamp(1_795_000_000_000);

/// `event` as folded at `position`, recorded at `time`.
fn envelope(position: u64, event: Event, time: Timestamp) -> Envelope {
    synthetic::envelope(position, NewEvent::new(event, time, Uuid::nil()))
}

/// Read models that folded client-credentials families `0..n`, recorded at [`NOW`], with
/// their older token records in `dir` as a server keeps them.
fn models_of(n: usize, dir: &Path) -> ReadModels {
    let mut models = ReadModels::default();
    models.spill_to(dir, slab::IN_MEMORY);
    for i in 0..n {
        for (j, event) in family(i, NOW).into_iter().enumerate() {
            models.apply(&envelope((2 * i + j + 1) as u64, event, NOW));
        }
    }
    models
}

/// The two events of client-credentials family `i`: its grant and its access token.
fn family(i: usize, now: Timestamp) -> [Event; 2] {
    let grant_id = Uuid::from_u128(i as u128 + 1);
    let client_id = format!("client-{}", i % 100);
    let subject = Some(format!("user{}@example.com", i % 1000));
    let created = GrantCreated {
        grant_id,
        client_id: client_id.clone(),
        subject: subject.clone(),
        profile: None,
        scope: "openid".into(),
        resources: vec![],
        origin: GrantOrigin::ClientCredentials,
    };
    let issued = AccessTokenIssued {
        grant_id,
        jti: Uuid::new_v4(),
        token_hash: SecretHash::of(&i.to_string()),
        client_id,
        subject,
        scope: "openid".into(),
        audience: vec![format!("https://mcp{}.example", i % 10)],
        issued_at: now,
        expires_at: now.plus_seconds(3600),
    };
    [Event::from(created), Event::from(issued)]
}

/// Heap bytes allocated (and still live) while `build` runs and its result exists.
fn measure<T>(build: impl FnOnce() -> T) -> (usize, T) {
    let before = LIVE.load(Ordering::Relaxed);
    let built = build();
    (LIVE.load(Ordering::Relaxed) - before, built)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` and `cargo test --benches` probe with this
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    for (n, spill) in [(100_000usize, false), (1_000_000, false), (1_000_000, true)] {
        let (bytes, tokens) = measure(|| {
            let mut tokens = Tokens::default();
            if spill {
                tokens.spill_to(dir.path(), slab::IN_MEMORY);
            }
            let mut position = 0;
            for i in 0..n {
                for event in family(i, NOW) {
                    position += 1;
                    tokens.apply(&envelope(position, event, NOW));
                }
            }
            tokens
        });
        assert_eq!(tokens.len(), n);
        let on_disk = if spill {
            format!(
                ", older records on disk ({} bytes a token there)",
                tokens.bytes_on_disk() / n
            )
        } else {
            ", all in memory".to_owned()
        };
        println!(
            "token projection: {n} active tokens, {bytes} heap bytes, {:.1} bytes per active token{on_disk}",
            bytes as f64 / n as f64
        );
        drop(tokens);
    }

    // Per client-credentials grant (2 events, one stream) in each part of the memory. The
    // log index keeps a fixed amount in memory (its in-memory layer, the last segment's
    // offsets) and about a byte and a half per stream on disk: the figure is the difference
    // between two sizes, per stream added.
    let n = 200_000;
    let grant_index_bytes = (index_bytes(5 * n, 2) - index_bytes(n, 2)) / 4;
    let (models_bytes, models) = measure(|| models_of(n, dir.path()));
    drop(models);
    let per = |bytes: usize| bytes as f64 / n as f64;
    println!(
        "per client-credentials grant ({n} grants): log index {:.0} bytes, all read models {:.0} bytes",
        per(grant_index_bytes),
        per(models_bytes)
    );
    // Their tokens forgotten: one event three hours on, when every token of theirs has been
    // expired for over an hour, starts the sweep.
    let (forgotten_bytes, models) = measure(|| {
        let mut models = models_of(n, dir.path());
        let later = NOW.plus_seconds(3 * 3600);
        let [created, _] = family(n, later);
        models.apply(&envelope(2 * n as u64 + 1, created, later));
        models
    });
    assert_eq!(models.tokens.len(), 0);
    drop(models);
    println!(
        "per client-credentials grant whose token was forgotten ({n} grants): all read models {:.0} bytes",
        per(forgotten_bytes)
    );
    for streams in [n, 5 * n] {
        println!(
            "log index of {streams} three-event streams (a code flow's sessions or grants): {:.1} MiB",
            index_bytes(streams, 3) as f64 / f64::from(1 << 20)
        );
    }
}

/// Records in a segment: 64 MiB of 220-byte records, about what a token's events take.
const SEGMENT_RECORDS: usize = 300_000;

/// Heap bytes of a log index holding `streams` streams of `events` events each in segments
/// of [`SEGMENT_RECORDS`], once its full in-memory layers are on disk (in a temporary
/// directory).
fn index_bytes(streams: usize, events: usize) -> usize {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (bytes, index) = measure(|| {
        let mut index = Index::new(Spill::to(dir.path())).expect("an index");
        for i in 0..streams {
            let stream = format!("grant-{}", Uuid::from_u128(i as u128 + 1));
            for version in 1..=events as u64 {
                let position = index.head() + 1;
                if position as usize % SEGMENT_RECORDS == 1 {
                    let path = dir.path().join(position.to_string());
                    index.add_segment(Segment::new(position, path));
                }
                let location = Location {
                    offset: 0,
                    len: 300,
                };
                index.push(&stream, version, location);
            }
        }
        index.settle();
        index
    });
    drop(index);
    bytes
}
