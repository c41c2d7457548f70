#!/usr/bin/env bash
# The gateway benchmark: MCP tool calls per second through `warrant gateway`, with its
# exchange cache warm and cold, against the same call made directly to the MCP server
# (`warrant demo-server`), all in release mode on loopback, driven by wrk. Prints one RESULT
# line per scenario, then a table with what the gateway adds to the direct call's latency and
# how many exchanges warrant recorded during each scenario (read from its log). Exits 3 if
# any call failed.
#
#   benches/gateway.sh [-d SECS] [-c CONNS] [-t THREADS] [-w WARMUP]
#
#   -d  measured seconds per scenario (default 10)    -c  connections (default 64)
#   -t  wrk threads (default 2)                       -w  warm-up seconds (default 2)
#
# Scenarios (each a `tools/call` of multiply in one of 8 prepared MCP sessions):
#   direct        to the server, with a token addressed to it: the server introspects it
#   gateway_warm  through the gateway, always the same client token: the gateway introspects
#                 it and forwards with the cached exchanged token
#   gateway_cold  through the gateway, every call with a client token never seen before: the
#                 gateway introspects it and exchanges it (a durable append at warrant)
#                 before forwarding. The tokens come from code flows run beforehand (2×SECS).
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=10 CONNS=64 THREADS=2 WARMUP=2
while getopts "d:c:t:w:h" o; do
  case "$o" in
    d) DUR="$OPTARG" ;; c) CONNS="$OPTARG" ;; t) THREADS="$OPTARG" ;; w) WARMUP="$OPTARG" ;;
    *) sed -n '2,20p' "$0"; exit 2 ;;
  esac
done

work="$(mktemp -d)"
server="" pids=()
cleanup() { kill "$server" "${pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
# shellcheck source=benches/load/common.sh
source benches/load/common.sh

# The MCP server and the gateway take free ports, so any resource on loopback is allowed.
start_warrant "*"
register_client
"$bin" demo-server --auth-server-url "$base" --port 0 --log warn > "$work/server.out" &
pids+=($!)
mcp="$(listening_url "$work/server.out")" mcp_resource="http://localhost:${mcp##*:}"
"$bin" gateway --auth-server-url "$base" --mcp-server-url "$mcp_resource" --port 0 --log warn > "$work/gateway.out" &
pids+=($!)
gateway="$(listening_url "$work/gateway.out")" gateway_resource="http://localhost:${gateway##*:}"

client_token="$(user_token "$gateway_resource")"
server_token="$(curl -sf "$base/token" -H "authorization: $basic" -d "grant_type=urn:ietf:params:oauth:grant-type:token-exchange&subject_token=$client_token&subject_token_type=urn:ietf:params:oauth:token-type:access_token&audience=$mcp_resource" | jq -r .access_token)"

# MCP sessions, opened directly at the server (the gateway forwards Mcp-Session-Id as is).
mcp_post() { # session body: prints the response headers and body
  curl -s -D - "$mcp/mcp" -H "authorization: Bearer $server_token" -H 'content-type: application/json' \
    -H 'accept: application/json, text/event-stream' ${1:+-H "mcp-session-id: $1"} -d "$2"
}
sessions=""
for _ in 1 2 3 4 5 6 7 8; do
  id="$(mcp_post "" '{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}' \
    | tr -d '\r' | sed -n 's/^mcp-session-id: //Ip')"
  [ -n "$id" ] || { echo "the MCP server opened no session" >&2; exit 1; }
  mcp_post "$id" '{"jsonrpc":"2.0","method":"notifications/initialized"}' > /dev/null
  sessions="$sessions $id"
done
call='{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"multiply","arguments":{"a":6,"b":7}}}'

run() { # name url measured-seconds warm-up-seconds wrk-env...
  local name="$1" url="$2" secs="$3" warm="$4"; shift 4
  local env=(LOAD_SCENARIO=mcp_call LOAD_NAME="$name" LOAD_THREADS="$THREADS" LOAD_SESSIONS="$sessions"
             LOAD_BODY="$call" LOAD_EXPECT='"text":"42"' "$@")
  [ "$warm" = 0 ] || env "${env[@]}" wrk -t"$THREADS" -c"$CONNS" -d"${warm}s" -s benches/load/scenario.lua "$url/mcp" > /dev/null
  local before; before="$(exchanges)"
  env "${env[@]}" wrk -t"$THREADS" -c"$CONNS" -d"${secs}s" --latency -s benches/load/scenario.lua "$url/mcp" > "$work/$name.txt"
  echo "$(grep '^RESULT' "$work/$name.txt") exchanges=$(($(exchanges) - before))"
  grep '^SAMPLE' "$work/$name.txt" || true
}
# The token exchanges warrant has recorded so far (read from its log while it serves).
exchanges() { "$bin" log export --dir "$work/data" --type token_exchanged | wc -l; }

{
  run direct "$mcp" "$DUR" "$WARMUP" LOAD_AUTH="Bearer $server_token"
  run gateway_warm "$gateway" "$DUR" "$WARMUP" LOAD_AUTH="Bearer $client_token"
  # Fresh client tokens, harvested from code flows for the gateway; each is used once.
  harvest "$work/fresh" "$(authorize_path "$gateway_resource")" "$((2 * DUR))" "$THREADS" "$CONNS" access_token
  cat "$work"/fresh.* > "$work/fresh-tokens"
  echo "fresh client tokens: $(wc -l < "$work/fresh-tokens")"
  run gateway_cold "$gateway" "$DUR" 0 LOAD_TOKENS="$work/fresh-tokens"
} | tee "$work/results"

echo
echo "warrant $(git rev-parse --short HEAD), $(date -u +%Y-%m-%d), $(nproc) cores, wrk -t$THREADS -c$CONNS -d${DUR}s, MCP tools/call"
awk '
  /^RESULT/ {
    for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
    name[++n] = f["scenario"]; rps[n] = f["rps"]; p50[n] = f["p50_ms"]; p99[n] = f["p99_ms"]
    bad[n] = f["non2xx"] + f["errors"]; failed += bad[n]; ex[n] = f["exchanges"]; calls[n] = f["requests"]
  }
  END {
    printf "%-14s %10s %9s %9s %8s %13s %13s %10s %10s\n", "scenario", "calls/s", "p50 ms", "p99 ms", "errors", "added p50 ms", "added p99 ms", "calls", "exchanges"
    for (i = 1; i <= n; i++)
      printf "%-14s %10s %9s %9s %8s %13s %13s %10s %10s\n", name[i], rps[i], p50[i], p99[i], bad[i],
             i == 1 ? "-" : sprintf("%.3f", p50[i] - p50[1]), i == 1 ? "-" : sprintf("%.3f", p99[i] - p99[1]), calls[i], ex[i]
    if (failed) { print "FAILED: some calls had an unexpected answer or a socket error"; exit 3 }
  }' "$work/results"
