"""warrant driven by a third-party OAuth client library (Authlib), not by our own code.

Each test starts a real `warrant serve` (the binary in WARRANT_BIN) on a free loopback port.
"""

import json
import os
import subprocess

import pytest
import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from joserfc import jwt
from joserfc.jwk import KeySet

GATEWAY = "http://localhost:8003"
SERVER = "http://localhost:8001"
EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS = "urn:ietf:params:oauth:token-type:access_token"
REDIRECT = "http://127.0.0.1:9/callback"


@pytest.fixture
def warrant(tmp_path):
    grants = tmp_path / "grants.json"
    grants.write_text(json.dumps({"grants": [{"src": ["*"], "dst": ["*"], "app": {
        "tailscale.com/cap/tsidp": [{"users": ["*"], "resources": [GATEWAY, SERVER], "allow_dcr": True}]}}]}))
    process = subprocess.Popen(
        [os.environ["WARRANT_BIN"], "serve", "--port", "0", "--log", "warn",
         "--dir", str(tmp_path / "data"), "--enable-sts", "--grants", str(grants)],
        stdout=subprocess.PIPE, text=True)
    line = process.stdout.readline().strip()
    assert line.startswith("warrant listening on "), line
    yield line.removeprefix("warrant listening on ")
    process.terminate()
    assert process.wait(timeout=10) == 0


def discover(base):
    return requests.get(f"{base}/.well-known/openid-configuration").json()


def register(base, **metadata):
    response = requests.post(discover(base)["registration_endpoint"], json=metadata)
    assert response.status_code == 201, response.text
    return response.json()


def login(base, client, scope="openid offline_access", resource=GATEWAY):
    """The code flow with PKCE as Authlib runs it; the local user is approved without a prompt."""
    meta = discover(base)
    session = OAuth2Session(client["client_id"], client["client_secret"], scope=scope,
                            redirect_uri=REDIRECT, code_challenge_method="S256")
    verifier = generate_token(48)
    uri, state = session.create_authorization_url(
        meta["authorization_endpoint"], code_verifier=verifier, nonce="n-42", resource=resource)
    redirect = requests.get(uri, allow_redirects=False)
    assert redirect.status_code == 302, redirect.text
    token = session.fetch_token(meta["token_endpoint"],
                                authorization_response=redirect.headers["Location"],
                                code_verifier=verifier)
    return session, token


def test_code_flow_id_token_refresh_and_revocation(warrant):
    meta = discover(warrant)
    client = register(warrant, redirect_uris=[REDIRECT],
                      grant_types=["authorization_code", "refresh_token"])
    session, token = login(warrant, client)
    assert token["token_type"] == "Bearer"

    keys = KeySet.import_key_set(requests.get(meta["jwks_uri"]).json())
    id_token = jwt.decode(token["id_token"], keys, algorithms=["RS256"])
    jwt.JWTClaimsRegistry(iss={"essential": True, "value": meta["issuer"]},
                          aud={"essential": True, "value": client["client_id"]},
                          nonce={"essential": True, "value": "n-42"}).validate(id_token.claims)
    claims = id_token.claims
    access_token = jwt.decode(token["access_token"], keys, algorithms=["EdDSA"])
    assert access_token.header["typ"] == "at+jwt"
    jwt.JWTClaimsRegistry(exp={"essential": True}).validate(access_token.claims)
    access = access_token.claims
    assert access["aud"] == [GATEWAY]
    assert access["sub"] == claims["sub"]

    userinfo = session.get(meta["userinfo_endpoint"]).json()
    assert userinfo["sub"] == claims["sub"]

    refreshed = session.refresh_token(meta["token_endpoint"], refresh_token=token["refresh_token"])
    assert refreshed["refresh_token"] != token["refresh_token"]
    reused = requests.post(meta["token_endpoint"], auth=(client["client_id"], client["client_secret"]),
                           data={"grant_type": "refresh_token", "refresh_token": token["refresh_token"]})
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"

    inspect = lambda t: requests.post(meta["introspection_endpoint"], data={"token": t},
                                      auth=(client["client_id"], client["client_secret"])).json()
    assert inspect(refreshed["access_token"])["active"] is False, "reuse revoked the family"


def test_client_credentials_and_revocation(warrant):
    meta = discover(warrant)
    client = register(warrant, grant_types=["client_credentials"], scope="api:read api:write",
                      token_endpoint_auth_method="client_secret_post")
    session = OAuth2Session(client["client_id"], client["client_secret"],
                            token_endpoint_auth_method="client_secret_post", scope="api:read")
    token = session.fetch_token(meta["token_endpoint"], grant_type="client_credentials")
    assert token["scope"] == "api:read"
    auth = (client["client_id"], client["client_secret"])
    introspected = requests.post(meta["introspection_endpoint"], data={"token": token["access_token"]}, auth=auth).json()
    assert introspected["active"] is True and introspected["client_id"] == client["client_id"]
    session.revoke_token(meta["revocation_endpoint"], token=token["access_token"])
    gone = requests.post(meta["introspection_endpoint"], data={"token": token["access_token"]}, auth=auth).json()
    assert gone == {"active": False}


def test_token_exchange_as_the_python_mcp_gateway_sends_it(warrant):
    meta = discover(warrant)
    assert EXCHANGE in meta["grant_types_supported"]
    user_client = register(warrant, redirect_uris=[REDIRECT], grant_types=["authorization_code"])
    _, token = login(warrant, user_client)
    gateway = register(warrant, grant_types=[EXCHANGE], token_endpoint_auth_method="client_secret_post")
    assert gateway["token_endpoint_auth_method"] == "client_secret_post"
    exchanged = requests.post(meta["token_endpoint"], data={
        "grant_type": EXCHANGE, "client_id": gateway["client_id"], "client_secret": gateway["client_secret"],
        "subject_token": token["access_token"], "subject_token_type": ACCESS,
        "audience": SERVER, "resource": SERVER}).json()
    assert exchanged["issued_token_type"] == ACCESS, exchanged
    server = register(warrant, grant_types=["client_credentials"], token_endpoint_auth_method="client_secret_post")
    introspected = requests.post(meta["introspection_endpoint"], data={
        "token": exchanged["access_token"], "client_id": server["client_id"],
        "client_secret": server["client_secret"]}).json()
    assert introspected["active"] is True
    assert SERVER in introspected["aud"]
    assert "openid" in introspected["scope"].split()
    assert introspected["act"]["sub"] == gateway["client_id"]
