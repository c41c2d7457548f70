//! `warrant log verify` and `warrant log export`: read-only looks at the event log.

use super::{StoreArgs, fail, runtime};
use crate::events::filelog::{FileLog, FileLogOptions};
use crate::events::{ChainHash, EventStore, StoreError};
use crate::secret::to_hex;
use clap::Subcommand;
use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::process::ExitCode;

const READ_BATCH: usize = 8192;

/// Subcommands of `warrant log`.
#[derive(Debug, Subcommand)]
pub enum LogCommand {
    /// Check every record's CRC, the hash chain and every payload; exit 1 on any damage.
    Verify {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Print records as JSON lines.
    Export {
        #[command(flatten)]
        store: StoreArgs,
        /// Only this stream (e.g. `client-3f2a…`, `denials`).
        #[arg(long, env = "WARRANT_EXPORT_STREAM")]
        stream: Option<String>,
        /// Only this event type (e.g. `grant_revoked`).
        #[arg(long = "type", env = "WARRANT_EXPORT_TYPE")]
        event_type: Option<String>,
        /// First position to export.
        #[arg(long, env = "WARRANT_EXPORT_FROM", default_value_t = 1)]
        from: u64,
        /// Last position to export.
        #[arg(long, env = "WARRANT_EXPORT_TO")]
        to: Option<u64>,
    },
}

/// Runs a `warrant log` subcommand.
pub fn run(command: LogCommand) -> ExitCode {
    match command {
        LogCommand::Verify { store } => match runtime().block_on(verify(&store)) {
            Ok(report) => {
                print!("{report}");
                ExitCode::SUCCESS
            }
            Err(damage) => fail(format!("log damaged: {damage}")),
        },
        LogCommand::Export {
            store,
            stream,
            event_type,
            from,
            to,
        } => {
            let filter = Filter {
                stream,
                event_type,
                to: to.unwrap_or(u64::MAX),
            };
            match runtime().block_on(export(&store, from, &filter)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => fail(err),
            }
        }
    }
}

fn open(store: &StoreArgs) -> Result<FileLog, String> {
    FileLog::open(&store.dir(), FileLogOptions::reader()).map_err(|e| e.to_string())
}

/// Reads the whole log; returns the report, or the first damage found.
async fn verify(store: &StoreArgs) -> Result<String, String> {
    let log = open(store)?;
    if let Some(torn) = log.torn_tail() {
        return Err(format!(
            "incomplete record at the end of segment {} at offset {} ({} bytes: {}); it was never acknowledged and the next `warrant serve` truncates it",
            torn.segment.display(),
            torn.offset,
            torn.bytes,
            torn.reason
        ));
    }
    let mut prev: ChainHash = [0; 32];
    let mut counts = BTreeMap::<&str, u64>::new();
    let mut position = 0;
    loop {
        let batch = log
            .read_all(position + 1, READ_BATCH)
            .await
            .map_err(|e: StoreError| e.to_string())?;
        if batch.is_empty() {
            break;
        }
        for envelope in batch {
            if envelope.prev_hash != prev {
                return Err(format!(
                    "hash chain broken at position {}",
                    envelope.position
                ));
            }
            prev = envelope.hash;
            *counts.entry(envelope.event.event_type()).or_default() += 1;
            position = envelope.position;
        }
    }
    let mut report = format!(
        "log ok: {position} records in {} streams, {} segment(s); head hash {}\n",
        log.stream_count(),
        log.segment_count(),
        to_hex(&prev)
    );
    for (event_type, count) in counts {
        report.push_str(&format!("  {event_type:<28} {count}\n"));
    }
    Ok(report)
}

struct Filter {
    stream: Option<String>,
    event_type: Option<String>,
    to: u64,
}

async fn export(store: &StoreArgs, from: u64, filter: &Filter) -> Result<(), String> {
    let log = open(store)?;
    if let Some(torn) = log.torn_tail() {
        eprintln!(
            "warning: ignoring an incomplete record at the end of {} (offset {})",
            torn.segment.display(),
            torn.offset
        );
    }
    let mut out = BufWriter::new(std::io::stdout().lock());
    let mut position = from.max(1) - 1;
    while position < filter.to {
        let want = (filter.to - position).min(READ_BATCH as u64) as usize;
        let batch = log
            .read_all(position + 1, want)
            .await
            .map_err(|e| e.to_string())?;
        let Some(last) = batch.last() else { break };
        position = last.position;
        for envelope in batch.iter().filter(|e| {
            filter.stream.as_ref().is_none_or(|s| *s == e.stream)
                && filter
                    .event_type
                    .as_ref()
                    .is_none_or(|t| t == e.event.event_type())
        }) {
            if writeln!(out, "{}", envelope.to_json()).is_err() {
                return Ok(()); // the reader went away (`| head`): not an error
            }
        }
    }
    out.flush().or(Ok(()))
}
