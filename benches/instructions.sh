#!/usr/bin/env bash
# Instructions per request, counted by valgrind's callgrind: repeatable to a fraction of a
# percent on this shared machine, where requests/s move by ±20 % from run to run. warrant
# (release build) runs under callgrind with instrumentation off; each scenario sends N
# requests first to warm up, then N counted ones on one keep-alive connection (curl), and
# prints the instructions per request and the functions that executed the most of them.
#
#   benches/instructions.sh [-n REQUESTS] [-s SCENARIOS]
#
#   -n  counted requests per scenario (default 1000)
#   -s  comma-separated, from discovery,introspect,client_credentials,exchange,refresh
#       (default all; refresh, the rotation of an OAuth grant without `openid`, presents a
#       refresh token harvested from a code flow beforehand in each request)
#   WARRANT_BIN=PATH: count that release binary instead of building the working tree
#
# Valgrind hides SHA-NI and AVX-512 from the program, so SHA-256 and RSA run their portable
# code here, and it counts a `rep stosb` (large memsets) one instruction per byte: compare
# builds with this, not with the CPU's real cost per instruction.
set -euo pipefail
cd "$(dirname "$0")/.."

N=1000 SCENARIOS="discovery,introspect,client_credentials,exchange,refresh"
while getopts "n:s:h" o; do
  case "$o" in n) N="$OPTARG" ;; s) SCENARIOS="$OPTARG" ;; *) sed -n '2,17p' "$0"; exit 2 ;; esac
done
command -v valgrind >/dev/null || { apt-get update -qq && apt-get install -y -qq valgrind >/dev/null; }

work="$(mktemp -d)"
server=""
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

# WARRANT_BIN counts a given build instead (to compare two builds).
if [ -z "${WARRANT_BIN:-}" ]; then
  cargo build --release --quiet
fi
real_bin="${WARRANT_BIN:-$(pwd)/${CARGO_TARGET_DIR:-target}/release/warrant}"
build="${WARRANT_BIN:-$(git rev-parse --short HEAD)}"
printf '#!/bin/sh\nexec valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=%s/callgrind.out "%s" "$@" 2>%s/valgrind.log\n' \
  "$work" "$real_bin" "$work" > "$work/warrant"
chmod +x "$work/warrant"
export WARRANT_BIN="$work/warrant"
source benches/load/common.sh

gateway="http://localhost:8003" mcp_server="http://localhost:8001"
start_warrant "$gateway" "$mcp_server"
register_client
user_token="$(user_token "$gateway")"

# requests COUNT PATH [BODY] [TOKENS]: a curl config sending COUNT requests (POSTs with BODY
# and the client's credentials when BODY is given) on one connection, printing each status.
# With TOKENS (a file), BODY's `%s` is each request's own line of it, in order.
requests() {
  local i body="${3:-}"
  for ((i = 0; i < $1; i++)); do
    [ "$i" = 0 ] || echo next
    printf 'url = "%s%s"\noutput = "/dev/null"\nwrite-out = "%%{http_code}\\n"\n' "$base" "$2"
    if [ -n "${4:-}" ]; then IFS= read -r token; body="${3//%s/$token}"; fi
    if [ -n "$body" ]; then printf 'header = "authorization: %s"\ndata = "%s"\n' "$basic" "$body"; fi
  done < "${4:-/dev/null}"
}

# measure NAME PATH [BODY] [TOKENS]: warm up, then count N requests; prints instructions per
# request. With TOKENS, the warm-up takes its first N lines and the counted requests the next N.
measure() {
  local tokens="${4:-}"
  if [ -n "$tokens" ]; then
    head -n "$N" "$tokens" > "$work/warmup.tokens"
    sed -n "$((N + 1)),$((2 * N))p" "$tokens" > "$work/counted.tokens"
    requests "$N" "$2" "$3" "$work/warmup.tokens" > "$work/warmup.cfg"
    requests "$N" "$2" "$3" "$work/counted.tokens" > "$work/counted.cfg"
  else
    requests "$N" "$2" "${3:-}" > "$work/warmup.cfg"
    cp "$work/warmup.cfg" "$work/counted.cfg"
  fi
  curl -s -K "$work/warmup.cfg" > "$work/warmup.status"
  callgrind_control -z "$server" >/dev/null 2>&1
  callgrind_control -i on "$server" >/dev/null 2>&1
  curl -s -K "$work/counted.cfg" > "$work/counted.status"
  callgrind_control -i off "$server" >/dev/null 2>&1
  callgrind_control -d "$1" "$server" >/dev/null 2>&1
  local bad; bad="$(sort "$work/warmup.status" "$work/counted.status" | grep -cv '^200$' || true)"
  local dump; dump="$(grep -l "^desc: Trigger: dump $1\$" "$work"/callgrind.out.* | tail -1)"
  local total; total="$(sed -n 's/^totals: //p' "$dump")"
  echo "RESULT scenario=$1 requests=$N instructions_per_request=$((total / N)) non200=$bad"
  callgrind_annotate --inclusive=no "$dump" 2>/dev/null | grep -E '^ *[0-9,]+ \(' | sed -n '2,6p' \
    | sed -E 's/ \[[^]]*\]$//; s/^/    /'
  [ "$bad" = 0 ] || { echo "FAILED: $bad requests had another status than 200"; exit 3; }
}

# harvest_refresh_tokens COUNT: at least COUNT refresh tokens of OAuth grants (no `openid`),
# each from its own code flow, in $work/refresh-tokens.
harvest_refresh_tokens() {
  : > "$work/refresh-tokens"
  while [ "$(wc -l < "$work/refresh-tokens")" -lt "$1" ]; do
    harvest "$work/harvest" "$(authorize_path "$gateway" offline_access)" 5 1 8
    cat "$work"/harvest.* >> "$work/refresh-tokens"
  done
}

exchange_body="grant_type=urn:ietf:params:oauth:grant-type:token-exchange&subject_token=$user_token&subject_token_type=urn:ietf:params:oauth:token-type:access_token&audience=$mcp_server"
IFS=, read -ra wanted <<<"$SCENARIOS"
for name in "${wanted[@]}"; do
  case "$name" in
    discovery) measure discovery /.well-known/openid-configuration ;;
    introspect) measure introspect /introspect "token=$user_token" ;;
    client_credentials) measure client_credentials /token "grant_type=client_credentials" ;;
    exchange) measure exchange /token "$exchange_body" ;;
    refresh)
      harvest_refresh_tokens "$((2 * N))"
      measure refresh /token "grant_type=refresh_token&refresh_token=%s" "$work/refresh-tokens" ;;
    *) echo "unknown scenario $name" >&2; exit 2 ;;
  esac
done
echo "warrant $build, $(date -u +%Y-%m-%d), callgrind, $N counted requests per scenario"
