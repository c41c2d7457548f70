//! `POST /token` (RFC 6749 §3.2): authorization code, refresh token and client credentials,
//! each grant type its own function.

use super::client_auth::{AuthenticatedClient, authenticate};
use super::error::{OAuthError, no_store};
use super::form::{self, Form};
use crate::actors::grant::{Grant, GrantCommand, GrantError, IssuedToken};
use crate::actors::session::{SessionCommand, SessionError};
use crate::actors::{CommandContext, CommandError, Committed, Loaded};
use crate::clock::Timestamp;
use crate::events::{
    AuthorizationCodeRedeemed, Event, GrantCreated, GrantOrigin, RefreshTokenIssued,
    RevocationReason, TokenKind,
};
use crate::identity::Profile;
use crate::secret::{self, SecretHash};
use crate::server::Warrant;
use crate::tokens::access::{self, ACCESS_TOKEN_SECONDS, AccessGrant};
use crate::tokens::id_token;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;
use uuid::Uuid;

/// Dispatches on `grant_type`.
pub async fn token(
    warrant: web::Data<Warrant>,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, OAuthError> {
    let form = form::read(&request, payload, warrant.config.max_body).await?;
    let grant_type = form.required("grant_type")?;
    let client = authenticate(&request, &form, &warrant.models.read().clients)?;
    match grant_type {
        "client_credentials" => client_credentials(&warrant, &form, client).await,
        "authorization_code" => authorization_code(&warrant, &form, client).await,
        "refresh_token" => refresh_token(&warrant, &form, client).await,
        super::exchange::GRANT_TYPE if warrant.config.enable_sts => {
            super::exchange::exchange(&warrant, &form, client).await
        }
        other => Err(OAuthError::UnsupportedGrantType(format!(
            "grant type `{other}` is not supported"
        ))),
    }
}

/// The scope to grant: what was asked for, which must lie within what the client registered
/// (when it registered a scope); by default what it registered.
pub fn granted_scope(
    client: &AuthenticatedClient,
    requested: Option<&str>,
) -> Result<String, OAuthError> {
    let registered = client.view.metadata.scope.as_deref();
    let Some(requested) = requested else {
        return Ok(registered.unwrap_or_default().to_owned());
    };
    if let Some(registered) = registered {
        scopes_within(requested, registered, "registered for this client")?;
    }
    Ok(requested.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// RFC 6749 §3.3: every scope of `requested` must be one of `allowed` (both space-separated);
/// `what` says what `allowed` is, for the `invalid_scope` description.
pub(super) fn scopes_within(requested: &str, allowed: &str, what: &str) -> Result<(), OAuthError> {
    match requested.split(' ').find(|s| !has_scope(allowed, s)) {
        Some(extra) => Err(OAuthError::InvalidScope(format!(
            "scope `{extra}` is not {what}"
        ))),
        None => Ok(()),
    }
}

/// RFC 8707 §2: each `resource` is an absolute URI without a fragment.
pub fn resources(form: &Form) -> Result<Vec<String>, OAuthError> {
    form.all("resource")
        .into_iter()
        .map(|r| {
            let scheme_ok = r.split_once("://").is_some_and(|(s, rest)| {
                !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric()) && !rest.is_empty()
            });
            if !scheme_ok || r.contains('#') {
                return Err(OAuthError::InvalidTarget(format!(
                    "resource `{r}` is not an absolute URI without a fragment"
                )));
            }
            Ok(r.to_owned())
        })
        .collect()
}

/// RFC 6749 §4.4: a confidential client asks for a token for itself.
async fn client_credentials(
    warrant: &Warrant,
    form: &Form,
    client: AuthenticatedClient,
) -> Result<HttpResponse, OAuthError> {
    if !client.confidential {
        return Err(OAuthError::UnauthorizedClient(
            "public clients cannot use client_credentials".into(),
        ));
    }
    if !client
        .view
        .metadata
        .grant_types
        .iter()
        .any(|g| g == "client_credentials")
    {
        return Err(OAuthError::UnauthorizedClient(
            "this client did not register the client_credentials grant".into(),
        ));
    }
    let scope = granted_scope(&client, form.get("scope"))?;
    let audience = resources(form)?;
    let now = Timestamp::now();
    let grant_id = new_grant_id(now);
    let minted = access::issue(
        &warrant.signing_keys(),
        &warrant.config.issuer,
        &AccessGrant {
            grant_id,
            client_id: &client.client_id,
            subject: None,
            scope: &scope,
            audience: &audience,
        },
        now,
    );
    let command = GrantCommand::Create {
        created: Box::new(GrantCreated {
            grant_id,
            client_id: client.client_id.clone(),
            subject: None,
            profile: None,
            scope: scope.clone(),
            resources: audience.clone(),
            origin: GrantOrigin::ClientCredentials,
        }),
        access: minted.event,
        refresh: None,
    };
    let committed = run_grant(warrant, grant_id, command, now, None).await?;
    respond(warrant, &committed, Issued::access(minted.token, &scope)).await
}

/// How long refresh tokens live, in seconds.
pub const REFRESH_TOKEN_SECONDS: i64 = 30 * 86_400;

/// What a token response hands out.
pub(super) struct Issued<'a> {
    /// The access token.
    pub access: String,
    /// Its remaining lifetime in seconds.
    pub expires_in: i64,
    /// Its scopes.
    pub scope: &'a str,
    /// A refresh token, when the grant has one.
    pub refresh: Option<String>,
    /// An ID token, for `openid`.
    pub id_token: Option<String>,
    /// RFC 8693 §2.2.1 `issued_token_type`, for exchanges.
    pub issued_token_type: Option<&'static str>,
}

impl<'a> Issued<'a> {
    /// A freshly issued access token with its full lifetime.
    fn access(access: String, scope: &'a str) -> Issued<'a> {
        Issued {
            access,
            expires_in: ACCESS_TOKEN_SECONDS,
            scope,
            refresh: None,
            id_token: None,
            issued_token_type: None,
        }
    }
}

/// Runs a grant command, from `known` (the grant as the token model knows it, see
/// [`super::grant_in_use`]) when given; a refusal is `invalid_grant` (RFC 6749 §5.2).
pub(super) async fn run_grant(
    warrant: &Warrant,
    grant_id: Uuid,
    command: GrantCommand,
    now: Timestamp,
    known: Option<Loaded<Grant>>,
) -> Result<Committed, OAuthError> {
    let (grants, id, context) = (
        &warrant.actors.grants,
        grant_id.to_string(),
        CommandContext::at(now),
    );
    let outcome = match known {
        Some(known) => grants.execute_from(&id, command, context, known).await,
        None => grants.execute(&id, command, context).await,
    };
    outcome.map_err(|err| match err {
        CommandError::Refused(refusal) => OAuthError::InvalidGrant(refusal.to_string()),
        CommandError::Store(err) => err.into(),
    })
}

/// Waits until the read models show what was committed, then answers (RFC 6749 §5.1).
pub(super) async fn respond(
    warrant: &Warrant,
    committed: &Committed,
    issued: Issued<'_>,
) -> Result<HttpResponse, OAuthError> {
    if let Some(position) = committed.last_position {
        warrant.models.wait_for(position).await;
    }
    let mut response = HttpResponse::Ok();
    no_store(&mut response);
    Ok(response.json(TokenResponse {
        access_token: &issued.access,
        token_type: "Bearer",
        expires_in: issued.expires_in,
        scope: issued.scope,
        issued_token_type: issued.issued_token_type,
        refresh_token: issued.refresh.as_deref(),
        id_token: issued.id_token.as_deref(),
    }))
}

/// The body of a successful token response (RFC 6749 §5.1, RFC 8693 §2.2.1), serialized
/// straight from what was issued.
#[derive(Serialize)]
struct TokenResponse<'a> {
    access_token: &'a str,
    token_type: &'static str,
    expires_in: i64,
    scope: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    issued_token_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id_token: Option<&'a str>,
}

/// Mints an ID token for `user`: RS256 unless the client registered
/// `id_token_signed_response_alg: EdDSA`.
fn id_token_for(
    warrant: &Warrant,
    client: &AuthenticatedClient,
    user: &Profile,
    nonce: Option<&str>,
    now: Timestamp,
) -> String {
    let keys = warrant.signing_keys();
    let key = match client.view.metadata.id_token_signed_response_alg.as_deref() {
        Some("EdDSA") => &keys.ed25519,
        _ => &keys.rsa,
    };
    id_token::issue(
        key,
        &warrant.config.issuer,
        user,
        &client.client_id,
        nonce,
        now,
    )
}

/// A new grant's id: a UUIDv7 (RFC 9562) of `now`, so the streams of grants created together
/// sit together in the log index's tables, where the refreshes that come together (about one
/// access token's lifetime after their grants' last) find them in a page already read. The
/// creation time it shows is in the grant's events anyway, and it keeps 74 random bits.
fn new_grant_id(now: Timestamp) -> Uuid {
    let millis = u64::try_from(now.0).unwrap_or_default();
    let subsec_nanos = (millis % 1000) as u32 * 1_000_000;
    Uuid::new_v7(uuid::Timestamp::from_unix(
        uuid::NoContext,
        millis / 1000,
        subsec_nanos,
    ))
}

/// Whether the space-separated `scope` holds `wanted`.
pub(super) fn has_scope(scope: &str, wanted: &str) -> bool {
    scope.split(' ').any(|s| s == wanted)
}

/// The audience of a user's access token: the requested resources, else the client itself.
fn audience_of(resources: &[String], client_id: &str) -> Vec<String> {
    if resources.is_empty() {
        vec![client_id.to_owned()]
    } else {
        resources.to_vec()
    }
}

/// RFC 6749 §4.1.3: redeems a code once. A second redemption revokes the grant the first one
/// created (§4.1.2).
async fn authorization_code(
    warrant: &Warrant,
    form: &Form,
    client: AuthenticatedClient,
) -> Result<HttpResponse, OAuthError> {
    let code = form.required("code")?;
    let redirect_uri = form.required("redirect_uri")?;
    let session_id = code
        .split_once('.')
        .and_then(|(id, _)| Uuid::try_parse(id).ok())
        .ok_or_else(|| OAuthError::InvalidGrant("unknown authorization code".into()))?;
    let now = Timestamp::now();
    let grant_id = new_grant_id(now);
    let command = SessionCommand::RedeemCode {
        code_hash: SecretHash::of(code),
        client_id: client.client_id.clone(),
        redirect_uri: redirect_uri.to_owned(),
        code_verifier: form.get("code_verifier").map(str::to_owned),
        grant_id,
    };
    let context = CommandContext::at(now);
    let redeemed = match warrant
        .actors
        .sessions
        .execute(&session_id.to_string(), command, context)
        .await
    {
        Ok(committed) => committed
            .events
            .into_iter()
            .find_map(|e| match e {
                Event::AuthorizationCodeRedeemed(r) => Some(r),
                _ => None,
            })
            .ok_or_else(|| OAuthError::InvalidGrant("authorization code not redeemed".into()))?,
        Err(CommandError::Refused(SessionError::Replayed {
            grant_id: first, ..
        })) => {
            let revoke = GrantCommand::Revoke {
                reason: RevocationReason::CodeReplay,
            };
            match warrant
                .actors
                .grants
                .execute(&first.to_string(), revoke, context)
                .await
            {
                Ok(_) | Err(CommandError::Refused(GrantError::Revoked(_))) => {}
                Err(CommandError::Refused(other)) => {
                    tracing::warn!(%other, "code replay: revocation refused")
                }
                Err(CommandError::Store(err)) => return Err(err.into()),
            }
            return Err(OAuthError::InvalidGrant(
                "authorization code already used; every token issued from it is revoked".into(),
            ));
        }
        Err(CommandError::Refused(refusal)) => {
            return Err(OAuthError::InvalidGrant(refusal.to_string()));
        }
        Err(CommandError::Store(err)) => return Err(err.into()),
    };
    let AuthorizationCodeRedeemed {
        subject,
        profile,
        scope,
        resources,
        nonce,
        ..
    } = redeemed;
    let user = profile.unwrap_or_else(|| Profile::recorded(&subject, None));
    let audience = audience_of(&resources, &client.client_id);
    let minted = access::issue(
        &warrant.signing_keys(),
        &warrant.config.issuer,
        &AccessGrant {
            grant_id,
            client_id: &client.client_id,
            subject: Some(&subject),
            scope: &scope,
            audience: &audience,
        },
        now,
    );
    let refresh = secret::generate();
    let id_token = has_scope(&scope, "openid")
        .then(|| id_token_for(warrant, &client, &user, nonce.as_deref(), now));
    let command = GrantCommand::Create {
        created: Box::new(GrantCreated {
            grant_id,
            client_id: client.client_id.clone(),
            subject: Some(subject.clone()),
            profile: Some(user),
            scope: scope.clone(),
            resources,
            origin: GrantOrigin::AuthorizationCode { session_id },
        }),
        access: minted.event,
        refresh: Some(RefreshTokenIssued {
            grant_id,
            token_hash: SecretHash::of(&refresh),
            expires_at: now.plus_seconds(REFRESH_TOKEN_SECONDS),
        }),
    };
    let committed = run_grant(warrant, grant_id, command, now, None).await?;
    respond(
        warrant,
        &committed,
        Issued {
            refresh: Some(refresh),
            id_token,
            ..Issued::access(minted.token, &scope)
        },
    )
    .await
}

/// RFC 6749 §6 with OAuth 2.1 rotation: a refresh token is used once and replaced; a rotated
/// one presented again revokes its grant.
async fn refresh_token(
    warrant: &Warrant,
    form: &Form,
    client: AuthenticatedClient,
) -> Result<HttpResponse, OAuthError> {
    let presented = SecretHash::of(form.required("refresh_token")?);
    let now = Timestamp::now();
    let refreshing = Refreshing::of(warrant, presented, form.get("scope"), now)?;
    let audience = audience_of(&refreshing.audience, &client.client_id);
    let minted = access::issue(
        &warrant.signing_keys(),
        &warrant.config.issuer,
        &AccessGrant {
            grant_id: refreshing.grant_id,
            client_id: &client.client_id,
            subject: refreshing.subject.as_deref(),
            scope: &refreshing.scope,
            audience: &audience,
        },
        now,
    );
    let next = secret::generate();
    let command = GrantCommand::Refresh {
        presented: refreshing.token,
        client_id: client.client_id.clone(),
        access: minted.event,
        next_refresh: SecretHash::of(&next),
        refresh_expires_at: now.plus_seconds(REFRESH_TOKEN_SECONDS),
    };
    let committed = run_grant(warrant, refreshing.grant_id, command, now, refreshing.known).await?;
    let id_token = refreshing
        .user
        .as_ref()
        .map(|user| id_token_for(warrant, &client, user, None, now));
    respond(
        warrant,
        &committed,
        Issued {
            refresh: Some(next),
            id_token,
            ..Issued::access(minted.token, &refreshing.scope)
        },
    )
    .await
}

/// What the token model knows of a presented refresh token, as a refresh needs it.
struct Refreshing {
    /// The token's unchanging facts, for the grant.
    token: IssuedToken,
    /// The grant's state as the model knows it, while the token is the one in use.
    known: Option<Loaded<Grant>>,
    grant_id: Uuid,
    subject: Option<String>,
    /// The scope of the new access token: the requested one, within the granted one.
    scope: String,
    audience: Vec<String>,
    /// The user recorded at login, when the scope asks for an ID token.
    user: Option<Profile>,
}

impl Refreshing {
    fn of(
        warrant: &Warrant,
        presented: SecretHash,
        requested: Option<&str>,
        now: Timestamp,
    ) -> Result<Refreshing, OAuthError> {
        let models = warrant.models.read();
        let view = models
            .tokens
            .by_hash(&presented)
            .filter(|v| v.kind == TokenKind::Refresh)
            .ok_or_else(|| OAuthError::InvalidGrant("unknown refresh token".into()))?;
        if let Some(requested) = requested {
            scopes_within(requested, view.scope, "granted")?;
        }
        let scope = requested.unwrap_or(view.scope).to_owned();
        let token = super::issued_token(presented, &view);
        Ok(Refreshing {
            known: super::grant_in_use(&view, &token, now.unix_seconds()),
            token,
            grant_id: view.grant_id,
            subject: view.subject.map(str::to_owned),
            // The profile recorded at login is read only for an ID token.
            user: view
                .subject
                .filter(|_| has_scope(&scope, "openid"))
                .map(|subject| Profile::recorded(subject, view.profile)),
            scope,
            audience: view.audience.iter().map(|a| (*a).to_owned()).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grant_ids_are_uuidv7s_of_their_creation_and_sort_by_it() {
        let at = |millis| new_grant_id(Timestamp(millis));
        let first = at(1_795_000_000_123);
        assert_eq!(first.get_version_num(), 7);
        let (seconds, nanos) = first.get_timestamp().unwrap().to_unix();
        assert_eq!((seconds, nanos), (1_795_000_000, 123_000_000));
        let ids: Vec<Uuid> = (0..100).map(|i| at(1_795_000_000_123 + i)).collect();
        assert!(ids.is_sorted(), "one a millisecond, in order");
        assert_ne!(
            at(1_795_000_000_123),
            first,
            "random within the millisecond"
        );
    }
}
