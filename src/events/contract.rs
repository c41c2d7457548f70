//! The behaviour every [`EventStore`] backend must show, as one suite of checks that each
//! backend's tests run against fresh stores (`run_all(make_store)`). A failed check panics
//! with what went wrong.

use super::envelope::NewEvent;
use super::{
    ClientDeleted, ClientSecretRotated, Envelope, EventStore, ExpectedVersion, StoreError,
    Subscription,
};
use crate::clock::Timestamp;
use crate::secret::SecretHash;
use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use uuid::Uuid;

/// A store handed to the suite.
pub type Store = Arc<dyn EventStore>;

/// Runs every check, each on a fresh store from `make`.
pub async fn run_all<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Store>,
{
    read_after_append(make().await).await;
    wrong_expected_version_conflicts_and_writes_nothing(make().await).await;
    invalid_appends_are_refused(make().await).await;
    any_version_appends_whatever_the_stream_holds(make().await).await;
    concurrent_appenders_each_version_won_once(make().await).await;
    global_order_is_gap_free_and_per_stream_ordered(make().await).await;
    subscriber_never_skips_nor_repeats(make().await).await;
    read_all_pages_by_position(make().await).await;
    read_stream_of_skips_unwanted_types_and_still_counts_them(make().await).await;
}

/// A small event, distinguishable by `tag`.
pub fn sample(tag: &str) -> NewEvent {
    NewEvent::new(
        ClientDeleted {
            client_id: tag.to_owned(),
        },
        Timestamp(1_700_000_000_000),
        Uuid::new_v4(),
    )
}

fn tag_of(event: &super::Event) -> &str {
    match event {
        super::Event::ClientDeleted(e) => &e.client_id,
        other => panic!("unexpected event {other:?}"),
    }
}

/// An append is readable at once, by stream and globally, with its versions and positions.
pub async fn read_after_append(store: Store) {
    let appended = store
        .append(
            "s-1",
            ExpectedVersion::Exact(0),
            vec![sample("a"), sample("b")],
        )
        .await
        .expect("first append");
    assert_eq!(
        (
            appended.first_position,
            appended.last_position,
            appended.stream_version
        ),
        (1, 2, 2)
    );
    assert_eq!(*store.head().borrow(), 2);
    let stream = store.read_stream("s-1", 1).await.unwrap();
    let seen: Vec<_> = stream
        .iter()
        .map(|e| (e.version, e.position, tag_of(&e.event)))
        .collect();
    assert_eq!(seen, vec![(1, 1, "a"), (2, 2, "b")]);
    assert_eq!(store.read_stream("s-1", 2).await.unwrap().len(), 1);
    assert!(store.read_stream("nope", 1).await.unwrap().is_empty());
    let all = store.read_all(1, 10).await.unwrap();
    assert_eq!(all, stream);
    assert_eq!(all[1].prev_hash, all[0].hash, "records are hash-chained");
}

/// A wrong expected version is a conflict naming both versions, and nothing is written.
pub async fn wrong_expected_version_conflicts_and_writes_nothing(store: Store) {
    store
        .append("s-1", ExpectedVersion::Exact(0), vec![sample("a")])
        .await
        .unwrap();
    for wrong in [0, 2, 7] {
        let err = store
            .append("s-1", ExpectedVersion::Exact(wrong), vec![sample("x")])
            .await
            .unwrap_err();
        match err {
            StoreError::Conflict {
                stream,
                expected,
                actual,
            } => assert_eq!((stream.as_str(), expected, actual), ("s-1", wrong, 1)),
            other => panic!("expected a conflict, got {other}"),
        }
    }
    assert_eq!(*store.head().borrow(), 1);
    assert_eq!(store.read_stream("s-1", 1).await.unwrap().len(), 1);
    assert_eq!(store.read_all(1, 100).await.unwrap().len(), 1);
}

/// Appends no backend may store are refused with nothing written.
pub async fn invalid_appends_are_refused(store: Store) {
    let err = store
        .append("s-1", ExpectedVersion::Any, vec![])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err}");
    let long = "x".repeat(256);
    let err = store
        .append(&long, ExpectedVersion::Any, vec![sample("a")])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err}");
    assert_eq!(*store.head().borrow(), 0);
}

