//! `warrant projections rebuild`: fold the whole log into fresh read models and write them
//! as the checkpoint (or, with `--as-of`, show the models at a past position).

use super::{StoreArgs, fail, runtime};
use crate::events::EventStore;
use crate::events::filelog::{FileLog, FileLogOptions};
use crate::projections::{ReadModels, checkpoint, slab};
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use std::process::ExitCode;
use std::time::Instant;

/// Subcommands of `warrant projections`.
#[derive(Debug, Subcommand)]
pub enum ProjectionsCommand {
    /// Rebuild every read model from the log and write a new checkpoint. Stop `warrant serve`
    /// on the same directory first (it holds the directory lock).
    Rebuild {
        #[command(flatten)]
        store: StoreArgs,
        /// Replay only up to this position and print the models' summary; writes nothing.
        #[arg(long, env = "WARRANT_AS_OF")]
        as_of: Option<u64>,
    },
}

/// Runs a `warrant projections` subcommand.
pub fn run(command: ProjectionsCommand) -> ExitCode {
    let ProjectionsCommand::Rebuild { store, as_of } = command;
    match runtime().block_on(rebuild(&store, as_of)) {
        Ok(summary) => {
            println!("{summary}");
            ExitCode::SUCCESS
        }
        Err(err) => fail(err),
    }
}

async fn rebuild(store: &StoreArgs, as_of: Option<u64>) -> Result<String, String> {
    let dir = store.dir();
    // A rebuild as of a position only reads: its scratch files go to the system's.
    let (options, spill_dir) = match as_of {
        Some(_) => (FileLogOptions::reader(), std::env::temp_dir()),
        None => (FileLogOptions::writer(String::new()), dir.clone()),
    };
    let log = FileLog::open(&dir, options).map_err(|e| e.to_string())?;
    let head = *log.head().borrow();
    let until = as_of.map_or(head, |p| p.min(head));
    let bar = ProgressBar::new(until).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} events  {per_sec}  eta {eta}")
            .expect("the template is valid"),
    );
    let started = Instant::now();
    let mut models = ReadModels::default();
    models.spill_to(&spill_dir, slab::IN_MEMORY);
    models
        .catch_up(&log, Some(until), |p| bar.set_position(p))
        .await
        .map_err(|e| e.to_string())?;
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    let mut summary = format!(
        "replayed {} events in {seconds:.2} s ({:.0} events/s): {} clients, {} tokens, {} active signing keys",
        models.position,
        models.position as f64 / seconds.max(1e-9),
        models.clients.len(),
        models.tokens.len(),
        models.keys.active().count(),
    );
    if as_of.is_none() {
        let path = checkpoint::path_in(&dir);
        checkpoint::save(&path, &models).map_err(|e| format!("{}: {e}", path.display()))?;
        summary.push_str(&format!("\ncheckpoint written to {}", path.display()));
    } else {
        summary.push_str(&format!(" as of position {until}"));
    }
    Ok(summary)
}
