//! The grant aggregate (`grant-{grant_id}`): a token family. It issues and rotates refresh
//! tokens, records exchanges of its access tokens, and revokes tokens or itself whole.
//!
//! Its state is what its decisions must see in order: whether it is live, its current refresh
//! token, and the tokens revoked one by one. What never changes about a token (its kind, its
//! client, its expiry, that it is this grant's) is not kept per token here: a command about a
//! token brings those facts along from the token model ([`IssuedToken`]), which holds every
//! token before it is handed out. So a grant with a hundred thousand exchanged tokens, or
//! refreshed ten thousand times, stays small: a refresh token of this grant that is not the
//! current one was rotated away, and presenting it is a reuse.

use super::aggregate::{Aggregate, Refusal};
use crate::clock::Timestamp;
use crate::events::{
    AccessTokenIssued, DeniedRequest, Event, GRANT_STREAM_PREFIX, GrantCreated, GrantRevoked,
    RefreshTokenIssued, RefreshTokenRotated, RequestDenied, RevocationReason, TokenExchanged,
    TokenKind, TokenRevoked,
};
use crate::secret::SecretHash;
use std::collections::HashSet;
use uuid::Uuid;

/// The longest `act` chain an exchanged token may carry (RFC 8693 §4.1 nests one level per
/// exchange; a longer chain is more likely a loop than a real deployment).
pub const MAX_ACTOR_DEPTH: usize = 5;

/// A grant as its stream describes it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Grant {
    created: Option<Created>,
    revoked: Option<RevocationReason>,
    refresh: Option<(SecretHash, Timestamp)>,
    revoked_tokens: HashSet<SecretHash>,
}

/// What the grant's decisions need of its creation (the user, scope and profile it records
/// are the token model's to keep).
#[derive(Clone, Debug, PartialEq)]
struct Created {
    grant_id: Uuid,
    client_id: String,
}

/// What never changes about one of the grant's tokens, as the token model records it: a
/// command brings it for a token the model attributes to this grant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuedToken {
    /// SHA-256 of the token.
    pub hash: SecretHash,
    /// Access or refresh.
    pub kind: TokenKind,
    /// The client it was issued to.
    pub client_id: String,
    /// When it expires.
    pub expires_at: Timestamp,
}

/// What a grant can be asked to do.
#[derive(Clone, Debug)]
pub enum GrantCommand {
    /// Create the grant with its first access token and, optionally, its first refresh token.
    Create {
        /// The grant.
        created: Box<GrantCreated>,
        /// Its first access token.
        access: AccessTokenIssued,
        /// Its first refresh token, when the grant allows refreshing.
        refresh: Option<RefreshTokenIssued>,
    },
    /// Use a refresh token once: a new access token and a new refresh token replace it.
    Refresh {
        /// The presented refresh token.
        presented: IssuedToken,
        /// The authenticated client.
        client_id: String,
        /// The new access token.
        access: AccessTokenIssued,
        /// SHA-256 of the new refresh token.
        next_refresh: SecretHash,
        /// When the new refresh token expires.
        refresh_expires_at: Timestamp,
    },
    /// Record the exchange of one of this grant's access tokens (RFC 8693).
    Exchange {
        /// The exchange.
        exchanged: Box<TokenExchanged>,
        /// The subject token.
        subject: IssuedToken,
    },
    /// Revoke one token at a client's request (RFC 7009).
    RevokeToken {
        /// The token.
        token: IssuedToken,
        /// The authenticated client asking.
        client_id: String,
    },
    /// Revoke the grant and all its tokens.
    Revoke {
        /// Why.
        reason: RevocationReason,
    },
}

