//! CORS for the HTTP components, from a configured origin list: none when the list is empty,
//! any origin only when it holds `*` (an unset list never means "reflect any origin"), else exactly
//! the listed origins.

use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, Method};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// The layer for `origins`, allowing `methods` and request `headers`; `None` for an empty list.
pub fn layer(origins: &[String], methods: &[Method], headers: &[HeaderName]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o).ok())
                .collect::<Vec<_>>(),
        )
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods(methods.to_vec())
            .allow_headers(headers.to_vec())
            .max_age(Duration::from_secs(3600)),
    )
}
