use crate::error::{ApiError, ErrorEnvelope, responses};
use crate::extract::Authenticated;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use filegate_core::Error;
use filegate_core::domain::AuthMethod;
use serde::Serialize;
use utoipa::ToSchema;

/// A short-lived JWT for the session's user, organization and role.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TokenResponse {
    /// Send as `Authorization: Bearer <token>`; valid for `FILEGATE_JWT_EXPIRES_IN` seconds.
    token: String,
}

/// `POST /api/v1/token`: a short-lived JWT for the current Better Auth session.
/// Only a session can mint one, so a leaked JWT cannot be refreshed forever.
#[utoipa::path(
    post,
    path = "/api/v1/token",
    tag = "auth",
    operation_id = "mintToken",
    summary = "Mint a JWT for the current session",
    description = "Only a Better Auth session (cookie, or its token as bearer) can mint one; a JWT or API key gets 401 `AUTH_INVALID_TOKEN`.",
    responses(
        (status = 200, description = "A JWT for the same user, organization and role", body = TokenResponse),
        (status = 401, description = responses::UNAUTHORIZED, body = ErrorEnvelope),
        (status = 429, description = responses::TOO_MANY, body = ErrorEnvelope),
        (status = 500, description = responses::INTERNAL, body = ErrorEnvelope),
        (status = 503, description = responses::UNAVAILABLE, body = ErrorEnvelope),
    ),
    security(("session" = []), ("bearer" = [])),
)]
pub(crate) async fn mint(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
) -> Result<Json<TokenResponse>, ApiError> {
    if principal.method != AuthMethod::Session {
        return Err(Error::AuthInvalidToken {
            reason: "a session is required to mint a token".to_owned(),
        }
        .into());
    }
    let token = state.tokens.mint(&principal)?;
    Ok(Json(TokenResponse { token }))
}
