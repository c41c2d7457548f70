#!/usr/bin/env bash
# The HTTP load benchmark: warrant in release mode on a fresh data directory, prepared through
# its public API, driven over loopback by wrk. Prints one RESULT line per scenario and a table
# with each scenario's ratio to `discovery` (the cost of HTTP alone), warrant's and wrk's CPU
# seconds and warrant's peak and current RSS. Exits 3 if any scenario had an unexpected status
# or a socket error.
#
#   benches/load.sh [-d SECS] [-c CONNS] [-t THREADS] [-w WARMUP] [-s SCENARIOS] [-P]
#
#   -d  measured seconds per scenario (default 10)    -c  connections (default 64)
#   -t  wrk threads (default 2)                       -w  warm-up seconds (default 2)
#   -s  comma-separated scenarios (default all, in this order):
#       discovery,introspect,client_credentials,exchange,code_flow,refresh,code_flow_oidc,refresh_oidc
#       and, only when named, introspect_beside_issuance: introspection while a second wrk
#       issues client_credentials tokens (its line, issuance_beside, follows), each with half
#       the connections and one thread
#       code_flow and refresh are OAuth grants, as an MCP client holds them (no `openid` scope);
#       the _oidc twins ask for `openid` too, so every response also carries an RS256 ID token
#   -P  also load node-oidc-provider with the same wrk settings (discovery, introspect,
#       client_credentials, exchange) from a writable copy of ../shared/peers (or
#       $WARRANT_PEERS), and print warrant/peer per scenario; skipped, saying so, without it
# Every target is 127.0.0.1. `refresh` uses refresh tokens harvested by `code_flow`, and
# `refresh_oidc` those harvested by `code_flow_oidc`.
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=10 CONNS=64 THREADS=2 WARMUP=2 PEER=0
SCENARIOS="discovery,introspect,client_credentials,exchange,code_flow,refresh,code_flow_oidc,refresh_oidc"
while getopts "d:c:t:w:s:Ph" o; do
  case "$o" in
    d) DUR="$OPTARG" ;; c) CONNS="$OPTARG" ;; t) THREADS="$OPTARG" ;; w) WARMUP="$OPTARG" ;;
    s) SCENARIOS="$OPTARG" ;; P) PEER=1 ;; *) sed -n '2,20p' "$0"; exit 2 ;;
  esac
done

work="$(mktemp -d)"
server=""
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null
  [ -x "$work/peers/node-oidc/stop.sh" ] && RUN_ROOT="$work/peers/run" "$work/peers/node-oidc/stop.sh" >/dev/null 2>&1
  wait 2>/dev/null; rm -rf "$work"
}
trap cleanup EXIT
# shellcheck source=benches/load/common.sh
source benches/load/common.sh

gateway="http://localhost:8003" mcp_server="http://localhost:8001"
start_warrant "$gateway" "$mcp_server"
# Prepared through the public API: one confidential client that may do everything, and a
# user's access token (code flow with PKCE) to introspect and exchange.
register_client
oauth_authorize="$(authorize_path "$gateway" offline_access)"
oidc_authorize="$(authorize_path "$gateway")"
user_token="$(user_token "$gateway")"

run() { # name wrk-env...
  local name="$1"; shift
  local path="/.well-known/openid-configuration"
  case "$name" in introspect*) path=/introspect ;; client_credentials|exchange|refresh*) path=/token ;; code_flow*) path=/ ;; esac
  if [ "$WARMUP" != 0 ] && [[ "$name" != refresh* ]]; then
    env "$@" LOAD_NAME="$name" LOAD_THREADS="$THREADS" wrk -t"$THREADS" -c"$CONNS" -d"${WARMUP}s" -s benches/load/scenario.lua "$base$path" >/dev/null
  fi
  local before; before="$(cpu_seconds "$server")"
  # wrk's own CPU (user + system) too: it shares the cores, and its script costs more for
  # some scenarios than for others.
  local TIMEFORMAT='%U %S'
  { time env "$@" LOAD_NAME="$name" LOAD_THREADS="$THREADS" wrk -t"$THREADS" -c"$CONNS" -d"${DUR}s" --latency -s benches/load/scenario.lua "$base$path" > "$work/$name.txt"; } 2> "$work/$name.time"
  local after; after="$(cpu_seconds "$server")"
  local result; result="$(grep '^RESULT' "$work/$name.txt")"
  echo "$result cpu_s=$(awk -v a="$after" -v b="$before" 'BEGIN {printf "%.2f", a - b}') wrk_cpu_s=$(awk 'END {printf "%.2f", $1 + $2}' "$work/$name.time") peak_rss_mib=$(peak_rss_mib "$server") rss_mib=$(rss_mib "$server")"
  grep '^SAMPLE' "$work/$name.txt" || true
}