/// Why a grant command was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    /// The grant already exists.
    #[error("grant already exists")]
    AlreadyExists,
    /// No such grant.
    #[error("unknown grant")]
    NotFound,
    /// The grant is revoked.
    #[error("grant revoked ({0:?})")]
    Revoked(RevocationReason),
    /// The token belongs to another client.
    #[error("token was issued to another client")]
    WrongClient,
    /// The refresh token is not this grant's.
    #[error("unknown refresh token")]
    UnknownRefreshToken,
    /// The refresh token was already rotated: the grant is revoked (OAuth 2.1 §4.3.1).
    #[error("refresh token reused; grant {grant_id} revoked")]
    RefreshTokenReused {
        /// The grant revoked as a consequence.
        grant_id: Uuid,
    },
    /// The refresh token is past its lifetime.
    #[error("refresh token expired")]
    RefreshTokenExpired,
    /// The subject token of an exchange is expired or revoked, or its grant is.
    #[error("subject token is not active")]
    SubjectTokenInactive,
    /// The `act` chain is too long.
    #[error("actor chain deeper than {MAX_ACTOR_DEPTH}")]
    ActorChainTooDeep,
    /// The exchanged token would outlive its subject token.
    #[error("exchanged token would outlive its subject token")]
    OutlivesSubject,
}

impl GrantError {
    /// The OAuth error code for the wire.
    pub fn code(&self) -> &'static str {
        match self {
            GrantError::SubjectTokenInactive
            | GrantError::ActorChainTooDeep
            | GrantError::OutlivesSubject
            | GrantError::AlreadyExists => "invalid_request",
            _ => "invalid_grant",
        }
    }

    fn request(&self) -> DeniedRequest {
        match self {
            GrantError::SubjectTokenInactive
            | GrantError::ActorChainTooDeep
            | GrantError::OutlivesSubject => DeniedRequest::Exchange,
            GrantError::WrongClient => DeniedRequest::Revocation,
            _ => DeniedRequest::Token,
        }
    }
}

impl Refusal for GrantError {
    fn denial(&self, grant_id: &str) -> Option<RequestDenied> {
        Some(RequestDenied {
            request: self.request(),
            error: self.code().to_owned(),
            reason: format!("grant {grant_id}: {self}"),
            client_id: None,
            subject: None,
        })
    }

    fn consequences(&self) -> Vec<Event> {
        match self {
            GrantError::RefreshTokenReused { grant_id } => vec![
                GrantRevoked {
                    grant_id: *grant_id,
                    reason: RevocationReason::RefreshTokenReuse,
                }
                .into(),
            ],
            _ => Vec::new(),
        }
    }
}

impl Grant {
    /// The grant as the token model sees it while `current` is its refresh token in use:
    /// created for `client_id` and not revoked. That is all a refresh decides on, so at the
    /// version of the stream the model had folded this state decides a refresh as the folded
    /// stream would (see [`super::Registry::execute_from`]).
    pub fn refreshable(grant_id: Uuid, client_id: String, current: &IssuedToken) -> Grant {
        Grant {
            created: Some(Created {
                grant_id,
                client_id,
            }),
            revoked: None,
            refresh: Some((current.hash, current.expires_at)),
            revoked_tokens: HashSet::new(),
        }
    }

    fn live(&self) -> Result<&Created, GrantError> {
        let created = self.created.as_ref().ok_or(GrantError::NotFound)?;
        match self.revoked {
            Some(reason) => Err(GrantError::Revoked(reason)),
            None => Ok(created),
        }
    }

    /// Why the grant was revoked, if it was.
    pub fn revoked(&self) -> Option<RevocationReason> {
        self.revoked
    }

    fn refresh(
        &self,
        presented: &IssuedToken,
        client_id: &str,
        now: Timestamp,
    ) -> Result<(), GrantError> {
        let created = self.live()?;
        if created.client_id != client_id {
            return Err(GrantError::WrongClient);
        }
        match self.refresh {
            Some((current, expires_at)) if current == presented.hash => {
                if now >= expires_at {
                    Err(GrantError::RefreshTokenExpired)
                } else {
                    Ok(())
                }
            }
            // One of this grant's refresh tokens, not the current one: rotated away already.
            Some(_) if presented.kind == TokenKind::Refresh => {
                Err(GrantError::RefreshTokenReused {
                    grant_id: created.grant_id,
                })
            }
            _ => Err(GrantError::UnknownRefreshToken),
        }
    }

