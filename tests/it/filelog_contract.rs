//! The store contract against the embedded file log as it runs, and with tiny segments (so
//! that runs cross segment boundaries) and an index that keeps three streams in memory (so
//! that streams are found in its tables on disk, across their merges).

use std::sync::Arc;
use uuid::Uuid;
use warrant::events::contract;
use warrant::events::filelog::index::Spill;
use warrant::events::filelog::{FileLog, FileLogOptions};
use warrant::events::{EventStore, ExpectedVersion, StoreError};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn file_log_passes_the_store_contract() {
    let dirs = Arc::new(std::sync::Mutex::new(Vec::new()));
    for (segment_bytes, index_streams_in_memory) in [(64 << 20, Spill::STREAMS), (4096, 3)] {
        let dirs = dirs.clone();
        contract::run_all(move || {
            let dir = tempfile::tempdir().unwrap();
            let options = FileLogOptions {
                segment_bytes,
                index_streams_in_memory,
                ..FileLogOptions::writer("node-a")
            };
            let log = FileLog::open(dir.path(), options).unwrap();
            dirs.lock().unwrap().push(dir);
            async move { Arc::new(log) as contract::Store }
        })
        .await;
    }
}

/// Streams interleaved over many segments and index tables, read back and appended to after
/// a restart, whose index is rebuilt (and spills again) from the segments; the index's files
/// are unnamed, so the data directory holds nothing but the log and its lock.
#[tokio::test]
async fn a_reopened_log_finds_every_stream_through_its_rebuilt_index() {
    let dir = tempfile::tempdir().unwrap();
    let options = || FileLogOptions {
        segment_bytes: 4096,
        index_streams_in_memory: 5,
        ..FileLogOptions::writer("node-a")
    };
    let streams: Vec<String> = (0..40)
        .map(|i| format!("grant-{}", Uuid::from_u128(i)))
        .collect();
    let log = FileLog::open(dir.path(), options()).unwrap();
    for round in 0..3 {
        for stream in &streams {
            let event = contract::sample(&format!("{stream}/{round}"));
            log.append(stream, ExpectedVersion::Exact(round), vec![event])
                .await
                .unwrap();
        }
    }
    assert!(log.segment_count() > 3);
    drop(log);

    let log = FileLog::open(dir.path(), options()).unwrap();
    assert_eq!(log.stream_count(), streams.len());
    for (i, stream) in streams.iter().enumerate() {
        let read = log.read_stream_of(stream, 2, |_| true).await.unwrap();
        assert_eq!(read.version, 3, "{stream}");
        let positions: Vec<u64> = read.envelopes.iter().map(|e| e.position).collect();
        assert_eq!(positions, [41 + i as u64, 81 + i as u64], "{stream}");
        let stale = log
            .append(
                stream,
                ExpectedVersion::Exact(2),
                vec![contract::sample("late")],
            )
            .await;
        assert!(
            matches!(stale, Err(StoreError::Conflict { actual: 3, .. })),
            "{stream}"
        );
    }
    drop(log);
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["LOCK", "log"]);
}