exchange_body="grant_type=urn:ietf:params:oauth:grant-type:token-exchange&subject_token=$user_token&subject_token_type=urn:ietf:params:oauth:token-type:access_token&audience=$mcp_server"
IFS=, read -ra wanted <<<"$SCENARIOS"
: > "$work/results"
for name in "${wanted[@]}"; do
  case "$name" in
    discovery) run discovery LOAD_SCENARIO=get ;;
    introspect) run introspect LOAD_SCENARIO=form LOAD_AUTH="$basic" LOAD_BODY="token=$user_token" ;;
    client_credentials) run client_credentials LOAD_SCENARIO=form LOAD_AUTH="$basic" LOAD_BODY="grant_type=client_credentials" ;;
    exchange) run exchange LOAD_SCENARIO=form LOAD_AUTH="$basic" LOAD_BODY="$exchange_body" ;;
    introspect_beside_issuance) (
      CONNS=$((CONNS / 2)) THREADS=1
      env LOAD_SCENARIO=form LOAD_AUTH="$basic" LOAD_BODY="grant_type=client_credentials" LOAD_NAME=issuance_beside \
        LOAD_THREADS=1 wrk -t1 -c"$CONNS" -d"$((WARMUP + DUR + 1))s" --latency -s benches/load/scenario.lua "$base/token" > "$work/beside.txt" &
      issuer=$!
      run introspect_beside_issuance LOAD_SCENARIO=form LOAD_AUTH="$basic" LOAD_BODY="token=$user_token"
      wait "$issuer"; grep -E '^(RESULT|SAMPLE)' "$work/beside.txt" ) ;;
    code_flow|code_flow_oidc)
      authorize="$oauth_authorize"; [ "$name" = code_flow ] || authorize="$oidc_authorize"
      run "$name" LOAD_SCENARIO=code_flow LOAD_AUTH="$basic" LOAD_AUTHORIZE="$authorize" \
        LOAD_TOKEN_PATH=/token LOAD_REDIRECT="$redirect" LOAD_VERIFIER="$verifier" LOAD_HARVEST="$work/harvest-$name" ;;
    refresh|refresh_oidc)
      flow="code_flow${name#refresh}"
      cat "$work/harvest-$flow".* > "$work/$name-tokens" 2>/dev/null || true
      [ "$(wc -l < "$work/$name-tokens")" -ge "$CONNS" ] || { echo "$name needs $flow first (harvested refresh tokens)" >&2; exit 1; }
      run "$name" LOAD_SCENARIO=refresh LOAD_AUTH="$basic" LOAD_TOKENS="$work/$name-tokens" ;;
    *) echo "unknown scenario $name" >&2; exit 2 ;;
  esac | tee -a "$work/results"
done

echo
echo "warrant $(git rev-parse --short HEAD), $(date -u +%Y-%m-%d), $(nproc) cores, wrk -t$THREADS -c$CONNS -d${DUR}s"
awk '
  /^RESULT/ {
    delete f
    for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
    if (f["scenario"] == "discovery") floor = f["rps"]
    rows[++n] = sprintf("%-26s %10s %9s %9s %9s %8s %7s %7s %7s %9s %9s", f["scenario"], f["rps"], f["p50_ms"], f["p99_ms"], f["p999_ms"], f["non2xx"] + f["errors"], "RATIO" n, f["cpu_s"], f["wrk_cpu_s"], f["peak_rss_mib"], f["rss_mib"])
    rps[n] = f["rps"]; bad += f["non2xx"] + f["errors"]
  }
  END {
    printf "%-26s %10s %9s %9s %9s %8s %7s %7s %7s %9s %9s\n", "scenario", "req/s", "p50 ms", "p99 ms", "p99.9 ms", "errors", "/disc", "cpu s", "wrk s", "peak MiB", "rss MiB"
    for (i = 1; i <= n; i++) {
      ratio = floor ? sprintf("%.2f", rps[i] / floor) : "-"
      sub("RATIO" i, ratio, rows[i]); print rows[i]
    }
    if (bad) { print "FAILED: some requests had an unexpected status or a socket error"; exit 3 }
  }' "$work/results"

[ "$PEER" = 1 ] || exit 0
peers="${WARRANT_PEERS:-../shared/peers}"
if [ ! -x "$peers/load.sh" ] || ! command -v node >/dev/null; then
  echo "peer comparison skipped: no peer scripts at $peers, or no node"
  exit 0
fi
kill "$server"; wait "$server" 2>/dev/null || true; server=""  # the peer gets the cores alone too
cp -r "$peers" "$work/peers" && chmod -R u+w "$work/peers"
(cd "$work/peers/node-oidc" && ./install.sh >/dev/null 2>&1) || { echo "peer comparison skipped: node-oidc did not install"; exit 0; }
export RUN_ROOT="$work/peers/run"
"$work/peers/node-oidc/start.sh" > "$work/peer-start.log" 2>&1 \
  || { echo "peer comparison skipped: node-oidc did not start: $(tail -1 "$work/peer-start.log")"; exit 0; }
# shellcheck source=/dev/null
source "$work/peers/node-oidc/peer.env"
"$work/peers/load.sh" -d "$DUR" -c "$CONNS" -t "$THREADS" -w "$WARMUP" -s discovery,token,introspect,exchange \
  -r "$RESOURCE" -S "$SCOPE" -A "$EXCHANGE_AUDIENCE" -p "$(cat "$RUN_ROOT/node-oidc.pid")" -l node-oidc \
  "$BASE_URL" "$CLIENT_ID" "$CLIENT_SECRET" > "$work/peer.txt" 2>&1 || true
echo
echo "node-oidc-provider, same wrk settings (its tokens live in memory only; plaintext client secrets)"
awk '
  FNR == NR && /^RESULT/ { for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
                           ours[f["scenario"]] = f["rps"]; next }
  /^RESULT/ { for (i = 2; i <= NF; i++) { split($i, kv, "="); g[kv[1]] = kv[2] }
              n = split(g["label"], parts, "/"); name = parts[n]; if (name == "token") name = "client_credentials"
              printf "%-20s peer %10.1f req/s (p99 %s ms, non2xx %s)   warrant/peer %s\n", name, g["rps"], g["p99_ms"], g["non2xx"],
                     (name in ours && g["rps"] > 0) ? sprintf("%.2f", ours[name] / g["rps"]) : "-" }
' "$work/results" "$work/peer.txt"
