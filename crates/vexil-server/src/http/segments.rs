//! Placeholder module slot; filled in by the work on issue 3 in this session.

use axum::Router;

use super::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
}
