//! The command line as operators use it: exit codes and messages of `log verify`, `serve`
//! on a damaged log, `log export` filters, `projections rebuild`.

use super::support::{Server, export, frame_offsets, run_in, tamper, text, warrant, write_events};

fn flip_byte(segment: &std::path::Path, at: usize) -> Vec<u8> {
    let mut data = std::fs::read(segment).unwrap();
    data[at] ^= 0x40;
    std::fs::write(segment, &data).unwrap();
    data
}

#[tokio::test]
async fn verify_passes_a_healthy_log_and_counts_it() {
    let dir = tempfile::tempdir().unwrap();
    write_events(dir.path(), 12).await;
    let output = run_in(dir.path(), &["log", "verify"]);
    let (stdout, _) = text(&output);
    assert!(output.status.success(), "{stdout}");
    assert!(
        stdout.starts_with("log ok: 12 records in 3 streams, 1 segment(s)"),
        "{stdout}"
    );
    assert!(stdout.contains("client_deleted"), "{stdout}");
}

#[tokio::test]
async fn flipped_byte_fails_verify_and_serve_naming_segment_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let segment = write_events(dir.path(), 10).await;
    let at = frame_offsets(&segment)[3];
    let damaged = flip_byte(&segment, at + 40);
    let where_ = format!("segment {} at offset {at}", segment.display());

    let verify = run_in(dir.path(), &["log", "verify"]);
    let (_, stderr) = text(&verify);
    assert_eq!(verify.status.code(), Some(1));
    assert!(
        stderr.contains(&where_) && stderr.contains("checksum mismatch"),
        "{stderr}"
    );

    let serve = warrant()
        .args(["serve", "--port", "0", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    let (_, stderr) = text(&serve);
    assert_eq!(serve.status.code(), Some(1), "serve must refuse to start");
    assert!(
        stderr.contains("cannot start") && stderr.contains(&where_),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read(&segment).unwrap(),
        damaged,
        "nothing repaired or truncated"
    );
}

#[tokio::test]
async fn broken_hash_chain_fails_verify() {
    let dir = tempfile::tempdir().unwrap();
    let segment = write_events(dir.path(), 10).await;
    tamper(&segment, 5, |body| {
        let last = body.len() - 3;
        body[last] ^= 0x20;
    });
    let verify = run_in(dir.path(), &["log", "verify"]);
    let (_, stderr) = text(&verify);
    assert_eq!(verify.status.code(), Some(1));
    assert!(
        stderr.contains("hash chain broken at position 7"),
        "{stderr}"
    );
}

#[tokio::test]
async fn record_from_a_newer_build_fails_verify_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let segment = write_events(dir.path(), 3).await;
    tamper(&segment, 2, |body| {
        body[24..26].copy_from_slice(&9u16.to_le_bytes())
    });
    let verify = run_in(dir.path(), &["log", "verify"]);
    let (_, stderr) = text(&verify);
    assert_eq!(verify.status.code(), Some(1));
    assert!(
        stderr.contains("record at position 3 cannot be read by this build")
            && stderr.contains("schema version 9"),
        "{stderr}"
    );
}

#[tokio::test]
async fn torn_tail_fails_verify_until_a_start_truncates_it() {
    let dir = tempfile::tempdir().unwrap();
    let segment = write_events(dir.path(), 10).await;
    let mut data = std::fs::read(&segment).unwrap();
    data.extend_from_within(..20);
    std::fs::write(&segment, &data).unwrap();

    let verify = run_in(dir.path(), &["log", "verify"]);
    let (_, stderr) = text(&verify);
    assert_eq!(verify.status.code(), Some(1));
    assert!(stderr.contains("incomplete record at the end"), "{stderr}");

    Server::start(dir.path()).stop();
    let verify = run_in(dir.path(), &["log", "verify"]);
    assert!(verify.status.success(), "{:?}", text(&verify));
    // The 10 records written, plus the two signing keys the start published.
    assert!(text(&verify).0.starts_with("log ok: 12 records"));
}

#[tokio::test]
async fn export_filters_by_stream_type_and_position() {
    let dir = tempfile::tempdir().unwrap();
    write_events(dir.path(), 9).await;
    let all = export(dir.path(), &[]);
    assert_eq!(all.len(), 9);
    assert_eq!(all[0]["position"], 1);
    assert_eq!(all[0]["type"], "client_deleted");
    assert_eq!(all[1]["prev_hash"], all[0]["hash"]);
    let stream = export(dir.path(), &["--stream", "s-1"]);
    let positions: Vec<_> = stream
        .iter()
        .map(|r| r["position"].as_u64().unwrap())
        .collect();
    assert_eq!(positions, vec![2, 5, 8]);
    let window = export(dir.path(), &["--from", "4", "--to", "6"]);
    assert_eq!(window.len(), 3);
    assert!(export(dir.path(), &["--type", "grant_revoked"]).is_empty());
}

#[tokio::test]
async fn rebuild_writes_a_checkpoint_and_as_of_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    write_events(dir.path(), 5).await;
    let checkpoint = dir.path().join("checkpoints/projections.ckpt");
    let as_of = run_in(dir.path(), &["projections", "rebuild", "--as-of", "3"]);
    assert!(as_of.status.success());
    assert!(
        text(&as_of).0.contains("replayed 3 events"),
        "{:?}",
        text(&as_of)
    );
    assert!(!checkpoint.exists());
    let rebuild = run_in(dir.path(), &["projections", "rebuild"]);
    assert!(rebuild.status.success());
    assert!(text(&rebuild).0.contains("replayed 5 events"));
    assert!(checkpoint.exists());
}

#[tokio::test]
async fn rebuild_is_refused_while_serve_holds_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let rebuild = run_in(dir.path(), &["projections", "rebuild"]);
    assert_eq!(rebuild.status.code(), Some(1));
    assert!(text(&rebuild).1.contains("another warrant process"));
    server.stop();
}

#[tokio::test]
async fn flags_have_environment_twins() {
    let dir = tempfile::tempdir().unwrap();
    write_events(dir.path(), 2).await;
    let output = warrant()
        .args(["log", "verify"])
        .env("WARRANT_DIR", dir.path())
        .output()
        .unwrap();
    assert!(
        text(&output).0.starts_with("log ok: 2 records"),
        "{:?}",
        text(&output)
    );
}
