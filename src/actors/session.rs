//! The authorization session aggregate (`session-{session_id}`): one authorization request,
//! the code it produced, and that code's single redemption (RFC 6749 §4.1, RFC 7636).

use super::aggregate::{Aggregate, Refusal};
use crate::clock::Timestamp;
use crate::events::{
    AuthorizationCodeIssued, AuthorizationCodeRedeemed, DeniedRequest, Event, RequestDenied,
};
use crate::secret::{SecretHash, constant_time_eq};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// An authorization session as its stream describes it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Session {
    code: Option<AuthorizationCodeIssued>,
    redeemed_into: Option<Uuid>,
}

/// What a session can be asked to do.
#[derive(Clone, Debug)]
pub enum SessionCommand {
    /// Record the code issued for an approved authorization request.
    IssueCode(Box<AuthorizationCodeIssued>),
    /// Redeem the code at the token endpoint (RFC 6749 §4.1.3).
    RedeemCode {
        /// SHA-256 of the presented code.
        code_hash: SecretHash,
        /// The authenticated (or, for public clients, named) client.
        client_id: String,
        /// The `redirect_uri` parameter of the token request.
        redirect_uri: String,
        /// The PKCE `code_verifier`, if sent.
        code_verifier: Option<String>,
        /// The grant to create if the code is good.
        grant_id: Uuid,
    },
}

/// Why a session command was refused. Every variant is `invalid_grant` on the wire
/// (RFC 6749 §5.2) except where noted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// The session already has its code.
    #[error("this authorization session already issued its code")]
    AlreadyIssued,
    /// The code does not exist here.
    #[error("unknown authorization code")]
    UnknownCode,
    /// The code was already redeemed: the caller must revoke `grant_id` (RFC 6749 §4.1.2).
    #[error("authorization code already used")]
    Replayed {
        /// The grant created by the first redemption.
        grant_id: Uuid,
        /// The client the code belongs to.
        client_id: String,
        /// The user the code belongs to.
        subject: String,
    },
    /// The code is past its lifetime.
    #[error("authorization code expired")]
    Expired,
    /// Another client is presenting it.
    #[error("authorization code was issued to another client")]
    WrongClient,
    /// The redirect URI differs from the authorization request's.
    #[error("redirect_uri does not match the authorization request")]
    WrongRedirectUri,
    /// The code verifier does not match the challenge.
    #[error("PKCE verification failed")]
    PkceMismatch,
    /// The authorization request had a challenge; the token request has no verifier.
    #[error("code_verifier is required: the authorization request used PKCE")]
    MissingVerifier,
    /// A verifier without a challenge: a PKCE downgrade attempt (RFC 9700 §2.1.1).
    #[error("code_verifier sent, but the authorization request had no code_challenge")]
    UnexpectedVerifier,
    /// The verifier is not 43 to 128 unreserved characters (RFC 7636 §4.1).
    #[error("code_verifier must be 43 to 128 characters of [A-Za-z0-9-._~]")]
    MalformedVerifier,
}

impl Refusal for SessionError {
    fn denial(&self, _session_id: &str) -> Option<RequestDenied> {
        let (client_id, subject) = match self {
            SessionError::Replayed {
                client_id, subject, ..
            } => (Some(client_id.clone()), Some(subject.clone())),
            _ => (None, None),
        };
        Some(RequestDenied {
            request: DeniedRequest::Authorization,
            error: self.code().to_owned(),
            reason: self.to_string(),
            client_id,
            subject,
        })
    }
}

impl SessionError {
    /// The OAuth error code for the wire (RFC 6749 §5.2).
    pub fn code(&self) -> &'static str {
        match self {
            SessionError::AlreadyIssued => "invalid_request",
            _ => "invalid_grant",
        }
    }
}

/// The S256 code challenge of a verifier (RFC 7636 §4.2).
pub fn s256_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

fn valid_verifier(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"-._~".contains(&c))
}

impl Session {
    /// The issued code's details, once issued.
    pub fn code(&self) -> Option<&AuthorizationCodeIssued> {
        self.code.as_ref()
    }
}

impl Aggregate for Session {
    type Command = SessionCommand;
    type Error = SessionError;
    const STREAM_PREFIX: &'static str = "session-";
    /// A code is redeemed moments after it is issued.
    const KEEP_CREATED: bool = true;

    fn handle(
        &self,
        _session_id: &str,
        command: &SessionCommand,
        now: Timestamp,
    ) -> Result<Vec<Event>, SessionError> {
        match command {
            SessionCommand::IssueCode(issued) => {
                if self.code.is_some() {
                    return Err(SessionError::AlreadyIssued);
                }
                Ok(vec![issued.as_ref().clone().into()])
            }
            SessionCommand::RedeemCode {
                code_hash,
                client_id,
                redirect_uri,
                code_verifier,
                grant_id,
            } => {
                let code = self
                    .code
                    .as_ref()
                    .filter(|c| constant_time_eq(&c.code_hash.0, &code_hash.0))
                    .ok_or(SessionError::UnknownCode)?;
                if let Some(first) = self.redeemed_into {
                    return Err(SessionError::Replayed {
                        grant_id: first,
                        client_id: code.client_id.clone(),
                        subject: code.subject.clone(),
                    });
                }
                if now >= code.expires_at {
                    return Err(SessionError::Expired);
                }
                if code.client_id != *client_id {
                    return Err(SessionError::WrongClient);
                }
                if code.redirect_uri != *redirect_uri {
                    return Err(SessionError::WrongRedirectUri);
                }
                match (&code.code_challenge, code_verifier) {
                    (Some(challenge), Some(verifier)) => {
                        if !valid_verifier(verifier) {
                            return Err(SessionError::MalformedVerifier);
                        }
                        let computed = s256_challenge(verifier);
                        if !constant_time_eq(computed.as_bytes(), challenge.as_bytes()) {
                            return Err(SessionError::PkceMismatch);
                        }
                    }
                    (Some(_), None) => return Err(SessionError::MissingVerifier),
                    (None, Some(_)) => return Err(SessionError::UnexpectedVerifier),
                    (None, None) => {}
                }
                Ok(vec![
                    AuthorizationCodeRedeemed {
                        session_id: code.session_id,
                        grant_id: *grant_id,
                        client_id: code.client_id.clone(),
                        subject: code.subject.clone(),
                        profile: code.profile.clone(),
                        scope: code.scope.clone(),
                        resources: code.resources.clone(),
                        nonce: code.nonce.clone(),
                    }
                    .into(),
                ])
            }
        }
    }

    fn creates(command: &SessionCommand) -> bool {
        matches!(command, SessionCommand::IssueCode(_))
    }

    fn apply(&mut self, event: &Event) {
        match event {
            Event::AuthorizationCodeIssued(e) => self.code = Some(e.clone()),
            Event::AuthorizationCodeRedeemed(e) => self.redeemed_into = Some(e.grant_id),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

    fn issued() -> Session {
        let mut session = Session::default();
        let issue = SessionCommand::IssueCode(Box::new(AuthorizationCodeIssued {
            session_id: Uuid::from_u128(1),
            code_hash: SecretHash::of("the-code"),
            client_id: "c1".into(),
            subject: "alice@example.com".into(),
            profile: None,
            redirect_uri: "https://app.example/cb".into(),
            scope: "openid".into(),
            code_challenge: Some(s256_challenge(VERIFIER)),
            nonce: None,
            resources: vec![],
            expires_at: Timestamp(60_000),
        }));
        for e in session.handle("s", &issue, Timestamp(0)).unwrap() {
            session.apply(&e);
        }
        session
    }

    fn redeem(code: &str, client: &str, redirect: &str, verifier: &str) -> SessionCommand {
        SessionCommand::RedeemCode {
            code_hash: SecretHash::of(code),
            client_id: client.into(),
            redirect_uri: redirect.into(),
            code_verifier: Some(verifier.into()),
            grant_id: Uuid::from_u128(9),
        }
    }

    #[test]
    fn rfc_7636_appendix_b_challenge() {
        assert_eq!(
            s256_challenge(VERIFIER),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn code_redeems_once_and_replay_names_the_grant_to_revoke() {
        // RFC 6749 §4.1.2: a second use is refused and the first grant must be revoked.
        let mut session = issued();
        let good = redeem("the-code", "c1", "https://app.example/cb", VERIFIER);
        for e in session.handle("s", &good, Timestamp(1000)).unwrap() {
            session.apply(&e);
        }
        let err = session.handle("s", &good, Timestamp(2000)).unwrap_err();
        assert!(
            matches!(err, SessionError::Replayed { grant_id, .. } if grant_id == Uuid::from_u128(9))
        );
        assert_eq!(err.denial("s").unwrap().error, "invalid_grant");
    }

    #[test]
    fn every_mismatch_is_invalid_grant() {
        let session = issued();
        let cases = [
            (
                redeem("other", "c1", "https://app.example/cb", VERIFIER),
                SessionError::UnknownCode,
            ),
            (
                redeem("the-code", "c2", "https://app.example/cb", VERIFIER),
                SessionError::WrongClient,
            ),
            (
                redeem("the-code", "c1", "https://app.example/cb/", VERIFIER),
                SessionError::WrongRedirectUri,
            ),
            (
                redeem("the-code", "c1", "https://app.example/cb", &"a".repeat(43)),
                SessionError::PkceMismatch,
            ),
            (
                redeem("the-code", "c1", "https://app.example/cb", "short"),
                SessionError::MalformedVerifier,
            ),
        ];
        for (command, expected) in cases {
            assert_eq!(
                session.handle("s", &command, Timestamp(1000)).unwrap_err(),
                expected
            );
        }
    }

    #[test]
    fn pkce_cannot_be_dropped_or_added_after_the_fact() {
        let mut without = redeem("the-code", "c1", "https://app.example/cb", VERIFIER);
        if let SessionCommand::RedeemCode { code_verifier, .. } = &mut without {
            *code_verifier = None;
        }
        assert_eq!(
            issued().handle("s", &without, Timestamp(1)).unwrap_err(),
            SessionError::MissingVerifier
        );
        let mut plain = issued();
        if let Some(code) = &mut plain.code {
            code.code_challenge = None;
        }
        let with = redeem("the-code", "c1", "https://app.example/cb", VERIFIER);
        assert_eq!(
            plain.handle("s", &with, Timestamp(1)).unwrap_err(),
            SessionError::UnexpectedVerifier
        );
        assert!(plain.handle("s", &without, Timestamp(1)).is_ok());
    }

    #[test]
    fn code_expires() {
        let good = redeem("the-code", "c1", "https://app.example/cb", VERIFIER);
        assert_eq!(
            issued().handle("s", &good, Timestamp(60_000)).unwrap_err(),
            SessionError::Expired
        );
        assert!(issued().handle("s", &good, Timestamp(59_999)).is_ok());
    }
}
