//! `warrant keys rotate`: replace this node's signing keys while warrant is stopped.

use super::{StoreArgs, fail, runtime};
use crate::config::default_node;
use crate::events::filelog::{FileLog, FileLogOptions};
use crate::server::record_keys;
use crate::tokens::keys::NodeKeys;
use clap::Subcommand;
use std::process::ExitCode;

/// Subcommands of `warrant keys`.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Generate new signing keys, publish them and retire the old ones (JWKS keeps a
    /// retired key until the tokens it signed have expired). Stop `warrant serve` first; a
    /// running server rotates on its own schedule (`--key-rotation-days`).
    Rotate {
        #[command(flatten)]
        store: StoreArgs,
        /// This node's name, as `warrant serve --node` has it [default: the host name].
        #[arg(long, env = "WARRANT_NODE")]
        node: Option<String>,
    },
}

/// Runs a `warrant keys` subcommand.
pub fn run(command: KeysCommand) -> ExitCode {
    let KeysCommand::Rotate { store, node } = command;
    let dir = store.dir();
    let node = node.unwrap_or_else(default_node);
    let outcome = runtime().block_on(async {
        let log =
            FileLog::open(&dir, FileLogOptions::writer(node.clone())).map_err(|e| e.to_string())?;
        let old = NodeKeys::load_or_generate(&dir).map_err(|e| e.to_string())?;
        let new = NodeKeys::rotate(&dir).map_err(|e| e.to_string())?;
        let retired: Vec<String> = old.all().iter().map(|k| k.kid.clone()).collect();
        record_keys(&log, &new, &retired, &node)
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>((retired, new))
    });
    match outcome {
        Ok((retired, new)) => {
            println!("retired {}", retired.join(", "));
            println!(
                "published {} (EdDSA), {} (RS256)",
                new.ed25519.kid, new.rsa.kid
            );
            ExitCode::SUCCESS
        }
        Err(err) => fail(err),
    }
}