    fn exchange(
        &self,
        exchanged: &TokenExchanged,
        subject: &IssuedToken,
        now: Timestamp,
    ) -> Result<(), GrantError> {
        self.live().map_err(|_| GrantError::SubjectTokenInactive)?;
        if self.revoked_tokens.contains(&subject.hash) || now >= subject.expires_at {
            return Err(GrantError::SubjectTokenInactive);
        }
        if exchanged.actor.depth() > MAX_ACTOR_DEPTH {
            return Err(GrantError::ActorChainTooDeep);
        }
        if exchanged.expires_at > subject.expires_at {
            return Err(GrantError::OutlivesSubject);
        }
        Ok(())
    }

    /// RFC 7009 §2.1: a token may be revoked by the client it was issued to: an access token
    /// by its own client (an exchanged one by the gateway), a refresh token by the grant's.
    /// Revoking the current refresh token revokes the grant; a rotated one is already dead.
    fn revoke_token(&self, token: &IssuedToken, client_id: &str) -> Result<Vec<Event>, GrantError> {
        let created = self.live()?;
        let grant_id = created.grant_id;
        if token.client_id != client_id {
            return Err(GrantError::WrongClient);
        }
        Ok(match token.kind {
            TokenKind::Refresh if self.refresh.is_some_and(|(hash, _)| hash == token.hash) => {
                vec![
                    GrantRevoked {
                        grant_id,
                        reason: RevocationReason::ClientRequest,
                    }
                    .into(),
                ]
            }
            TokenKind::Refresh => Vec::new(),
            TokenKind::Access if self.revoked_tokens.contains(&token.hash) => Vec::new(),
            TokenKind::Access => vec![
                TokenRevoked {
                    grant_id,
                    token_hash: token.hash,
                    kind: TokenKind::Access,
                }
                .into(),
            ],
        })
    }
}

impl Aggregate for Grant {
    type Command = GrantCommand;
    type Error = GrantError;
    const STREAM_PREFIX: &'static str = GRANT_STREAM_PREFIX;

    fn handle(
        &self,
        _grant_id: &str,
        command: &GrantCommand,
        now: Timestamp,
    ) -> Result<Vec<Event>, GrantError> {
        match command {
            GrantCommand::Create {
                created,
                access,
                refresh,
            } => {
                if self.created.is_some() {
                    return Err(GrantError::AlreadyExists);
                }
                let mut events = vec![(**created).clone().into(), access.clone().into()];
                events.extend(refresh.clone().map(Event::from));
                Ok(events)
            }
            GrantCommand::Refresh {
                presented,
                client_id,
                access,
                next_refresh,
                refresh_expires_at,
            } => {
                self.refresh(presented, client_id, now)?;
                Ok(vec![
                    RefreshTokenRotated {
                        grant_id: access.grant_id,
                        previous_hash: presented.hash,
                        token_hash: *next_refresh,
                        expires_at: *refresh_expires_at,
                    }
                    .into(),
                    access.clone().into(),
                ])
            }
            GrantCommand::Exchange { exchanged, subject } => {
                self.exchange(exchanged, subject, now)?;
                Ok(vec![exchanged.as_ref().clone().into()])
            }
            GrantCommand::RevokeToken { token, client_id } => self.revoke_token(token, client_id),
            GrantCommand::Revoke { reason } => {
                let created = self.live()?;
                Ok(vec![
                    GrantRevoked {
                        grant_id: created.grant_id,
                        reason: *reason,
                    }
                    .into(),
                ])
            }
        }
    }

    /// Most of a busy grant's stream is its access tokens, issued and exchanged, and no
    /// decision of the grant depends on them.
    fn folds(event_type: &str) -> bool {
        !matches!(event_type, AccessTokenIssued::TYPE | TokenExchanged::TYPE)
    }

