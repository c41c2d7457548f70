# Shared by benches/load.sh and benches/gateway.sh (sourced, not run): the tools, a warrant
# in release mode on a fresh data directory, and what a scenario needs prepared through its
# public API. Expects $work (a scratch directory); sets $bin, $server (warrant's pid), $base.
# The release build is made first unless WARRANT_BIN names the binary to run;
# WARRANT_SERVE_ARGS adds flags to `warrant serve`.

for tool in wrk jq curl; do
  command -v "$tool" >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk jq curl >/dev/null; }
done
# WARRANT_BIN runs a given build instead (to compare two builds in turn).
if [ -z "${WARRANT_BIN:-}" ]; then
  cargo build --release --quiet
fi
bin="${WARRANT_BIN:-$(pwd)/${CARGO_TARGET_DIR:-target}/release/warrant}"

# start_warrant RESOURCE...: warrant with token exchange and a grants file letting every user
# register clients and ask for (or be exchanged to) the given resources.
start_warrant() {
  local resources; resources="$(printf '%s\n' "$@" | jq -R . | jq -sc .)"
  echo "{\"grants\":[{\"src\":[\"*\"],\"dst\":[\"*\"],\"app\":{\"tailscale.com/cap/tsidp\":[{\"users\":[\"*\"],\"resources\":$resources,\"allow_dcr\":true}]}}]}" > "$work/grants.json"
  # shellcheck disable=SC2086 # WARRANT_SERVE_ARGS: extra flags, word-split on purpose
  "$bin" serve --dir "$work/data" --port 0 --log warn --enable-sts --grants "$work/grants.json" ${WARRANT_SERVE_ARGS:-} > "$work/out" &
  server=$!
  base="$(listening_url "$work/out")"
}

# listening_url FILE: waits for a process's `... listening on URL` line in FILE; prints URL.
listening_url() {
  for _ in $(seq 100); do grep -q "listening on" "$1" 2>/dev/null && break; sleep 0.1; done
  local url; url="$(sed -n 's/^.* listening on //p' "$1" | head -1)"
  [ -n "$url" ] || { echo "no process came up (see $1)" >&2; exit 1; }
  echo "$url"
}

# register_client: one confidential client that may use every grant type; sets $cid,
# $secret, $basic (its Authorization header value), $redirect.
register_client() {
  redirect="http://127.0.0.1:9/cb"
  local client
  client="$(curl -sf "$base/register" -H 'content-type: application/json' -d "{\"redirect_uris\":[\"$redirect\"],
    \"grant_types\":[\"authorization_code\",\"refresh_token\",\"client_credentials\",\"urn:ietf:params:oauth:grant-type:token-exchange\"]}")"
  cid="$(jq -r .client_id <<<"$client")" secret="$(jq -r .client_secret <<<"$client")"
  basic="Basic $(printf '%s:%s' "$cid" "$secret" | base64 -w0)"
}

# The PKCE verifier of every code flow a benchmark runs.
verifier="load-benchmark-code-verifier-0123456789-abcdefghij"

# authorize_path RESOURCE [SCOPE]: the auto-approved /authorize request of a code flow with
# PKCE for RESOURCE, asking for SCOPE (space-separated; default "openid offline_access", which
# brings an ID token with the access token).
authorize_path() {
  local challenge scope="${2:-openid offline_access}"
  challenge="$(printf '%s' "$verifier" | openssl dgst -sha256 -binary | base64 -w0 | tr '+/' '-_' | tr -d '=')"
  echo "/authorize?response_type=code&client_id=$cid&redirect_uri=$redirect&scope=${scope// /%20}&code_challenge=$challenge&code_challenge_method=S256&resource=$1"
}

# harvest PREFIX AUTHORIZE SECONDS THREADS CONNS [FIELD]: code flows with PKCE (AUTHORIZE, a
# path from authorize_path) driven by wrk for SECONDS; each thread writes the FIELD
# (refresh_token unless given) of every token response, one a line, to PREFIX.<thread>.
harvest() {
  env LOAD_SCENARIO=code_flow LOAD_NAME=harvest LOAD_THREADS="$4" LOAD_AUTH="$basic" \
    LOAD_AUTHORIZE="$2" LOAD_TOKEN_PATH=/token LOAD_REDIRECT="$redirect" LOAD_VERIFIER="$verifier" \
    LOAD_HARVEST="$1" LOAD_HARVEST_FIELD="${6:-refresh_token}" \
    wrk -t"$4" -c"$5" -d"$3s" -s benches/load/scenario.lua "$base/" > /dev/null
}

# user_token RESOURCE: a user's access token for RESOURCE, through one code flow.
user_token() {
  local path code token
  path="$(authorize_path "$1")"
  code="$(curl -s -o /dev/null -w '%{redirect_url}' "$base$path" | sed -n 's/.*[?&]code=\([^&]*\).*/\1/p')"
  token="$(curl -sf "$base/token" -H "authorization: $basic" -d "grant_type=authorization_code&code=$code&redirect_uri=$redirect&code_verifier=$verifier" | jq -r .access_token)"
  [ -n "$token" ] && [ "$token" != null ] || { echo "could not prepare a user token" >&2; exit 1; }
  echo "$token"
}

cpu_seconds() { awk '{printf "%.2f", ($14 + $15) / 100}' "/proc/$1/stat"; }
peak_rss_mib() { awk '/VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }
rss_mib() { awk '/VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }
