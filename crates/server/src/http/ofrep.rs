//! Placeholder: routes arrive in their own change.

use axum::Router;

use crate::http::AppState;

/// Routes.
pub fn routes() -> Router<AppState> {
    Router::new()
}
