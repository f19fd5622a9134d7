//! Creating what the data path writes into: index templates and data streams.
//!
//! Idempotent and safe to run from several replicas at once: templates are PUT every time (so a
//! new release's mapping reaches the next backing index), and a data stream that another replica
//! created first is success, not an error.
//!
//! A data stream whose write index predates the current `labels` mapping (see
//! [`crate::templates`]) is rolled over onto the template ([`roll_over_stale_labels`]): new
//! documents go to a new backing index with the new mapping, older backing indices keep theirs
//! (and their documents) until retention deletes them, and searches span both. Replicas that
//! start at the same moment may each roll over once; the extra backing indices are empty.
//!
//! When the operator provisions the cluster ([`crate::provision`], with lifecycle settings in
//! the templates), components must not overwrite its templates: they run with
//! `ELASTICSEARCH_MANAGE_TEMPLATES=false` and only wait for the data streams
//! ([`require_data_streams`]) or the rollup templates ([`require_rollup_templates`]).

use elasticsearch::http::Method;
use panopticon_model::config::StreamNames;
use panopticon_model::rollup::{RollupIndices, SeriesKind};
use serde_json::{Map, Value};

use crate::client::{EsClient, EsError, Flavour};
use crate::templates::{self, StreamKind};

/// Ensures the template and the data stream of the log and span streams, with `replicas` as
/// `index.number_of_replicas` (`ELASTICSEARCH_INDEX_REPLICAS`).
pub async fn ensure_ingest_streams(
    client: &EsClient,
    names: &StreamNames,
    replicas: u32,
) -> Result<(), EsError> {
    ensure_stream(
        client,
        &names.logs_template,
        &names.logs,
        StreamKind::Logs,
        replicas,
    )
    .await?;
    ensure_stream(
        client,
        &names.spans_template,
        &names.spans,
        StreamKind::Spans,
        replicas,
    )
    .await
}

/// PUTs the index templates of the rollup indices (service and endpoint series), with
/// `replicas` as `index.number_of_replicas`. The indices themselves are created by the first
/// write into them.
pub async fn ensure_rollup_templates(
    client: &EsClient,
    names: &StreamNames,
    replicas: u32,
) -> Result<(), EsError> {
    let indices = RollupIndices::new(&names.metrics);
    for kind in [SeriesKind::Service, SeriesKind::Endpoint] {
        let template = templates::rollup_template_with_settings(
            &indices.pattern(kind),
            &indices.alias(kind),
            &replica_settings(replicas),
        );
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

/// `index.number_of_replicas`, as a template's extra settings.
fn replica_settings(replicas: u32) -> Map<String, Value> {
    Map::from_iter([("index.number_of_replicas".to_owned(), Value::from(replicas))])
}

/// PUTs the index template of `kind` for the engine that answers (with `replicas` as
/// `index.number_of_replicas`), creates the data stream if it does not exist, and rolls it over
/// when its write index has a stale `labels` mapping.
pub async fn ensure_stream(
    client: &EsClient,
    template_name: &str,
    stream: &str,
    kind: StreamKind,
    replicas: u32,
) -> Result<(), EsError> {
    let flavour = client.flavour().await?;
    let template = templates::template_with_settings(
        stream,
        kind.properties(flavour),
        &replica_settings(replicas),
    );
    let created = ensure_stream_with_template(client, template_name, stream, &template).await?;
    if !created {
        roll_over_stale_labels(client, stream, template_name, flavour).await?;
    }
    Ok(())
}

/// PUTs `template` as `template_name`, then creates the data stream if it does not exist;
/// `true` when this call created it.
pub async fn ensure_stream_with_template(
    client: &EsClient,
    template_name: &str,
    stream: &str,
    template: &Value,
) -> Result<bool, EsError> {
    put_template(client, template_name, template).await?;
    let path = format!("/_data_stream/{stream}");
    let (status, body) = client.request(Method::Put, &path, None).await?;
    let already = body["error"]["type"] == "resource_already_exists_exception";
    if status.is_success() || already {
        tracing::debug!(stream, created = !already, "data stream ready");
        return Ok(!already);
    }
    Err(EsError::Status {
        what: format!("PUT {path}"),
        status: status.as_u16(),
        body: body.to_string(),
    })
}

/// Rolls `stream` over when its write index does not map `labels` as the current template does
/// on `flavour` (an index created before the template changed). Returns the former write index
/// when it rolled over. A stream that does not exist is left alone, and so is one that another
/// index template than `template_name` governs (a rollover would not change its mapping): that
/// is logged as a warning.
pub async fn roll_over_stale_labels(
    client: &EsClient,
    stream: &str,
    template_name: &str,
    flavour: Flavour,
) -> Result<Option<String>, EsError> {
    let (status, answer) = client
        .request(Method::Get, &format!("/_data_stream/{stream}"), None)
        .await?;
    if status.as_u16() == 404 {
        return Ok(None);
    }
    if !status.is_success() {
        return Err(EsError::Status {
            what: format!("GET /_data_stream/{stream}"),
            status: status.as_u16(),
            body: answer.to_string(),
        });
    }
    // Backing indices are listed oldest first: the last one takes the writes.
    let Some(write_index) = answer["data_streams"][0]["indices"]
        .as_array()
        .and_then(|indices| indices.last())
        .and_then(|index| index["index_name"].as_str())
        .map(str::to_owned)
    else {
        return Ok(None);
    };
    let mapping = client
        .request_ok(Method::Get, &format!("/{write_index}/_mapping"), None)
        .await?;
    let current = &mapping[write_index.as_str()]["mappings"]["properties"]["labels"]["type"];
    let wanted = &templates::labels_mapping(flavour)["type"];
    if current == wanted {
        return Ok(None);
    }
    let governing = answer["data_streams"][0]["template"]
        .as_str()
        .unwrap_or_default();
    if governing != template_name {
        tracing::warn!(
            stream,
            template = governing,
            expected_template = template_name,
            labels_type = current.as_str().unwrap_or("object"),
            "the data stream follows another index template, whose labels mapping may refuse \
             dotted or conflicting label keys; not rolling it over"
        );
        return Ok(None);
    }
    client
        .request_ok(Method::Post, &format!("/{stream}/_rollover"), None)
        .await?;
    tracing::info!(
        stream,
        old_write_index = write_index,
        old_labels_type = current.as_str().unwrap_or("object"),
        new_labels_type = wanted.as_str().unwrap_or_default(),
        "rolled the data stream over onto its template's labels mapping; the old backing \
         index keeps its documents and mapping until retention deletes it"
    );
    Ok(Some(write_index))
}
