//! Labels against the real OpenSearch of `e2e/stack`: documents as ingest stores them (decoded
//! by the model, written with `_bulk` create) into data streams made by the components'
//! bootstrap. Dotted keys, keys that are prefixes of other keys (in one event and across
//! events) and 10 000 distinct keys are all stored, the mapping stays bounded, a term query on a
//! dotted key finds its documents, `_source` gives the labels back flat, and a data stream made
//! with the old dynamic mapping is rolled over onto the new one without losing a document.

mod common;

use chrono::Utc;
use common::client;
use elasticsearch::http::Method;
use panopticon_es::bootstrap::{
    ensure_stream, ensure_stream_with_template, roll_over_stale_labels,
};
use panopticon_es::bulk::{BulkBody, send_all_stored};
use panopticon_es::templates::{self, StreamKind};
use panopticon_es::{EsClient, Flavour};
use panopticon_model::{DecodeContext, Limits, decode_span, ids};
use serde_json::{Value, json};

/// A span event with `labels`, as a service sends it.
fn span(trace: &str, id: usize, labels: Value) -> Value {
    json!({
        "timestamp": Utc::now().timestamp_millis() - 60_000,
        "service_name": "checkout", "environment": "prod",
        "trace_id": trace, "span_id": format!("s{id}"),
        "name": "SELECT orders", "kind": "CLIENT", "duration_ms": 3.5, "status": "OK",
        "labels": labels,
    })
}

/// Decodes the events as ingest does and creates them in `stream`; every one must be stored.
async fn store(es: &EsClient, stream: &str, events: &[Value]) {
    let limits = Limits::default();
    let ctx = DecodeContext {
        limits: &limits,
        now: Utc::now(),
    };
    for chunk in events.chunks(2000) {
        let mut body = BulkBody::default();
        for event in chunk {
            let doc = decode_span(event, &ctx).expect("a valid span");
            let id = ids::span_id(&doc.trace_id, &doc.span_id);
            body.push_create(
                stream,
                &id,
                &serde_json::to_vec(&doc).expect("the stack's OpenSearch answers as documented"),
            );
        }
        send_all_stored(es, body, "labels test bulk")
            .await
            .expect("the stack's OpenSearch answers as documented");
    }
    es.refresh(stream)
        .await
        .expect("the stack's OpenSearch answers as documented");
}

async fn search(es: &EsClient, stream: &str, query: Value) -> Vec<Value> {
    let answer = es
        .request_ok(
            Method::Post,
            &format!("/{stream}/_search"),
            Some(&json!({"size": 100, "query": query, "sort": [{"span_id": "asc"}]})),
        )
        .await
        .expect("the stack's OpenSearch answers as documented");
    answer["hits"]["hits"]
        .as_array()
        .expect("the stack's OpenSearch answers as documented")
        .iter()
        .map(|hit| hit["_source"].clone())
        .collect()
}

async fn count(es: &EsClient, stream: &str) -> u64 {
    let answer = es
        .request_ok(Method::Get, &format!("/{stream}/_count"), None)
        .await
        .expect("the stack's OpenSearch answers as documented");
    answer["count"]
        .as_u64()
        .expect("the stack's OpenSearch answers as documented")
}

/// Every field path the backing indices of `stream` map (objects counted as fields too, as the
/// engine's field limit counts them).
async fn mapped_fields(es: &EsClient, stream: &str) -> usize {
    fn walk(properties: &Value) -> usize {
        properties.as_object().map_or(0, |fields| {
            fields
                .values()
                .map(|field| 1 + walk(&field["properties"]))
                .sum()
        })
    }
    let mapping = es
        .request_ok(Method::Get, &format!("/{stream}/_mapping"), None)
        .await
        .expect("the stack's OpenSearch answers as documented");
    mapping
        .as_object()
        .expect("the stack's OpenSearch answers as documented")
        .values()
        .map(|index| walk(&index["mappings"]["properties"]))
        .max()
        .unwrap_or(0)
}

async fn new_stream(es: &EsClient, prefix: &str) -> String {
    let stream = format!("traces-{}", panopticon_e2e::unique_name(prefix));
    ensure_stream(
        es,
        &format!("{stream}-template"),
        &stream,
        StreamKind::Spans,
        1,
    )
    .await
    .expect("the stack's OpenSearch answers as documented");
    stream
}

