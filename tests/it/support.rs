//! Running real `warrant` processes for tests.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;
use warrant::events::contract::sample;
use warrant::events::filelog::{FileLog, FileLogOptions, frame};
use warrant::events::{
    Appended, Envelope, EventStore, ExpectedVersion, NewEvent, StoreError, StreamEvents, TypeFilter,
};

/// The `warrant` binary cargo built for these tests.
pub fn warrant() -> Command {
    Command::new(env!("CARGO_BIN_EXE_warrant"))
}

/// Runs `warrant ARGS... --dir DIR`.
pub fn run_in(dir: &Path, args: &[&str]) -> Output {
    warrant()
        .args(args)
        .arg("--dir")
        .arg(dir)
        .output()
        .expect("warrant runs")
}

/// Text of a process's stdout and stderr.
pub fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A `warrant serve` process on a free loopback port.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
}

impl Server {
    /// Starts `warrant serve` on `dir` and waits until it listens.
    pub fn start(dir: &Path) -> Server {
        Server::start_with(dir, &[])
    }

    /// Starts `warrant serve` on `dir` with extra flags.
    pub fn start_with(dir: &Path, flags: &[&str]) -> Server {
        let mut command = warrant();
        command
            .args(["serve", "--port", "0", "--log", "warn", "--dir"])
            .arg(dir)
            .args(flags);
        Server::spawn(command)
    }

    /// Spawns `command` (a `warrant serve`) and waits until it listens.
    pub fn spawn(command: Command) -> Server {
        Server::spawn_until(command, "warrant listening on ")
    }

