"""The MCP gateway pattern with the official Python MCP SDK, at the 1.x version the seed's
Python programs pin (mcp 1.12): its OAuth client discovers the gateway from the 401,
registers with warrant, runs the code flow with PKCE and `resource`, and calls tools on the
rmcp demo server through `warrant gateway`. Also checks warrant's metadata and registration
answers against the SDK's own models, and a registration asking only for client credentials
or only for token exchange, as the seed's server and gateway send them.
"""

import asyncio
import base64
import hashlib
import json
import os
import socket
import subprocess
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
import requests
from mcp.client.auth import OAuthClientProvider, TokenStorage
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamablehttp_client
from mcp.shared.auth import OAuthClientMetadata, OAuthMetadata

EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(args, ready):
    process = subprocess.Popen([os.environ["WARRANT_BIN"], *args], stdout=subprocess.PIPE, text=True)
    line = process.stdout.readline().strip()
    assert line.startswith(ready), line
    return process


@pytest.fixture
def chain(tmp_path):
    ports = {name: free_port() for name in ("warrant", "server", "gateway")}
    urls = {name: f"http://localhost:{port}" for name, port in ports.items()}
    grants = tmp_path / "grants.json"
    grants.write_text(json.dumps({"grants": [{"src": ["*"], "dst": ["*"], "app": {
        "tailscale.com/cap/tsidp": [{"users": ["*"], "resources": [urls["gateway"], urls["server"]],
                                     "allow_dcr": True}]}}]}))
    processes = [start(["serve", "--port", str(ports["warrant"]), "--log", "warn", "--dir",
                        str(tmp_path / "data"), "--enable-sts", "--grants", str(grants)],
                       "warrant listening on ")]
    processes.append(start(["demo-server", "--port", str(ports["server"]), "--log", "warn",
                            "--auth-server-url", urls["warrant"]], "demo-server listening on "))
    processes.append(start(["gateway", "--port", str(ports["gateway"]), "--log", "warn",
                            "--auth-server-url", urls["warrant"], "--mcp-server-url", urls["server"]],
                           "gateway listening on "))
    yield urls
    for process in processes:
        process.terminate()
        assert process.wait(timeout=10) == 0


class MemoryStorage(TokenStorage):
    def __init__(self):
        self.tokens = None
        self.client = None

    async def get_tokens(self):
        return self.tokens

    async def set_tokens(self, tokens):
        self.tokens = tokens

    async def get_client_info(self):
        return self.client

    async def set_client_info(self, client_info):
        self.client = client_info


async def run_client(mcp_url):
    """The SDK's OAuth client, headless: the 'browser' follows /authorize once and hands the
    redirect's code and state back, as a user's browser approved by warrant would."""
    redirected = {}

    async def redirect_handler(authorization_url):
        async with httpx.AsyncClient(follow_redirects=False) as browser:
            response = await browser.get(authorization_url)
        assert response.status_code == 302, response.text
        redirected["location"] = response.headers["location"]

    async def callback_handler():
        query = parse_qs(urlparse(redirected["location"]).query)
        assert "error" not in query, query
        return query["code"][0], query.get("state", [None])[0]

    provider = OAuthClientProvider(
        server_url=mcp_url,
        client_metadata=OAuthClientMetadata(
            client_name="python sdk client",
            redirect_uris=["http://localhost:3030/callback"],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="client_secret_post",
            scope="openid",
        ),
        storage=MemoryStorage(),
        redirect_handler=redirect_handler,
        callback_handler=callback_handler,
    )
    async with streamablehttp_client(mcp_url, auth=provider) as (read, write, _):
        async with ClientSession(read, write) as session:
            await session.initialize()
            tools = await session.list_tools()
            details = await session.call_tool("oauth_details", {})
            product = await session.call_tool("multiply", {"a": 6, "b": 7})
    return ([tool.name for tool in tools.tools], json.loads(details.content[0].text),
            product.content[0].text, redirected["location"])