async fn drop_stream(es: &EsClient, stream: &str) {
    es.request_ok(Method::Delete, &format!("/_data_stream/{stream}"), None)
        .await
        .expect("the stack's OpenSearch answers as documented");
    es.request_ok(
        Method::Delete,
        &format!("/_index_template/{stream}-template"),
        None,
    )
    .await
    .expect("the stack's OpenSearch answers as documented");
}

#[tokio::test]
async fn dotted_and_prefix_conflicting_keys_are_stored_and_searchable() {
    let es = client();
    assert_eq!(es.flavour().await.unwrap(), Flavour::OpenSearch);
    let stream = new_stream(&es, "labels-dotted").await;
    let trace = panopticon_e2e::unique_name("t");
    let otel = json!({
        "db.system": "postgresql", "db.name": "orders", "peer.service": "postgres",
        "http.request.method": "GET", "k8s.pod.name": "checkout-7d9f-x2k4q",
        "net.peer.port": 5432, "retry": true,
    });
    let events = [
        span(&trace, 0, otel.clone()),
        // A key that is the prefix of another, in one event.
        span(
            &trace,
            1,
            json!({"a": "top", "a.b": "nested", "a.b.c": "deeper"}),
        ),
        // Across events: `x` first, then `x.y`, then `x` again.
        span(&trace, 2, json!({"x": "first"})),
        span(&trace, 3, json!({"x.y": "second"})),
        span(
            &trace,
            4,
            json!({"x": "third", "ключ.名前": "ünïcødé ✓", "empty": ""}),
        ),
        span(&trace, 5, json!({"long.value": "v".repeat(4096)})),
    ];
    store(&es, &stream, &events).await;
    assert_eq!(count(&es, &stream).await, 6, "every document is stored");

    // `_source` keeps the labels exactly as sent: flat keys, scalar values of their own type.
    let stored = search(&es, &stream, json!({"term": {"trace_id": trace}})).await;
    assert_eq!(stored.len(), 6);
    assert_eq!(stored[0]["labels"], otel);
    assert_eq!(
        stored[1]["labels"],
        json!({"a": "top", "a.b": "nested", "a.b.c": "deeper"})
    );
    assert_eq!(
        stored[4]["labels"],
        json!({"x": "third", "ключ.名前": "ünïcødé ✓", "empty": ""})
    );
    assert_eq!(
        stored[5]["labels"]["long.value"].as_str().unwrap().len(),
        4096
    );

    // A term query on one label, by its exact dotted key and value.
    let ids = |hits: Vec<Value>| -> Vec<String> {
        hits.iter()
            .map(|h| h["span_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let term = |key: &str, value: Value| json!({"term": {format!("labels.{key}"): value}});
    assert_eq!(
        ids(search(&es, &stream, term("db.system", json!("postgresql"))).await),
        ["s0"]
    );
    assert_eq!(
        ids(search(&es, &stream, term("a", json!("top"))).await),
        ["s1"]
    );
    assert_eq!(
        ids(search(&es, &stream, term("a.b", json!("nested"))).await),
        ["s1"]
    );
    assert_eq!(
        ids(search(&es, &stream, term("x", json!("first"))).await),
        ["s2"]
    );
    assert_eq!(
        ids(search(&es, &stream, term("x.y", json!("second"))).await),
        ["s3"]
    );
    assert_eq!(
        ids(search(&es, &stream, term("ключ.名前", json!("ünïcødé ✓"))).await),
        ["s4"]
    );
    // Numbers and booleans are indexed as their text.
    assert_eq!(
        ids(search(&es, &stream, term("net.peer.port", json!("5432"))).await),
        ["s0"]
    );
    // A value under one key does not match under another.
    assert!(
        search(&es, &stream, term("db.name", json!("postgresql")))
            .await
            .is_empty()
    );
    drop_stream(&es, &stream).await;
}

#[tokio::test]
async fn ten_thousand_distinct_keys_are_stored_and_the_mapping_stays_bounded() {
    let es = client();
    let stream = new_stream(&es, "labels-many").await;
    let fields_before = mapped_fields(&es, &stream).await;
    let trace = panopticon_e2e::unique_name("t");
    // 10 000 distinct keys over 2 500 documents (4 each, ids that a service put in its keys).
    let events: Vec<Value> = (0..2500)
        .map(|i| {
            let labels: serde_json::Map<String, Value> = (0..4)
                .map(|k| {
                    (
                        format!("user.{}.session", i * 4 + k),
                        json!(format!("v{k}")),
                    )
                })
                .collect();
            span(&trace, i, Value::Object(labels))
        })
        .collect();
    store(&es, &stream, &events).await;
    assert_eq!(count(&es, &stream).await, 2500);
    let fields_after = mapped_fields(&es, &stream).await;
    assert_eq!(
        fields_after, fields_before,
        "the mapping grew with label keys: {fields_before} fields before, {fields_after} after"
    );
    assert!(fields_after < 50, "{fields_after} mapped fields");
    let hits = search(
        &es,
        &stream,
        json!({"term": {"labels.user.9999.session": "v3"}}),
    )
    .await;
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0]["span_id"], "s2499");
    drop_stream(&es, &stream).await;
}

/// The template the data streams had before `labels` became one field.
fn legacy_template(stream: &str) -> Value {
    templates::with_previous_labels_mapping(templates::template(
        stream,
        templates::span_properties(Flavour::OpenSearch),
    ))
}

#[tokio::test]
async fn an_old_data_stream_rolls_over_onto_the_new_mapping_and_keeps_its_documents() {
    let es = client();
    let stream = format!("traces-{}", panopticon_e2e::unique_name("labels-migrate"));
    let template_name = format!("{stream}-template");
    let trace = panopticon_e2e::unique_name("t");
    assert!(
        ensure_stream_with_template(&es, &template_name, &stream, &legacy_template(&stream))
            .await
            .unwrap()
    );
    // Under the old mapping: plain keys are stored, and a dotted key is refused once its
    // prefix is a keyword (the data loss the new mapping ends).
    store(
        &es,
        &stream,
        &[span(&trace, 0, json!({"db": "primary", "region": "eu"}))],
    )
    .await;
    let limits = Limits::default();
    let ctx = DecodeContext {
        limits: &limits,
        now: Utc::now(),
    };
    let refused = decode_span(&span(&trace, 1, json!({"db.system": "postgresql"})), &ctx).unwrap();
    let mut body = BulkBody::default();
    body.push_create(
        &stream,
        &ids::span_id(&refused.trace_id, &refused.span_id),
        &serde_json::to_vec(&refused).unwrap(),
    );
    let error = send_all_stored(&es, body, "legacy bulk").await.unwrap_err();
    assert!(
        error.to_string().contains("mapper_parsing_exception"),
        "{error}"
    );

    // The components' bootstrap puts the new template and rolls the stream over, once.
    ensure_stream(&es, &template_name, &stream, StreamKind::Spans, 1)
        .await
        .unwrap();
    assert_eq!(
        roll_over_stale_labels(&es, &stream, &template_name, Flavour::OpenSearch)
            .await
            .unwrap(),
        None,
        "a second look finds the write index current"
    );
    let streams = es
        .request_ok(Method::Get, &format!("/_data_stream/{stream}"), None)
        .await
        .unwrap();
    assert_eq!(
        streams["data_streams"][0]["indices"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // The refused span is stored now, next to a prefix-conflicting one; nothing old is lost.
    store(
        &es,
        &stream,
        &[
            span(&trace, 1, json!({"db.system": "postgresql"})),
            span(&trace, 2, json!({"db": "replica", "db.name": "orders"})),
        ],
    )
    .await;
    assert_eq!(count(&es, &stream).await, 3);
    let stored = search(&es, &stream, json!({"term": {"trace_id": trace}})).await;
    assert_eq!(
        stored[0]["labels"],
        json!({"db": "primary", "region": "eu"})
    );
    assert_eq!(stored[1]["labels"], json!({"db.system": "postgresql"}));
    // One term query answers across the old and the new backing index.
    let hits = search(&es, &stream, json!({"term": {"labels.db": "primary"}})).await;
    assert_eq!(hits.len(), 1, "old backing index: {hits:?}");
    let hits = search(&es, &stream, json!({"term": {"labels.db": "replica"}})).await;
    assert_eq!(hits.len(), 1, "new backing index: {hits:?}");
    let hits = search(
        &es,
        &stream,
        json!({"terms": {"labels.db": ["primary", "replica"]}}),
    )
    .await;
    assert_eq!(hits.len(), 2);
    drop_stream(&es, &stream).await;
}