    /// Spawns `command` and waits for its first line, `{ready}URL`.
    pub fn spawn_until(mut command: Command, ready: &str) -> Server {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("warrant serve starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let base = line
            .trim()
            .strip_prefix(ready)
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        Server { child, base }
    }

    /// The server's JWKS document.
    pub fn jwks(&self) -> serde_json::Value {
        http()
            .get(format!("{}/.well-known/jwks.json", self.base))
            .send()
            .unwrap()
            .json()
            .unwrap()
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: the process gets no chance to flush or checkpoint anything.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then waits for a clean exit.
    pub fn stop(mut self) {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "warrant serve exited with {status}");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A blocking HTTP client with redirects off and a timeout.
pub fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// Every exported record of the log in `dir`, as JSON.
pub fn export(dir: &Path, extra: &[&str]) -> Vec<serde_json::Value> {
    let mut args = vec!["log", "export"];
    args.extend_from_slice(extra);
    let output = run_in(dir, &args);
    assert!(
        output.status.success(),
        "export failed: {:?}",
        text(&output)
    );
    text(&output)
        .0
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// Writes `n` events to a fresh log in `dir` and closes it; returns the segment path.
pub async fn write_events(dir: &Path, n: usize) -> PathBuf {
    let log = FileLog::open(dir, FileLogOptions::writer("node-a")).unwrap();
    for i in 0..n {
        log.append(
            &format!("s-{}", i % 3),
            ExpectedVersion::Any,
            vec![sample(&i.to_string())],
        )
        .await
        .unwrap();
    }
    drop(log);
    dir.join("log").join("00000000000000000001.seg")
}

/// Offsets of every frame in a segment file.
pub fn frame_offsets(segment: &Path) -> Vec<usize> {
    let data = std::fs::read(segment).unwrap();
    let mut offsets = Vec::new();
    let mut at = 0;
    while at < data.len() {
        offsets.push(at);
        at += frame::HEADER + u32::from_le_bytes(data[at..at + 4].try_into().unwrap()) as usize;
    }
    offsets
}

/// Rewrites the body of record `n` (0-based) in place and gives it a valid CRC again, as a
/// deliberate tamperer would.
pub fn tamper(segment: &Path, n: usize, edit: impl FnOnce(&mut [u8])) {
    let mut data = std::fs::read(segment).unwrap();
    let at = frame_offsets(segment)[n];
    let len = u32::from_le_bytes(data[at..at + 4].try_into().unwrap()) as usize;
    let body = &mut data[at + frame::HEADER..at + frame::HEADER + len];
    edit(body);
    let crc = crc32c::crc32c(body);
    data[at + 4..at + 8].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(segment, data).unwrap();
}

/// Registers a client over HTTP with `metadata`; returns the registration response.
pub fn register(server: &Server, metadata: serde_json::Value) -> serde_json::Value {
    let response = http()
        .post(format!("{}/register", server.base))
        .json(&metadata)
        .send()
        .unwrap();
    assert_eq!(response.status(), 201, "registration refused");
    response.json().unwrap()
}

/// The log head a running server reports.
pub fn log_head(server: &Server) -> u64 {
    let health: serde_json::Value = http()
        .get(format!("{}/healthz", server.base))
        .send()
        .unwrap()
        .json()
        .unwrap();
    health["log_head"].as_u64().unwrap()
}

/// A registered client and its secret (none for public clients).
pub struct App {
    /// Its client id.
    pub id: String,
    /// Its secret.
    pub secret: Option<String>,
}

/// Registers a confidential client with `metadata`.
pub fn register_app(server: &Server, metadata: serde_json::Value) -> App {
    let body = register(server, metadata);
    App {
        id: body["client_id"].as_str().unwrap().into(),
        secret: body["client_secret"].as_str().map(str::to_owned),
    }
}

/// POSTs a form to `path` with `app`'s Basic credentials.
pub fn post_as(
    server: &Server,
    app: &App,
    path: &str,
    form: &[(&str, &str)],
) -> reqwest::blocking::Response {
    http()
        .post(format!("{}{path}", server.base))
        .basic_auth(&app.id, app.secret.as_ref())
        .form(form)
        .send()
        .unwrap()
}

/// Logs the local user in to a new code-flow client with PKCE, asking for `resource`;
/// returns the token response.
pub fn login(server: &Server, resource: &str) -> serde_json::Value {
    let redirect = "http://127.0.0.1:9/cb";
    let app = register_app(
        server,
        serde_json::json!({"redirect_uris": [redirect], "grant_types": ["authorization_code", "refresh_token"]}),
    );
    let verifier = "v".repeat(50);
    let challenge = warrant::actors::session::s256_challenge(&verifier);
    let url = url::Url::parse_with_params(
        &format!("{}/authorize", server.base),
        &[
            ("response_type", "code"),
            ("client_id", &app.id),
            ("redirect_uri", redirect),
            ("scope", "openid offline_access"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
            ("resource", resource),
        ],
    )
    .unwrap();
    let code = code_from(&http().get(url).send().unwrap());
    let mut tokens = redeem(server, &app, &code, redirect, Some(&verifier));
    tokens["client_id"] = app.id.into();
    tokens["client_secret"] = app.secret.into();
    tokens
}

/// The `code` of an authorization response's redirect.
pub fn code_from(response: &reqwest::blocking::Response) -> String {
    assert_eq!(response.status(), 302, "not a redirect");
    let location = url::Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
    location
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap_or_else(|| panic!("no code in {location}"))
        .1
        .into_owned()
}

/// Redeems `code` at `/token` as `app`; asserts 200 and returns the token response.
pub fn redeem(
    server: &Server,
    app: &App,
    code: &str,
    redirect_uri: &str,
    verifier: Option<&str>,
) -> serde_json::Value {
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect_uri),
    ];
    if let Some(verifier) = verifier {
        form.push(("code_verifier", verifier));
    }
    let response = post_as(server, app, "/token", &form);
    assert_eq!(response.status(), 200);
    response.json().unwrap()
}

/// The real file log, counting the appends made to each stream and noting the version each
/// read of a stream starts at. It hands nothing over as it commits (`EventStore::listen` is
/// left refused), like a store whose writer is another process.
pub struct Counting {
    /// The log itself, to read without being counted.
    pub log: Arc<dyn EventStore>,
    appends: std::sync::Mutex<std::collections::HashMap<String, usize>>,
    reads: std::sync::Mutex<Vec<(String, u64)>>,
}

impl Counting {
    /// Wraps `log`.
    pub fn new(log: Arc<dyn EventStore>) -> Counting {
        Counting {
            log,
            appends: Default::default(),
            reads: Default::default(),
        }
    }

    /// How many appends were made to `stream`.
    pub fn appends_to(&self, stream: &str) -> usize {
        self.appends
            .lock()
            .unwrap()
            .get(stream)
            .copied()
            .unwrap_or(0)
    }

    /// The versions the reads of `stream` started at, in order.
    pub fn reads_of(&self, stream: &str) -> Vec<u64> {
        let reads = self.reads.lock().unwrap();
        reads
            .iter()
            .filter(|(read, _)| read == stream)
            .map(|(_, from)| *from)
            .collect()
    }
}

#[async_trait::async_trait]
impl EventStore for Counting {
    async fn append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<Appended, StoreError> {
        *self
            .appends
            .lock()
            .unwrap()
            .entry(stream.into())
            .or_default() += 1;
        self.log.append(stream, expected, events).await
    }

    async fn read_stream_of(
        &self,
        stream: &str,
        from: u64,
        wanted: TypeFilter,
    ) -> Result<StreamEvents, StoreError> {
        self.reads.lock().unwrap().push((stream.into(), from));
        self.log.read_stream_of(stream, from, wanted).await
    }

    async fn read_all(&self, from: u64, max: usize) -> Result<Vec<Envelope>, StoreError> {
        self.log.read_all(from, max).await
    }

    fn head(&self) -> tokio::sync::watch::Receiver<u64> {
        self.log.head()
    }
}