def test_the_python_sdk_client_runs_the_whole_chain(chain):
    tools, details, product, location = asyncio.run(run_client(f"{chain['gateway']}/mcp"))
    assert sorted(tools) == ["multiply", "oauth_details"]
    assert product == "42"
    # One redirect straight back to the client with code, state and iss.
    assert location.startswith("http://localhost:3030/callback?code=")
    assert parse_qs(urlparse(location).query)["iss"] == [chain["warrant"]]
    # The server saw a token exchanged for it, naming the gateway as actor.
    assert details["audience"] == [chain["server"]]
    assert details["actors"] and details["act"]["sub"] == details["actors"][0]
    assert "openid" in details["scope"].split()


def test_metadata_registration_exchange_and_introspection_as_the_seed_programs_send_them(chain):
    base = chain["warrant"]
    document = requests.get(f"{base}/.well-known/oauth-authorization-server").json()
    metadata = OAuthMetadata.model_validate(document)
    assert str(metadata.issuer).rstrip("/") == base
    for absent in ("token_endpoint_auth_signing_alg_values_supported",
                   "revocation_endpoint_auth_signing_alg_values_supported",
                   "introspection_endpoint_auth_signing_alg_values_supported"):
        assert absent not in document
    assert set(document["response_modes_supported"]) <= {"query", "fragment", "form_post"}

    server_request = {  # the seed server's registration: client credentials, for introspection
        "client_name": "MCP Auth Server-x1", "redirect_uris": [f"{chain['server']}/oauth/callback"],
        "grant_types": ["client_credentials"], "token_endpoint_auth_method": "client_secret_post",
        "application_type": "web"}
    gateway_request = {  # the seed gateway's: token exchange only
        "client_name": "MCP Gateway (host) 2026-11-26T10:00:00", "grant_types": [EXCHANGE],
        "token_endpoint_auth_method": "client_secret_post",
        "redirect_uris": [f"{chain['gateway']}/callback"], "scope": "openid profile email"}
    registered = {}
    for name, request in (("server", server_request), ("gateway", gateway_request)):
        response = requests.post(document["registration_endpoint"], json=request)
        assert response.status_code == 201, response.text
        answer = response.json()
        assert answer["client_secret"]
        for member in ("grant_types", "token_endpoint_auth_method", "redirect_uris"):
            assert answer[member] == request[member]
        assert "response_types" not in answer
        registered[name] = answer

    # A user's token for the gateway, then the exchange exactly as the seed gateway sends it:
    # form credentials, `resource` and `audience` both the server URL, the token's own scope.
    app = requests.post(document["registration_endpoint"], json={
        "redirect_uris": ["http://localhost:3030/callback"], "token_endpoint_auth_method": "client_secret_post",
        "grant_types": ["authorization_code"], "scope": "openid profile email"}).json()
    verifier = "v" * 50
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    redirect = requests.get(document["authorization_endpoint"], allow_redirects=False, params={
        "response_type": "code", "client_id": app["client_id"], "redirect_uri": "http://localhost:3030/callback",
        "scope": "openid profile email", "code_challenge": challenge, "code_challenge_method": "S256",
        "resource": chain["gateway"], "state": "s"})
    code = parse_qs(urlparse(redirect.headers["location"]).query)["code"][0]
    user = requests.post(document["token_endpoint"], data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": "http://localhost:3030/callback",
        "code_verifier": verifier, "client_id": app["client_id"], "client_secret": app["client_secret"]}).json()
    exchanged = requests.post(document["token_endpoint"], data={
        "grant_type": EXCHANGE, "subject_token": user["access_token"],
        "subject_token_type": "urn:ietf:params:oauth:token-type:access_token",
        "requested_token_type": "urn:ietf:params:oauth:token-type:access_token",
        "resource": chain["server"], "audience": chain["server"], "scope": user["scope"],
        "client_id": registered["gateway"]["client_id"], "client_secret": registered["gateway"]["client_secret"]})
    assert exchanged.status_code == 200, exchanged.text
    assert exchanged.json()["issued_token_type"] == "urn:ietf:params:oauth:token-type:access_token"
    # Introspection as the seed server does it: form credentials, `aud` holding its URL as
    # spelled, `scope` holding openid.
    seen = requests.post(document["introspection_endpoint"], data={
        "token": exchanged.json()["access_token"], "client_id": registered["server"]["client_id"],
        "client_secret": registered["server"]["client_secret"]}).json()
    assert seen["active"] is True
    assert chain["server"] in seen["aud"]
    assert "openid" in seen["scope"].split()
    assert seen["act"]["sub"] == registered["gateway"]["client_id"]
