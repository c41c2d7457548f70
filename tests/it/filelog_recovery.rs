//! What opening a damaged log does: torn tails are truncated, anything else stops the open
//! with the segment and offset; records from a newer build are refused clearly.

use super::support::{frame_offsets, tamper, write_events};
use warrant::events::contract::sample;
use warrant::events::filelog::{FileLog, FileLogOptions};
use warrant::events::{EventStore, ExpectedVersion, StoreError};

async fn positions(log: &FileLog) -> Vec<u64> {
    log.read_all(1, 1000)
        .await
        .unwrap()
        .iter()
        .map(|e| e.position)
        .collect()
}

#[tokio::test]
async fn torn_final_record_is_truncated_and_nothing_acknowledged_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let segment = write_events(dir.path(), 10).await;
    let good_len = std::fs::metadata(&segment).unwrap().len();
    // A crash in the middle of writing record 11: its first 30 bytes reached the disk.
    let mut data = std::fs::read(&segment).unwrap();
    let first = frame_offsets(&segment)[0];
    let partial = data[first..first + 30].to_vec();
    data.extend_from_slice(&partial);
    std::fs::write(&segment, &data).unwrap();

    let read_only = FileLog::open(dir.path(), FileLogOptions::reader()).unwrap();
    let torn = read_only.torn_tail().expect("reported read-only").clone();
    assert_eq!((torn.offset, torn.bytes), (good_len, 30));
    assert_eq!(
        std::fs::metadata(&segment).unwrap().len(),
        good_len + 30,
        "read-only changes nothing"
    );
    drop(read_only);

    let log = FileLog::open(dir.path(), FileLogOptions::writer("node-a")).unwrap();
    assert!(log.torn_tail().is_some());
    assert_eq!(
        std::fs::metadata(&segment).unwrap().len(),
        good_len,
        "truncated"
    );
    assert_eq!(positions(&log).await, (1..=10).collect::<Vec<_>>());
    let appended = log
        .append("s-new", ExpectedVersion::Exact(0), vec![sample("after")])
        .await
        .unwrap();
    assert_eq!(appended.first_position, 11);
    drop(log);

    let log = FileLog::open(dir.path(), FileLogOptions::writer("node-a")).unwrap();
    assert!(log.torn_tail().is_none());
    let all = log.read_all(1, 100).await.unwrap();
    assert_eq!(all.len(), 11);
    assert_eq!(
        all[10].prev_hash, all[9].hash,
        "the chain continues across the repair"
    );
}

#[tokio::test]
async fn zero_filled_tail_is_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let segment = write_events(dir.path(), 4).await;
    let mut data = std::fs::read(&segment).unwrap();
    data.extend_from_slice(&[0; 4096]);
    std::fs::write(&segment, &data).unwrap();
    let log = FileLog::open(dir.path(), FileLogOptions::writer("node-a")).unwrap();
    assert_eq!(log.torn_tail().unwrap().bytes, 4096);
    assert_eq!(positions(&log).await, vec![1, 2, 3, 4]);
}

#[tokio::test]
async fn flipped_byte_in_the_middle_refuses_to_open_naming_segment_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let segment = write_events(dir.path(), 10).await;
    let before = std::fs::read(&segment).unwrap();
    let at = frame_offsets(&segment)[4];
    let mut data = before.clone();
    data[at + 60] ^= 0x01;
    std::fs::write(&segment, &data).unwrap();
    for options in [FileLogOptions::writer("node-a"), FileLogOptions::reader()] {
        let err = FileLog::open(dir.path(), options).err().expect("refused");
        let message = err.to_string();
        assert!(matches!(err, StoreError::Corrupt(_)), "{message}");
        assert!(
            message.contains(&segment.display().to_string()),
            "{message}"
        );
        assert!(message.contains(&format!("offset {at}")), "{message}");
        assert!(message.contains("checksum mismatch"), "{message}");
    }
    assert_eq!(
        std::fs::read(&segment).unwrap(),
        data,
        "nothing was truncated or repaired"
    );
}

#[tokio::test]
async fn broken_hash_chain_refuses_to_open() {
    let dir = tempfile::tempdir().unwrap();
    let segment = write_events(dir.path(), 10).await;
    // Record 6's payload is rewritten with a valid CRC: record 7 no longer chains to it.
    tamper(&segment, 5, |body| {
        let last = body.len() - 3;
        body[last] ^= 0x20;
    });
    let at = frame_offsets(&segment)[6];
    let err = FileLog::open(dir.path(), FileLogOptions::reader())
        .err()
        .expect("refused");
    let message = err.to_string();
    assert!(
        message.contains("hash chain broken at position 7"),
        "{message}"
    );
    assert!(message.contains(&format!("offset {at}")), "{message}");
}

#[tokio::test]
async fn unknown_event_type_from_a_newer_build_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let segment = write_events(dir.path(), 3).await;
    // The last record claims a type this build does not know ("client_deleted" → "client_deletez").
    tamper(&segment, 2, |body| {
        let at = body
            .windows(14)
            .position(|w| w == b"client_deleted")
            .unwrap();
        body[at + 13] = b'z';
    });
    let log = FileLog::open(dir.path(), FileLogOptions::reader()).unwrap();
    let err = log.read_all(1, 10).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Undecodable { position: 3, .. }),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("unknown event type `client_deletez`"),
        "{err}"
    );
    assert_eq!(
        log.read_all(1, 2).await.unwrap().len(),
        2,
        "the records before it still read"
    );
}

#[tokio::test]
async fn newer_schema_version_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let segment = write_events(dir.path(), 3).await;
    tamper(&segment, 2, |body| {
        body[24..26].copy_from_slice(&2u16.to_le_bytes())
    });
    let log = FileLog::open(dir.path(), FileLogOptions::reader()).unwrap();
    let err = log.read_all(1, 10).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("has schema version 2, this build reads up to 1"),
        "{err}"
    );
}

#[tokio::test]
async fn a_second_writer_on_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _first = FileLog::open(dir.path(), FileLogOptions::writer("a")).unwrap();
    let err = FileLog::open(dir.path(), FileLogOptions::writer("b"))
        .err()
        .unwrap();
    assert!(err.to_string().contains("another warrant process"), "{err}");
}
