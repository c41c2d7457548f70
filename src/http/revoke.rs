//! `POST /revoke` (RFC 7009): revokes an access token, or a refresh token and with it its
//! whole grant. Unknown tokens still answer 200 (§2.2).

use super::client_auth::authenticate;
use super::error::{OAuthError, no_store};
use super::{form, issued_token};
use crate::actors::grant::GrantCommand;
use crate::actors::{CommandContext, CommandError};
use crate::clock::Timestamp;
use crate::secret::SecretHash;
use crate::server::Warrant;
use actix_web::{HttpRequest, HttpResponse, web};

/// Revokes the presented token if it belongs to the calling client.
pub async fn revoke(
    warrant: web::Data<Warrant>,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, OAuthError> {
    let form = form::read(&request, payload, warrant.config.max_body).await?;
    let token_hash = SecretHash::of(form.required("token")?);
    let (client, known) = {
        let models = warrant.models.read();
        let client = authenticate(&request, &form, &models.clients)?;
        let known = models
            .tokens
            .by_hash(&token_hash)
            .map(|view| (view.grant_id, issued_token(token_hash, &view)));
        (client, known)
    };
    if let Some((grant_id, token)) = known {
        let command = GrantCommand::RevokeToken {
            token,
            client_id: client.client_id,
        };
        let committed = warrant
            .actors
            .grants
            .execute(
                &grant_id.to_string(),
                command,
                CommandContext::at(Timestamp::now()),
            )
            .await;
        match committed {
            Ok(committed) => {
                if let Some(position) = committed.last_position {
                    warrant.models.wait_for(position).await;
                }
            }
            // Already revoked (alone or with its grant): nothing left to do.
            Err(CommandError::Refused(crate::actors::grant::GrantError::Revoked(_))) => {}
            Err(CommandError::Refused(refusal)) => {
                return Err(OAuthError::InvalidRequest(refusal.to_string()));
            }
            Err(CommandError::Store(err)) => return Err(err.into()),
        }
    }
    let mut response = HttpResponse::Ok();
    no_store(&mut response);
    Ok(response.finish())
}