/// `Any` appends after whatever is there.
pub async fn any_version_appends_whatever_the_stream_holds(store: Store) {
    for _ in 0..3 {
        store
            .append("denials", ExpectedVersion::Any, vec![sample("d")])
            .await
            .unwrap();
    }
    let versions: Vec<_> = store
        .read_stream("denials", 1)
        .await
        .unwrap()
        .iter()
        .map(|e| e.version)
        .collect();
    assert_eq!(versions, vec![1, 2, 3]);
}

/// Appenders racing on one stream with the version they read: each version is won by
/// exactly one of them, the losers see conflicts whose cause they can already read, and the
/// stream has no gap.
pub async fn concurrent_appenders_each_version_won_once(store: Store) {
    const APPENDERS: usize = 16;
    const ATTEMPTS: usize = 20;
    let mut tasks = Vec::new();
    for appender in 0..APPENDERS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut won = Vec::new();
            for attempt in 0..ATTEMPTS {
                let version = store.read_stream("race", 1).await.unwrap().len() as u64;
                match store
                    .append(
                        "race",
                        ExpectedVersion::Exact(version),
                        vec![sample(&format!("{appender}/{attempt}"))],
                    )
                    .await
                {
                    Ok(appended) => {
                        assert_eq!(appended.stream_version, version + 1);
                        won.push(appended.stream_version);
                    }
                    Err(StoreError::Conflict { actual, .. }) => {
                        // What caused the conflict is already visible: a reload sees it.
                        let seen = store.read_stream("race", 1).await.unwrap().len() as u64;
                        assert!(
                            seen >= actual,
                            "conflict at {actual} but only {seen} visible"
                        );
                    }
                    Err(other) => panic!("unexpected error {other}"),
                }
            }
            won
        }));
    }
    let mut won = Vec::new();
    for task in tasks {
        won.extend(task.await.unwrap());
    }
    let stream = store.read_stream("race", 1).await.unwrap();
    let unique: HashSet<_> = won.iter().collect();
    assert_eq!(unique.len(), won.len(), "a version was won twice");
    assert_eq!(won.len(), stream.len(), "every win is stored, nothing else");
    let versions: Vec<_> = stream.iter().map(|e| e.version).collect();
    assert_eq!(versions, (1..=stream.len() as u64).collect::<Vec<_>>());
    assert!(
        stream.len() >= ATTEMPTS,
        "at least one append per round wins"
    );
}