    fn creates(command: &GrantCommand) -> bool {
        matches!(command, GrantCommand::Create { .. })
    }

    fn apply(&mut self, event: &Event) {
        match event {
            Event::GrantCreated(e) => {
                self.created = Some(Created {
                    grant_id: e.grant_id,
                    client_id: e.client_id.clone(),
                })
            }
            Event::RefreshTokenIssued(e) => self.refresh = Some((e.token_hash, e.expires_at)),
            Event::RefreshTokenRotated(e) => self.refresh = Some((e.token_hash, e.expires_at)),
            Event::TokenRevoked(e) => {
                self.revoked_tokens.insert(e.token_hash);
            }
            Event::GrantRevoked(e) => {
                self.revoked.get_or_insert(e.reason);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{ActorClaim, GrantOrigin};

    const GRANT: Uuid = Uuid::from_u128(1);

    fn access(jti: u128, token: &str, expires_at: i64) -> AccessTokenIssued {
        AccessTokenIssued {
            grant_id: GRANT,
            jti: Uuid::from_u128(jti),
            token_hash: SecretHash::of(token),
            client_id: "c1".into(),
            subject: Some("alice@example.com".into()),
            scope: "openid".into(),
            audience: vec!["https://gw".into()],
            issued_at: Timestamp(0),
            expires_at: Timestamp(expires_at),
        }
    }

    fn run(grant: &mut Grant, command: GrantCommand, now: i64) -> Result<Vec<Event>, GrantError> {
        let events = match grant.handle("g", &command, Timestamp(now)) {
            Ok(events) => events,
            Err(err) => {
                for e in err.consequences() {
                    grant.apply(&e);
                }
                return Err(err);
            }
        };
        for e in &events {
            grant.apply(e);
        }
        Ok(events)
    }

    fn created() -> Grant {
        let mut grant = Grant::default();
        let create = GrantCommand::Create {
            created: Box::new(GrantCreated {
                grant_id: GRANT,
                client_id: "c1".into(),
                subject: Some("alice@example.com".into()),
                profile: None,
                scope: "openid offline_access".into(),
                resources: vec![],
                origin: GrantOrigin::ClientCredentials,
            }),
            access: access(10, "at-1", 3_600_000),
            refresh: Some(RefreshTokenIssued {
                grant_id: GRANT,
                token_hash: SecretHash::of("rt-1"),
                expires_at: Timestamp(86_400_000),
            }),
        };
        run(&mut grant, create, 0).unwrap();
        grant
    }

    /// Refresh token `presented` of this grant (as the token model knows it) used by c1,
    /// replaced by `next`.
    fn refresh(presented: &str, next: &str, jti: u128) -> GrantCommand {
        GrantCommand::Refresh {
            presented: issued(presented, TokenKind::Refresh, "c1", 86_400_000),
            client_id: "c1".into(),
            access: access(jti, &format!("at-{jti}"), 7_200_000),
            next_refresh: SecretHash::of(next),
            refresh_expires_at: Timestamp(90_000_000),
        }
    }

    #[test]
    fn refresh_token_rotates_once() {
        let mut grant = created();
        let events = run(&mut grant, refresh("rt-1", "rt-2", 11), 1000).unwrap();
        assert!(matches!(events[0], Event::RefreshTokenRotated(_)));
        assert!(run(&mut grant, refresh("rt-2", "rt-3", 12), 2000).is_ok());
    }

    #[test]
    fn refresh_token_reuse_revokes_grant() {
        // OAuth 2.1 §4.3.1: a rotated refresh token presented again revokes the whole family.
        let mut grant = created();
        run(&mut grant, refresh("rt-1", "rt-2", 11), 1000).unwrap();
        let err = run(&mut grant, refresh("rt-1", "rt-x", 12), 2000).unwrap_err();
        assert_eq!(err, GrantError::RefreshTokenReused { grant_id: GRANT });
        assert_eq!(grant.revoked(), Some(RevocationReason::RefreshTokenReuse));
        let err = run(&mut grant, refresh("rt-2", "rt-3", 13), 3000).unwrap_err();
        assert_eq!(
            err,
            GrantError::Revoked(RevocationReason::RefreshTokenReuse)
        );
    }

    #[test]
    fn refresh_refused_for_other_client_an_access_token_or_an_expired_token() {
        let mut grant = created();
        let mut other = refresh("rt-1", "rt-2", 11);
        if let GrantCommand::Refresh { client_id, .. } = &mut other {
            *client_id = "c2".into();
        }
        assert_eq!(
            run(&mut grant, other, 0).unwrap_err(),
            GrantError::WrongClient
        );
        let mut access = refresh("at-1", "rt-2", 11);
        if let GrantCommand::Refresh { presented, .. } = &mut access {
            presented.kind = TokenKind::Access;
        }
        assert_eq!(
            run(&mut grant, access, 0).unwrap_err(),
            GrantError::UnknownRefreshToken
        );
        assert_eq!(
            run(&mut grant, refresh("rt-1", "rt-2", 11), 86_400_000).unwrap_err(),
            GrantError::RefreshTokenExpired
        );
        assert_eq!(grant.revoked(), None, "no refusal above revokes anything");
    }

    /// Token `text` of this grant as the token model knows it: issued to `client`, expiring
    /// at `expires_at` (ms).
    fn issued(text: &str, kind: TokenKind, client: &str, expires_at: i64) -> IssuedToken {
        IssuedToken {
            hash: SecretHash::of(text),
            kind,
            client_id: client.into(),
            expires_at: Timestamp(expires_at),
        }
    }

    /// The exchange of `subject` (expiring at 3,600,000 ms) for token `ex-{jti}` by gateway
    /// `gw`, with an `act` chain `depth` deep.
    fn exchange(jti: u128, subject: IssuedToken, depth: usize, expires_at: i64) -> GrantCommand {
        let mut actor = ActorClaim {
            sub: "gw".into(),
            client_id: Some("gw".into()),
            act: None,
        };
        for _ in 1..depth {
            actor = ActorClaim {
                sub: "gw".into(),
                client_id: None,
                act: Some(Box::new(actor)),
            };
        }
        let exchanged = Box::new(TokenExchanged {
            grant_id: GRANT,
            subject_jti: Uuid::from_u128(10),
            jti: Uuid::from_u128(jti),
            token_hash: SecretHash::of(&format!("ex-{jti}")),
            client_id: "gw".into(),
            subject: Some("alice@example.com".into()),
            actor,
            audience: vec!["https://server".into()],
            scope: "openid".into(),
            issued_at: Timestamp(1000),
            expires_at: Timestamp(expires_at),
        });
        GrantCommand::Exchange { exchanged, subject }
    }

    fn at_1() -> IssuedToken {
        issued("at-1", TokenKind::Access, "c1", 3_600_000)
    }

    #[test]
    fn exchange_needs_an_active_subject_token_and_a_short_chain() {
        let mut grant = created();
        assert!(run(&mut grant, exchange(20, at_1(), 1, 3_600_000), 1000).is_ok());
        let ex_20 = issued("ex-20", TokenKind::Access, "gw", 3_600_000);
        assert!(
            run(&mut grant, exchange(21, ex_20, 2, 3_000_000), 1000).is_ok(),
            "exchanged tokens chain"
        );
        assert_eq!(
            run(&mut grant, exchange(23, at_1(), 1, 3_600_001), 1000).unwrap_err(),
            GrantError::OutlivesSubject
        );
        assert_eq!(
            run(
                &mut grant,
                exchange(24, at_1(), MAX_ACTOR_DEPTH + 1, 1000),
                1000
            )
            .unwrap_err(),
            GrantError::ActorChainTooDeep
        );
        assert_eq!(
            run(&mut grant, exchange(25, at_1(), 1, 1000), 3_600_000).unwrap_err(),
            GrantError::SubjectTokenInactive,
            "the subject token has expired"
        );
    }

    #[test]
    fn an_exchanged_token_is_revoked_by_the_gateway_it_was_issued_to() {
        let mut grant = created();
        run(&mut grant, exchange(20, at_1(), 1, 1000), 0).unwrap();
        let by = |client: &str| GrantCommand::RevokeToken {
            token: issued("ex-20", TokenKind::Access, "gw", 1000),
            client_id: client.into(),
        };
        assert_eq!(
            run(&mut grant, by("c1"), 0).unwrap_err(),
            GrantError::WrongClient
        );
        assert!(matches!(
            run(&mut grant, by("gw"), 0).unwrap()[..],
            [Event::TokenRevoked(_)]
        ));
        let ex_20 = issued("ex-20", TokenKind::Access, "gw", 1000);
        assert_eq!(
            run(&mut grant, exchange(21, ex_20, 2, 1000), 0).unwrap_err(),
            GrantError::SubjectTokenInactive,
            "a revoked token cannot be exchanged"
        );
    }

    #[test]
    fn revoking_the_refresh_token_revokes_the_grant_and_access_token_alone() {
        let mut grant = created();
        let revoke_at = GrantCommand::RevokeToken {
            token: at_1(),
            client_id: "c1".into(),
        };
        assert!(matches!(
            run(&mut grant, revoke_at.clone(), 0).unwrap()[..],
            [Event::TokenRevoked(_)]
        ));
        assert!(
            run(&mut grant, revoke_at, 0).unwrap().is_empty(),
            "already revoked: nothing new"
        );
        assert_eq!(
            run(&mut grant, exchange(20, at_1(), 1, 1000), 0).unwrap_err(),
            GrantError::SubjectTokenInactive
        );
        assert_eq!(grant.revoked(), None, "the grant lives on");
        let revoke_rt = GrantCommand::RevokeToken {
            token: issued("rt-1", TokenKind::Refresh, "c1", 86_400_000),
            client_id: "c1".into(),
        };
        run(&mut grant, revoke_rt, 0).unwrap();
        assert_eq!(grant.revoked(), Some(RevocationReason::ClientRequest));
    }

    #[test]
    fn a_rotated_refresh_token_revoked_changes_nothing() {
        let mut grant = created();
        run(&mut grant, refresh("rt-1", "rt-2", 11), 1000).unwrap();
        let revoke_old = GrantCommand::RevokeToken {
            token: issued("rt-1", TokenKind::Refresh, "c1", 86_400_000),
            client_id: "c1".into(),
        };
        assert!(run(&mut grant, revoke_old, 2000).unwrap().is_empty());
        assert_eq!(grant.revoked(), None);
    }

    #[test]
    fn the_events_a_grant_skips_when_loading_change_nothing_in_it() {
        let mut grant = created();
        let mut events = vec![Event::from(access(10, "at-1", 3_600_000))];
        events.extend(run(&mut grant, refresh("rt-1", "rt-2", 11), 1000).unwrap());
        events.extend(run(&mut grant, exchange(20, at_1(), 1, 3_600_000), 1000).unwrap());
        let skipped: Vec<_> = events
            .iter()
            .filter(|e| !Grant::folds(e.event_type()))
            .collect();
        let types: HashSet<_> = skipped.iter().map(|e| e.event_type()).collect();
        assert_eq!(
            types,
            HashSet::from([AccessTokenIssued::TYPE, TokenExchanged::TYPE])
        );
        for event in skipped {
            let mut after = grant.clone();
            after.apply(event);
            assert_eq!(after, grant, "{} changed the grant", event.event_type());
        }
        assert!(Grant::folds(RefreshTokenRotated::TYPE) && Grant::folds(GrantRevoked::TYPE));
    }
}
