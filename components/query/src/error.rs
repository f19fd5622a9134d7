//! What a request can fail with, and how each failure looks on the wire.
//!
//! Bodies keep the NestJS error shape (`statusCode`, `message`, `error`) so existing clients
//! keep parsing them; a 400 adds `errors`, one entry per bad parameter. Internal details are
//! logged once, here, and never sent: a 500 says only "Internal server error".

use std::sync::Arc;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use panopticon_es::EsError;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

/// One bad request parameter.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct FieldError {
    /// The query or path parameter, as the client spelled it.
    pub parameter: String,
    pub message: String,
}

/// The body of every 4xx and 5xx answer.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    pub status_code: u16,
    /// A list of messages for 400, one text otherwise.
    #[schema(value_type = Object)]
    pub message: serde_json::Value,
    pub error: String,
    /// 400 only: the bad parameters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    #[error("invalid parameters")]
    BadRequest(Vec<FieldError>),
    #[error("{0}")]
    NotFound(String),
    #[error("missing or invalid bearer token")]
    Unauthorized,
    /// Elasticsearch did not answer in time.
    #[error("Elasticsearch timed out: {0}")]
    Timeout(Arc<str>),
    /// Elasticsearch is unreachable or overloaded (connection refused, 429, 503).
    #[error("Elasticsearch unavailable: {0}")]
    Unavailable(Arc<str>),
    /// Anything else; the detail is logged, never sent.
    #[error("internal error: {0}")]
    Internal(Arc<str>),
}

pub type Result<T, E = ApiError> = std::result::Result<T, E>;

impl ApiError {
    pub fn bad(parameter: &str, message: impl Into<String>) -> Self {
        ApiError::BadRequest(vec![FieldError {
            parameter: parameter.to_owned(),
            message: message.into(),
        }])
    }

    pub fn internal(detail: impl std::fmt::Display) -> Self {
        ApiError::Internal(detail.to_string().into())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A bounded label for the error counter.
    pub fn metric_label(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad_request",
            ApiError::NotFound(_) => "not_found",
            ApiError::Unauthorized => "unauthorized",
            ApiError::Timeout(_) => "timeout",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }

    pub fn body(&self) -> ErrorBody {
        let status = self.status();
        let reason = status.canonical_reason().unwrap_or("Error").to_owned();
        let (message, errors) = match self {
            ApiError::BadRequest(fields) => (
                json!(
                    fields
                        .iter()
                        .map(|f| format!("{}: {}", f.parameter, f.message))
                        .collect::<Vec<_>>()
                ),
                Some(fields.clone()),
            ),
            ApiError::NotFound(text) => (json!(text), None),
            ApiError::Unauthorized => (json!("Missing or invalid bearer token"), None),
            ApiError::Timeout(_) => (json!("The search engine did not answer in time"), None),
            ApiError::Unavailable(_) => (json!("The search engine is unavailable"), None),
            ApiError::Internal(_) => (json!("Internal server error"), None),
        };
        ErrorBody {
            status_code: status.as_u16(),
            message,
            error: reason,
            errors,
        }
    }
}

impl From<EsError> for ApiError {
    fn from(error: EsError) -> Self {
        let detail: Arc<str> = error.to_string().into();
        match &error {
            EsError::Timeout(_) => ApiError::Timeout(detail),
            EsError::Transport(_) => ApiError::Unavailable(detail),
            EsError::Status {
                status: 429 | 502 | 503,
                ..
            } => ApiError::Unavailable(detail),
            EsError::Status { status: 504, .. } => ApiError::Timeout(detail),
            _ => ApiError::Internal(detail),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            ApiError::Internal(detail) => tracing::error!(%detail, "request failed"),
            ApiError::Timeout(detail) | ApiError::Unavailable(detail) => {
                tracing::warn!(%detail, "request failed")
            }
            _ => {}
        }
        let mut response = (self.status(), Json(self.body())).into_response();
        if matches!(self, ApiError::Unauthorized) {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_details_stay_out_of_the_body() {
        let e = ApiError::from(EsError::Status {
            what: "POST /traces-apm/_search".into(),
            status: 400,
            body: "secret mapping detail".into(),
        });
        assert_eq!(e.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_string(&e.body()).unwrap();
        assert!(!body.contains("secret"), "{body}");
        assert_eq!(
            body,
            r#"{"statusCode":500,"message":"Internal server error","error":"Internal Server Error"}"#
        );
    }

    #[test]
    fn engine_trouble_maps_to_503_and_504() {
        assert_eq!(
            ApiError::from(EsError::Timeout("30s".into())).status(),
            StatusCode::GATEWAY_TIMEOUT
        );
        assert_eq!(
            ApiError::from(EsError::Transport("refused".into())).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        let overloaded = EsError::Status {
            what: "x".into(),
            status: 429,
            body: String::new(),
        };
        assert_eq!(
            ApiError::from(overloaded).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }

    #[test]
    fn bad_request_names_every_parameter() {
        let e = ApiError::BadRequest(vec![
            FieldError {
                parameter: "size".into(),
                message: "must be at least 1".into(),
            },
            FieldError {
                parameter: "from".into(),
                message: "must be ISO-8601".into(),
            },
        ]);
        let body = serde_json::to_value(e.body()).unwrap();
        assert_eq!(body["statusCode"], 400);
        assert_eq!(body["error"], "Bad Request");
        assert_eq!(body["message"][0], "size: must be at least 1");
        assert_eq!(body["errors"][1]["parameter"], "from");
    }
}
