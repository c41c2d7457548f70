#!/usr/bin/env bash
# Runs the seed's own Python programs (tsidp's examples/mcp-gateway: server, gateway and
# client), unmodified, against warrant, the way its README runs them against tsidp:
#
#   scripts/seed-pattern.sh SEED_DIR [seed|warrant]
#
# SEED_DIR is a checkout of tsidp's examples/mcp-gateway (they are not part of this
# repository). The second argument picks the gateway: the seed's Python one (default) or
# `warrant gateway`. Their fixed ports must be free: 8001 (server), 8003 (gateway) and 3000
# (the client's OAuth callback). A headless "browser" stands in for the person: it loads the
# authorization URL and follows warrant's redirect to the client's callback.
#
# It exits 0 only if the client listed the tools and called oauth_details and multiply
# through the gateway, the server saw a token addressed to itself, and warrant's log holds
# the exchanges made by the gateway's client.
set -euo pipefail
seed="$(cd "${1:?usage: $0 SEED_DIR [seed|warrant]}" && pwd)"
gateway="${2:-seed}"
cd "$(dirname "$0")/.."
target="$(pwd)/${CARGO_TARGET_DIR:-target}"
cargo build --release --quiet
warrant="$target/release/warrant"

venv="$target/seed-venv"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
# The seed pins mcp 1.12 (2.x renamed what it imports); pydantic 2.12 breaks mcp 1.12.
"$venv/bin/pip" install --quiet --disable-pip-version-check mcp==1.12.4 pydantic==2.11.7 \
  httpx==0.28.1 starlette==0.47.2 uvicorn==0.35.0 "sse-starlette<3" click rich structlog \
  python-multipart

run="$(mktemp -d)"
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; }
trap cleanup EXIT
wait_for() { for _ in $(seq 100); do curl -s -o /dev/null "$1" && return; sleep 0.1; done; echo "no answer at $1" >&2; exit 1; }

cat > "$run/grants.json" <<'EOF'
{"grants":[{"src":["*"],"dst":["*"],"app":{"tailscale.com/cap/tsidp":[{"users":["*"],
 "resources":["http://localhost:8003","http://localhost:8001"],"allow_dcr":true}]}}]}
EOF
"$warrant" serve --dir "$run/data" --port 9411 --grants "$run/grants.json" --enable-sts \
  > "$run/warrant.log" 2>&1 & pids+=($!)
wait_for http://localhost:9411/.well-known/openid-configuration
auth=http://localhost:9411/

(cd "$seed/server" && PYTHONPATH=src exec "$venv/bin/python" -m mcp_auth_server \
  --auth-server-url "$auth") > "$run/server.log" 2>&1 & pids+=($!)
wait_for http://localhost:8001/.well-known/oauth-protected-resource
if [ "$gateway" = warrant ]; then
  "$warrant" gateway --auth-server-url "$auth" --mcp-server-url http://localhost:8001 \
    > "$run/gateway.log" 2>&1 & pids+=($!)
else
  (cd "$seed/gateway" && exec "$venv/bin/python" -c \
    'from mcp_auth_gateway.main import cli; cli()' --auth-server-url "$auth" \
    --mcp-server-url http://localhost:8001) > "$run/gateway.log" 2>&1 & pids+=($!)
fi
wait_for http://localhost:8003/.well-known/oauth-authorization-server

# Like a real browser, it returns at once and does its work in the background.
cat > "$run/browser" <<'EOF'
#!/bin/sh
( loc=$(curl -s -o /dev/null -w '%{redirect_url}' "$1")
  for _ in $(seq 20); do curl -sf -o /dev/null "$loc" && exit 0; sleep 0.2; done ) &
EOF
chmod +x "$run/browser"
(cd "$seed/client" && rm -rf .oauth-cache && printf '%s\n' list 'call oauth_details' \
  'call multiply {"a":6,"b":7}' quit | BROWSER="$run/browser" timeout 60 \
  "$venv/bin/python" -c 'from mcp_oauth_client.main import main; main()' \
  http://localhost:8003/mcp) > "$run/client.log" 2>&1

fail() { echo "FAILED: $1 (logs in $run)" >&2; exit 1; }
grep -q oauth_details "$run/client.log" || fail "the client listed no tools"
grep -q '"resource": "http://localhost:8001"' "$run/client.log" || fail "no oauth_details result"
grep -q '"result": 42.0' "$run/client.log" || fail "no multiply result"
grep -q "Token audience: \['http://localhost:8001'\]" "$run/server.log" ||
  fail "the server saw no token addressed to it"
exchanges=$("$warrant" log export --dir "$run/data" --type token_exchanged | wc -l)
[ "$exchanges" -ge 1 ] || fail "warrant recorded no exchange"
echo "seed client -> $gateway gateway -> seed server against warrant: ok" \
  "($exchanges exchanges recorded; logs in $run)"
