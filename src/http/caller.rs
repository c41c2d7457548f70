//! Who is calling an endpoint that needs a user: the identity source names them, their
//! capability rules decide, and every refusal is recorded (here, and by the other endpoints
//! that refuse, through [`record_refusal`]).

use super::error::OAuthError;
use crate::actors::CommandContext;
use crate::actors::aggregate::record_denial;
use crate::clock::Timestamp;
use crate::events::{DeniedRequest, RequestDenied};
use crate::identity::Profile;
use crate::server::Warrant;
use actix_web::HttpRequest;

/// What the caller wants to do.
#[derive(Clone, Copy, Debug)]
pub enum Permission {
    /// Register clients dynamically (`allow_dcr`).
    RegisterClients,
    /// Use the client management pages and API (`allow_admin_ui`).
    Administer,
}

impl Permission {
    fn granted(self, profile: &Profile) -> bool {
        match self {
            Permission::RegisterClients => profile.may_register_clients(),
            Permission::Administer => profile.may_administer(),
        }
    }

    fn capability(self) -> &'static str {
        match self {
            Permission::RegisterClients => "allow_dcr",
            Permission::Administer => "allow_admin_ui",
        }
    }

    fn request(self) -> DeniedRequest {
        match self {
            Permission::RegisterClients => DeniedRequest::Registration,
            Permission::Administer => DeniedRequest::ClientManagement,
        }
    }
}

/// The caller of `request`, when they hold `permission`; otherwise the refusal, recorded.
pub async fn permitted(
    warrant: &Warrant,
    request: &HttpRequest,
    permission: Permission,
) -> Result<Profile, OAuthError> {
    let (error, subject) = match warrant.identity.caller(request).await {
        Ok(profile) if permission.granted(&profile) => return Ok(profile),
        Ok(profile) => (
            OAuthError::AccessDenied(format!(
                "`{}` is not granted {} by the {} capability",
                profile.login,
                permission.capability(),
                crate::capabilities::CAPABILITY
            )),
            Some(profile.login),
        ),
        Err(err) => (OAuthError::from(err), None),
    };
    let context = CommandContext::at(Timestamp::now());
    record_refusal(
        warrant,
        permission.request(),
        &error,
        None,
        subject,
        context,
    )
    .await?;
    Err(error)
}

/// Records `error`, the answer to a refused `request`, in the denials stream, so an auditor
/// sees what was attempted.
pub(super) async fn record_refusal(
    warrant: &Warrant,
    request: DeniedRequest,
    error: &OAuthError,
    client_id: Option<String>,
    subject: Option<String>,
    context: CommandContext,
) -> Result<(), OAuthError> {
    let denial = RequestDenied {
        request,
        error: error.code().to_owned(),
        reason: error.description().to_owned(),
        client_id,
        subject,
    };
    record_denial(warrant.store.as_ref(), denial, context).await?;
    Ok(())
}