/// Concurrent appends to many streams: positions are 1..=N without gap, the hash chain links
/// them, and each stream's versions rise with position.
pub async fn global_order_is_gap_free_and_per_stream_ordered(store: Store) {
    const STREAMS: usize = 8;
    const PER_STREAM: u64 = 25;
    let mut tasks = Vec::new();
    for s in 0..STREAMS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for v in 0..PER_STREAM {
                store
                    .append(
                        &format!("g-{s}"),
                        ExpectedVersion::Exact(v),
                        vec![sample(&v.to_string())],
                    )
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let all = store.read_all(1, 10_000).await.unwrap();
    let total = STREAMS as u64 * PER_STREAM;
    assert_eq!(
        all.iter().map(|e| e.position).collect::<Vec<_>>(),
        (1..=total).collect::<Vec<_>>()
    );
    for pair in all.windows(2) {
        assert_eq!(
            pair[1].prev_hash, pair[0].hash,
            "chain broken at {}",
            pair[1].position
        );
    }
    for s in 0..STREAMS {
        let versions: Vec<_> = all
            .iter()
            .filter(|e| e.stream == format!("g-{s}"))
            .map(|e| (e.version, tag_of(&e.event).to_owned()))
            .collect();
        let expected: Vec<_> = (0..PER_STREAM).map(|v| (v + 1, v.to_string())).collect();
        assert_eq!(versions, expected);
    }
}

/// A subscription started before, during and after concurrent appends delivers every event
/// exactly once, in position order.
pub async fn subscriber_never_skips_nor_repeats(store: Store) {
    const WRITERS: usize = 8;
    const EACH: usize = 50;
    let total = (WRITERS * EACH + 5) as u64;
    for i in 0..5 {
        store
            .append("early", ExpectedVersion::Any, vec![sample(&i.to_string())])
            .await
            .unwrap();
    }
    let mut from_start = Subscription::new(store.clone(), 1);
    let mut from_middle = Subscription::new(store.clone(), 3);
    let readers = [
        tokio::spawn(async move {
            let mut seen = Vec::new();
            while seen.len() < total as usize {
                seen.push(from_start.next().await.unwrap().position);
            }
            seen
        }),
        tokio::spawn(async move {
            let mut seen = Vec::new();
            while seen.len() < total as usize - 2 {
                let batch = from_middle.next_batch(7).await.unwrap();
                assert!(!batch.is_empty() && batch.len() <= 7);
                seen.extend(batch.iter().map(|e| e.position));
            }
            seen
        }),
    ];
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            for i in 0..EACH {
                store
                    .append(
                        &format!("w-{w}"),
                        ExpectedVersion::Any,
                        vec![sample(&i.to_string())],
                    )
                    .await
                    .unwrap();
                if i % 10 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }
    let [a, b] = readers;
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    assert_eq!(a, (1..=total).collect::<Vec<_>>());
    assert_eq!(b, (3..=total).collect::<Vec<_>>());
}

/// `read_all(from, max)` returns at most `max` events starting exactly at `from`.
pub async fn read_all_pages_by_position(store: Store) {
    for i in 0..10 {
        store
            .append(
                &format!("p-{}", i % 3),
                ExpectedVersion::Any,
                vec![sample("x")],
            )
            .await
            .unwrap();
    }
    let page = store.read_all(4, 3).await.unwrap();
    assert_eq!(
        page.iter().map(|e| e.position).collect::<Vec<_>>(),
        vec![4, 5, 6]
    );
    assert!(store.read_all(11, 5).await.unwrap().is_empty());
    assert_eq!(store.read_all(9, 100).await.unwrap().len(), 2);
    assert!(store.read_all(1, 0).await.unwrap().is_empty());
}

/// `read_stream_of` returns exactly the stream's events of the wanted types from a version on
/// (as the global order shows them), and the stream's version counting the skipped ones too;
/// streams interleaved in batches of one to three events, over several segments when the
/// backend has small ones.
pub async fn read_stream_of_skips_unwanted_types_and_still_counts_them(store: Store) {
    let padding = "p".repeat(150);
    for i in 0..40 {
        let batch = (0..1 + i % 3)
            .map(|j| {
                let tag = format!("a-{i}-{j}-{padding}");
                match (i + j) % 2 {
                    0 => sample(&tag),
                    _ => NewEvent::new(
                        ClientSecretRotated {
                            client_id: tag,
                            secret_hash: SecretHash::of("s"),
                        },
                        Timestamp(1_700_000_000_000),
                        Uuid::new_v4(),
                    ),
                }
            })
            .collect();
        store
            .append("a", ExpectedVersion::Any, batch)
            .await
            .unwrap();
        if i % 4 != 0 {
            let tag = format!("b-{i}-{padding}");
            store
                .append("b", ExpectedVersion::Any, vec![sample(&tag)])
                .await
                .unwrap();
        }
    }
    let head = *store.head().borrow();
    let of_a: Vec<Envelope> = store
        .read_all(1, head as usize)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.stream == "a")
        .collect();
    let version = of_a.len() as u64;
    assert_eq!(version, (0..40).map(|i| 1 + i % 3).sum::<u64>());
    let deletions = |t: &str| t == ClientDeleted::TYPE;
    for from in [1, 2, 7, version, version + 1] {
        let read = store.read_stream_of("a", from, deletions).await.unwrap();
        let expected: Vec<&Envelope> = of_a
            .iter()
            .filter(|e| e.version >= from && e.event.event_type() == ClientDeleted::TYPE)
            .collect();
        assert_eq!(
            read.envelopes.iter().collect::<Vec<_>>(),
            expected,
            "from {from}"
        );
        assert_eq!(read.version, version, "from {from}");
        let all = store.read_stream_of("a", from, |_| true).await.unwrap();
        let expected: Vec<&Envelope> = of_a.iter().filter(|e| e.version >= from).collect();
        assert_eq!(
            all.envelopes.iter().collect::<Vec<_>>(),
            expected,
            "from {from}"
        );
    }
    let none = store.read_stream_of("a", 1, |_| false).await.unwrap();
    assert!(none.envelopes.is_empty());
    assert_eq!(none.version, version);
    let missing = store.read_stream_of("nope", 1, |_| true).await.unwrap();
    assert!(missing.envelopes.is_empty());
    assert_eq!(missing.version, 0);
}
