//! Durability under a real `kill -9`: every acknowledged append survives, in order.

use super::support::{Server, export, http, run_in, text};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const APPENDERS: usize = 16;

#[test]
fn kill_9_during_concurrent_appends_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    // An index that keeps 64 streams in memory: most clients are in its tables on disk
    // when the process dies, and are indexed again at the restart.
    let server = Server::start_with(dir.path(), &["--index-streams-in-memory", "64"]);
    let acked: Arc<Mutex<Vec<(usize, usize, String)>>> = Arc::default();
    let count = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..APPENDERS)
        .map(|appender| {
            let (acked, count, stop, url) = (
                acked.clone(),
                count.clone(),
                stop.clone(),
                format!("{}/register", server.base),
            );
            std::thread::spawn(move || {
                let client = http();
                for seq in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let body = serde_json::json!({
                        "client_name": format!("{appender}/{seq}"),
                        "redirect_uris": ["https://app.example/cb"],
                    });
                    let Ok(response) = client.post(&url).json(&body).send() else {
                        break; // the server is gone
                    };
                    if response.status() != 201 {
                        break;
                    }
                    let Ok(json) = response.json::<serde_json::Value>() else {
                        break; // killed mid-response: not acknowledged
                    };
                    let id = json["client_id"].as_str().unwrap().to_owned();
                    acked.lock().unwrap().push((appender, seq, id));
                    count.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while count.load(Ordering::Relaxed) < 2000 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    // Appenders are still sending: kill the server under them.
    server.kill9();
    stop.store(true, Ordering::Relaxed);
    for thread in threads {
        thread.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 2000,
        "only {} appends acknowledged before the kill",
        acked.len()
    );

    // Restart: recovery runs (truncating a torn tail if the kill left one), then stop.
    Server::start(dir.path()).stop();
    let verify = run_in(dir.path(), &["log", "verify"]);
    assert!(
        verify.status.success(),
        "verify after restart: {:?}",
        text(&verify)
    );

    let positions: HashMap<String, u64> = export(dir.path(), &["--type", "client_registered"])
        .iter()
        .map(|r| {
            let id = r["payload"]["client_id"].as_str().unwrap().to_owned();
            (id, r["position"].as_u64().unwrap())
        })
        .collect();
    let mut last_position = [0u64; APPENDERS];
    let mut last_seq = [None::<usize>; APPENDERS];
    for (appender, seq, id) in &acked {
        let position = *positions
            .get(id)
            .unwrap_or_else(|| panic!("acknowledged client {id} ({appender}/{seq}) was lost"));
        if last_seq[*appender].is_some_and(|s| s < *seq) {
            assert!(
                position > last_position[*appender],
                "appender {appender}: {seq} acknowledged after an earlier one but stored before it"
            );
        }
        last_position[*appender] = position;
        last_seq[*appender] = Some(*seq);
    }
    assert!(positions.len() >= acked.len());
}
