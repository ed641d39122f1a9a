use crate::error::ApiError;
use crate::extract::Authenticated;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use filegate_core::Error;
use filegate_core::domain::AuthMethod;
use serde_json::{Value, json};

/// `POST /api/v1/token`: a short-lived JWT for the current Better Auth session.
/// Only a session can mint one, so a leaked JWT cannot be refreshed forever.
pub async fn mint(State(state): State<AppState>, Authenticated(principal): Authenticated) -> Result<Json<Value>, ApiError> {
    if principal.method != AuthMethod::Session {
        return Err(Error::AuthInvalidToken {
            reason: "a session is required to mint a token".to_owned(),
        }
        .into());
    }
    let token = state.tokens.mint(&principal)?;
    Ok(Json(json!({ "token": token })))
}
