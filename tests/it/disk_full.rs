//! A real full disk (a 256 KiB tmpfs): the failing append is not acknowledged, the log then
//! refuses every append (a failed write is fatal), and reopening recovers every append that
//! was acknowledged. Needs root to mount the tmpfs, as CI has.

use std::path::Path;
use std::process::Command;
use warrant::events::contract::sample;
use warrant::events::filelog::{FileLog, FileLogOptions};
use warrant::events::{EventStore, ExpectedVersion, NewEvent, StoreError};

struct Tmpfs<'a>(&'a Path);

impl<'a> Tmpfs<'a> {
    fn mount(at: &'a Path) -> Option<Tmpfs<'a>> {
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
            .arg(at)
            .status()
            .ok()?;
        status.success().then_some(Tmpfs(at))
    }
}

impl Drop for Tmpfs<'_> {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0).status();
    }
}

fn big(tag: &str) -> NewEvent {
    let mut event = sample(tag);
    if let warrant::events::Event::ClientDeleted(e) = &mut event.event {
        e.client_id = format!("{tag}-{}", "x".repeat(3000));
    }
    event
}

#[tokio::test]
async fn full_disk_fails_the_append_poisons_the_log_and_loses_nothing_acknowledged() {
    let mount_point = tempfile::tempdir().unwrap();
    let Some(_tmpfs) = Tmpfs::mount(mount_point.path()) else {
        panic!("cannot mount a tmpfs (needs root, as CI runs); this test cannot run here");
    };
    let dir = mount_point.path().join("data");
    let log = FileLog::open(&dir, FileLogOptions::writer("n")).unwrap();
    let mut acked = 0u64;
    let failure = loop {
        match log
            .append(
                "s",
                ExpectedVersion::Exact(acked),
                vec![big(&acked.to_string())],
            )
            .await
        {
            Ok(appended) => {
                acked += 1;
                assert_eq!(appended.last_position, acked);
            }
            Err(err) => break err,
        }
        assert!(acked < 1000, "a 256 KiB filesystem never filled");
    };
    assert!(matches!(failure, StoreError::Unavailable(_)), "{failure}");
    assert!(failure.to_string().contains("No space left"), "{failure}");
    assert!(acked > 10);
    // Poisoned: even a tiny append is refused, and nothing moves.
    let after = log
        .append("t", ExpectedVersion::Any, vec![sample("small")])
        .await;
    assert!(
        matches!(after, Err(StoreError::Unavailable(_))),
        "{after:?}"
    );
    assert_eq!(*log.head().borrow(), acked);
    drop(log);

    let log = FileLog::open(&dir, FileLogOptions::writer("n")).unwrap();
    assert_eq!(
        *log.head().borrow(),
        acked,
        "every acknowledged append, nothing else"
    );
    let stream = log.read_stream("s", 1).await.unwrap();
    assert_eq!(stream.len() as u64, acked);
    for pair in stream.windows(2) {
        assert_eq!(pair[1].prev_hash, pair[0].hash);
    }
}
