//! `warrant import-tsidp DIR`: keep an existing tsidp deployment's relying parties. Each
//! client of tsidp's `oidc-funnel-clients.json` becomes a client-registered event under the
//! same client id, with its secret stored hashed and marked as a funnel client (tsidp serves
//! its clients through Funnel). Clients already present are left alone, so the import can
//! be repeated.

use super::{StoreArgs, fail, runtime};
use crate::actors::aggregate::Loaded;
use crate::actors::client::{Client, ClientCommand, ClientError};
use crate::actors::{CommandContext, CommandError};
use crate::clock::Timestamp;
use crate::config::default_node;
use crate::events::ClientMetadata;
use crate::events::filelog::{FileLog, FileLogOptions};
use crate::secret::SecretHash;
use clap::Args;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The file tsidp keeps its clients in, inside its state directory.
pub const TSIDP_CLIENTS_FILE: &str = "oidc-funnel-clients.json";

/// Flags of `warrant import-tsidp`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// tsidp's state directory (its `-dir`), holding `oidc-funnel-clients.json`.
    tsidp_dir: PathBuf,
    #[command(flatten)]
    store: StoreArgs,
    /// This node's name in the records it writes [default: the host name].
    #[arg(long, env = "WARRANT_NODE")]
    node: Option<String>,
}

/// A client as tsidp stores it.
#[derive(Debug, Deserialize)]
struct TsidpClient {
    client_id: String,
    #[serde(default)]
    client_secret: String,
    #[serde(default)]
    client_name: String,
    #[serde(default)]
    redirect_uris: Option<Vec<String>>,
    /// The single redirect URI of tsidp's older format.
    #[serde(default)]
    redirect_uri: String,
    #[serde(default)]
    token_endpoint_auth_method: String,
    #[serde(default)]
    grant_types: Vec<String>,
    #[serde(default)]
    response_types: Vec<String>,
    #[serde(default)]
    scope: String,
    #[serde(default)]
    client_uri: String,
    #[serde(default)]
    logo_uri: String,
    #[serde(default)]
    contacts: Vec<String>,
    #[serde(default)]
    application_type: String,
}

impl TsidpClient {
    /// warrant's metadata for the client, with tsidp's defaults where it left fields out.
    fn metadata(&self) -> ClientMetadata {
        let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        let redirect_uris = match &self.redirect_uris {
            Some(uris) if !uris.is_empty() => uris.clone(),
            _ => non_empty(&self.redirect_uri).into_iter().collect(),
        };
        let or = |values: &[String], default: &[&str]| {
            if values.is_empty() {
                default.iter().map(|v| (*v).to_owned()).collect()
            } else {
                values.to_vec()
            }
        };
        ClientMetadata {
            client_name: non_empty(&self.client_name),
            redirect_uris,
            grant_types: or(&self.grant_types, &["authorization_code", "refresh_token"]),
            response_types: or(&self.response_types, &["code"]),
            token_endpoint_auth_method: non_empty(&self.token_endpoint_auth_method)
                .unwrap_or_else(|| "client_secret_basic".into()),
            scope: non_empty(&self.scope),
            client_uri: non_empty(&self.client_uri),
            logo_uri: non_empty(&self.logo_uri),
            contacts: self.contacts.clone(),
            application_type: non_empty(&self.application_type),
            id_token_signed_response_alg: None,
        }
    }
}

/// What happened to each client of the file.
#[derive(Debug, Default)]
struct Outcome {
    imported: Vec<String>,
    present: Vec<String>,
}

/// Reads tsidp's clients file.
fn read_clients(tsidp_dir: &Path) -> Result<Vec<TsidpClient>, String> {
    let path = tsidp_dir.join(TSIDP_CLIENTS_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let clients: BTreeMap<String, TsidpClient> = serde_json::from_str(&text)
        .map_err(|e| format!("{}:{}:{}: {e}", path.display(), e.line(), e.column()))?;
    for (key, client) in &clients {
        if client.client_id.is_empty() || *key != client.client_id {
            return Err(format!(
                "{}: the entry `{key}` names client id `{}`; they must match",
                path.display(),
                client.client_id
            ));
        }
    }
    Ok(clients.into_values().collect())
}

/// Runs `warrant import-tsidp`.
pub fn run(args: ImportArgs) -> ExitCode {
    let clients = match read_clients(&args.tsidp_dir) {
        Ok(clients) => clients,
        Err(err) => return fail(err),
    };
    // Check every client before writing any, so a bad file changes nothing.
    for client in &clients {
        if let Err(err) = crate::actors::client::validate_metadata(&client.metadata()) {
            return fail(format!("client `{}`: {err}", client.client_id));
        }
        let public = client.metadata().token_endpoint_auth_method == "none";
        if !public && client.client_secret.is_empty() {
            return fail(format!(
                "client `{}` has no client_secret",
                client.client_id
            ));
        }
    }
    let node = args.node.unwrap_or_else(default_node);
    let dir = args.store.dir();
    let outcome = runtime().block_on(async {
        let log = FileLog::open(&dir, FileLogOptions::writer(node)).map_err(|e| e.to_string())?;
        let mut outcome = Outcome::default();
        for client in clients {
            let metadata = client.metadata();
            let public = metadata.token_endpoint_auth_method == "none";
            let command = ClientCommand::Register {
                metadata,
                secret_hash: (!public).then(|| SecretHash::of(&client.client_secret)),
                registered_by: None,
                registration_token_hash: None,
                funnel: true,
            };
            let mut loaded = Loaded::<Client>::load(&log, &client.client_id)
                .await
                .map_err(|e| e.to_string())?;
            let context = CommandContext::at(Timestamp::now());
            match loaded
                .execute(&log, &client.client_id, command, context)
                .await
            {
                Ok(_) => outcome.imported.push(client.client_id),
                Err(CommandError::Refused(ClientError::AlreadyRegistered(_))) => {
                    outcome.present.push(client.client_id)
                }
                Err(CommandError::Refused(err)) => {
                    return Err(format!("client `{}`: {err}", client.client_id));
                }
                Err(CommandError::Store(err)) => return Err(err.to_string()),
            }
        }
        Ok::<_, String>(outcome)
    });
    match outcome {
        Ok(outcome) => {
            for id in &outcome.imported {
                println!("imported {id}");
            }
            for id in &outcome.present {
                println!("already present {id}");
            }
            println!(
                "{} imported, {} already present",
                outcome.imported.len(),
                outcome.present.len()
            );
            ExitCode::SUCCESS
        }
        Err(err) => fail(err),
    }
}
