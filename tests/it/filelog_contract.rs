//! The store contract against the embedded file log as it runs, and with tiny segments (so
//! that runs cross segment boundaries) and an index that keeps three streams in memory (so
//! that streams are found in its tables on disk, across their merges).

use std::sync::Arc;
use warrant::events::contract;
use warrant::events::filelog::index::Spill;
use warrant::events::filelog::{FileLog, FileLogOptions};

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
