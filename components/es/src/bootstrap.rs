//! Creating what the data path writes into: index templates and data streams.
//!
//! Idempotent and safe to run from several replicas at once: templates are PUT every time (so a
//! new release's mapping reaches the next backing index), and a data stream that another replica
//! created first is success, not an error (seed bug 29).

use elasticsearch::http::Method;
use panopticon_model::config::StreamNames;
use serde_json::Value;

use crate::client::{EsClient, EsError};
use crate::templates;

/// Ensures the template and the data stream of the log and span streams.
pub async fn ensure_ingest_streams(client: &EsClient, names: &StreamNames) -> Result<(), EsError> {
    ensure_stream(
        client,
        &names.logs_template,
        &names.logs,
        templates::log_properties(),
    )
    .await?;
    ensure_stream(
        client,
        &names.spans_template,
        &names.spans,
        templates::span_properties(),
    )
    .await
}

/// PUTs the index template, then creates the data stream if it does not exist.
pub async fn ensure_stream(
    client: &EsClient,
    template_name: &str,
    stream: &str,
    properties: Value,
) -> Result<(), EsError> {
    let template = templates::template(stream, properties);
    client
        .request_ok(
            Method::Put,
            &format!("/_index_template/{template_name}"),
            Some(&template),
        )
        .await?;
    let path = format!("/_data_stream/{stream}");
    let (status, body) = client.request(Method::Put, &path, None).await?;
    let already = body["error"]["type"] == "resource_already_exists_exception";
    if status.is_success() || already {
        tracing::debug!(stream, created = !already, "data stream ready");
        return Ok(());
    }
    Err(EsError::Status {
        what: format!("PUT {path}"),
        status: status.as_u16(),
        body: body.to_string(),
    })
}
