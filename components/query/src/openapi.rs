//! The OpenAPI 3 document (`/api-docs-json`) and its UI page (`/api-docs`).

use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use crate::api;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Panopticon APM Query API",
        description = "The dashboards' read API: services, endpoints, metric series, traces, spans and logs. \
            Compatible with the NestJS query API it replaces (same routes, parameters and JSON).",
        version = "2.0.0",
    ),
    paths(
        api::health,
        api::ready,
        api::trace,
        api::search_logs,
        api::search_spans,
        api::overview,
        api::endpoints,
        api::endpoint_traces,
        api::service_traces,
        api::service_metrics,
    ),
    components(schemas(crate::error::ErrorBody, crate::error::FieldError)),
    modifiers(&BearerAuth),
    tags(
        (name = "services", description = "Service and endpoint rankings"),
        (name = "metrics", description = "Time series from rollups and raw spans"),
        (name = "traces", description = "Traces and sample requests"),
        (name = "spans", description = "Span search"),
        (name = "logs", description = "Log search"),
        (name = "health", description = "Probes"),
    )
)]
pub struct ApiDoc;

/// Declares the optional bearer token (required only when the server has tokens configured).
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The document as JSON.
pub async fn document() -> Response {
    match ApiDoc::openapi().to_json() {
        Ok(json) => ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
        Err(error) => crate::error::ApiError::internal(error).into_response(),
    }
}

/// Swagger UI, loaded by the browser from a CDN and pointed at `/api-docs-json`.
pub async fn ui() -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        UI_PAGE,
    )
        .into_response()
}

const UI_PAGE: &str = r##"<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Panopticon APM Query API</title>
  <link rel="stylesheet" href="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js"></script>
  <script>
    window.onload = () => { window.ui = SwaggerUIBundle({ url: "api-docs-json", dom_id: "#swagger-ui" }); };
  </script>
</body>
</html>
"##;

#[cfg(test)]
mod tests {
    use super::*;

    /// Every route is documented, and every schema reference resolves.
    #[test]
    fn document_is_complete_and_resolves() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let paths: Vec<&str> = doc["paths"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        for route in crate::ROUTES {
            assert!(paths.contains(&route), "{route} is not documented");
        }
        let text = doc.to_string();
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        for piece in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = &piece[..piece.find('"').unwrap()];
            assert!(schemas.contains_key(name), "unresolved $ref {name}");
        }
    }
}
