//! Creating what the data path writes into: index templates and data streams.
//!
//! Idempotent and safe to run from several replicas at once: templates are PUT every time (so a
//! new release's mapping reaches the next backing index), and a data stream that another replica
//! created first is success, not an error (seed bug 29).
//!
//! When the operator provisions the cluster ([`crate::provision`], with lifecycle settings in
//! the templates), components must not overwrite its templates: they run with
//! `ELASTICSEARCH_MANAGE_TEMPLATES=false` and only wait for the data streams
//! ([`require_data_streams`]) or the rollup templates ([`require_rollup_templates`]).

use elasticsearch::http::Method;
use panopticon_model::config::StreamNames;
use panopticon_model::rollup::{RollupIndices, SeriesKind};
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

/// PUTs the index templates of the rollup indices (service and endpoint series). The indices
/// themselves are created by the first write into them.
pub async fn ensure_rollup_templates(
    client: &EsClient,
    names: &StreamNames,
) -> Result<(), EsError> {
    let indices = RollupIndices::new(&names.metrics);
    for kind in [SeriesKind::Service, SeriesKind::Endpoint] {
        let template = templates::rollup_template(&indices.pattern(kind), &indices.alias(kind));
        put_template(client, &rollup_template_name(names, kind), &template).await?;
    }
    Ok(())
}

/// Succeeds when both rollup index templates exist. A missing one is the 404
/// [`EsError::Status`] of its `GET _index_template/<name>` ([`EsError::is_not_found`]).
pub async fn require_rollup_templates(
    client: &EsClient,
    names: &StreamNames,
) -> Result<(), EsError> {
    for kind in [SeriesKind::Service, SeriesKind::Endpoint] {
        let path = format!("/_index_template/{}", rollup_template_name(names, kind));
        client.request_ok(Method::Get, &path, None).await?;
    }
    Ok(())
}

/// Name of the index template of a kind of rollup index: `ELASTICSEARCH_APM_ROLLUP_TEMPLATE`
/// for the service series, `<metrics>-endpoints-template` for the endpoint series.
pub fn rollup_template_name(names: &StreamNames, kind: SeriesKind) -> String {
    match kind {
        SeriesKind::Service => names.metrics_template.clone(),
        SeriesKind::Endpoint => format!("{}-endpoints-template", names.metrics),
    }
}

/// Succeeds when every data stream in `streams` exists. A missing one is the 404
/// [`EsError::Status`] of its `GET _data_stream/<name>`, naming it ([`EsError::is_not_found`]).
pub async fn require_data_streams(client: &EsClient, streams: &[&str]) -> Result<(), EsError> {
    for stream in streams {
        client
            .request_ok(Method::Get, &format!("/_data_stream/{stream}"), None)
            .await?;
    }
    Ok(())
}

async fn put_template(client: &EsClient, name: &str, template: &Value) -> Result<(), EsError> {
    client
        .request_ok(
            Method::Put,
            &format!("/_index_template/{name}"),
            Some(template),
        )
        .await
        .map(|_| ())
}

/// PUTs the index template, then creates the data stream if it does not exist.
pub async fn ensure_stream(
    client: &EsClient,
    template_name: &str,
    stream: &str,
    properties: Value,
) -> Result<(), EsError> {
    put_template(
        client,
        template_name,
        &templates::template(stream, properties),
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
