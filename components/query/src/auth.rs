//! Optional bearer-token auth for `/query/*`.
//!
//! Tokens come from `QUERY_AUTH_TOKENS` (comma-separated) and/or the file
//! `QUERY_AUTH_TOKENS_FILE` ([`Tokens`]); with none configured, auth is off (the dashboard sends no token).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
pub use panopticon_common::auth::Tokens;

use crate::error::ApiError;

/// Middleware: 401 unless auth is off or the request carries an accepted bearer token.
pub async fn require(
    State(tokens): State<Option<Arc<Tokens>>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(tokens) = tokens else {
        return next.run(request).await;
    };
    let presented = panopticon_common::auth::bearer(request.headers());
    match presented {
        Some(token) if tokens.accepts(token) => next.run(request).await,
        _ => ApiError::Unauthorized.into_response(),
    }
}
