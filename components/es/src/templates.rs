//! Index templates of the data streams and rollup indices.
//!
//! - Every field the model stores is mapped explicitly; unknown top-level fields are kept in
//!   `_source` but not mapped (`dynamic: false`), so a stray field cannot grow the mapping.
//! - `labels` is one field of the type each engine made for objects with arbitrary keys
//!   ([`labels_mapping`]): OpenSearch `flat_object`, Elasticsearch `flattened`. Whatever the
//!   keys (dotted like `db.system`, a key that is also the prefix of another such as `a` and
//!   `a.b`, any number of distinct keys over time), a document is stored whole and the mapping
//!   does not grow. Every value is indexed as a keyword under its key's full path, so a term
//!   query on `labels.<key>` finds it; `_source` keeps the labels exactly as sent (flat key →
//!   scalar), which is what the query API returns.

use serde_json::{Map, Value, json};

use crate::client::Flavour;

/// Which data stream a template is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    Logs,
    Spans,
}

impl StreamKind {
    /// The mapped fields of the stream on `flavour`.
    pub fn properties(self, flavour: Flavour) -> Value {
        match self {
            StreamKind::Logs => log_properties(flavour),
            StreamKind::Spans => span_properties(flavour),
        }
    }
}

/// Composable index template of a data stream.
pub fn template(stream: &str, properties: Value) -> Value {
    template_with_settings(stream, properties, &Map::new())
}

/// [`template`] with extra index settings (`index.number_of_replicas`,
/// `index.lifecycle.name`, ...) merged over the mapping's own.
pub fn template_with_settings(
    stream: &str,
    properties: Value,
    settings: &Map<String, Value>,
) -> Value {
    let mut template = json!({
        "index_patterns": [stream],
        "data_stream": {},
        "priority": 500,
        "_meta": {"managed_by": "panopticon"},
        "template": {
            "settings": {"index.mapping.total_fields.limit": 2000},
            "mappings": {
                "dynamic": false,
                "properties": properties
            }
        }
    });
    merge_settings(&mut template, settings);
    template
}

/// Adds `settings` to `template.settings` of a composable index template.
fn merge_settings(template: &mut Value, settings: &Map<String, Value>) {
    if let Some(target) = template["template"]["settings"].as_object_mut() {
        target.extend(settings.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
}

fn keyword() -> Value {
    json!({"type": "keyword"})
}

/// The mapping of `labels`: one field whatever its keys (see the module docs).
pub fn labels_mapping(flavour: Flavour) -> Value {
    match flavour {
        Flavour::OpenSearch => json!({"type": "flat_object"}),
        Flavour::Elasticsearch => json!({"type": "flattened"}),
    }
}

/// `template` with the `labels` mapping data streams had before labels became one field: an
/// object whose keys are mapped dynamically as keywords. Under it `db` and `db.system` cannot
/// both exist and every new key grows the mapping. Components never create it; the migration
/// tests and the ingest benchmark build streams with it to measure and move away from it.
pub fn with_previous_labels_mapping(mut template: Value) -> Value {
    let mappings = &mut template["template"]["mappings"];
    mappings["properties"]["labels"] = json!({"type": "object", "dynamic": true});
    mappings["dynamic_templates"] = json!([{
        "labels_as_keywords": {
            "path_match": "labels.*",
            "match_mapping_type": "*",
            "mapping": {"type": "keyword", "ignore_above": 8191}
        }
    }]);
    template
}

/// `logs-apm` fields.
pub fn log_properties(flavour: Flavour) -> Value {
    json!({
        "@timestamp": {"type": "date"},
        "type": keyword(),
        "service_name": keyword(),
        "environment": keyword(),
        "level": keyword(),
        "message": {"type": "text"},
        "trace_id": keyword(),
        "span_id": keyword(),
        "http_method": keyword(),
        "http_path": keyword(),
        "http_status_code": {"type": "integer"},
        "labels": labels_mapping(flavour),
        "ingestedAt": {"type": "date"}
    })
}

/// `traces-apm` fields.
pub fn span_properties(flavour: Flavour) -> Value {
    json!({
        "@timestamp": {"type": "date"},
        "type": keyword(),
        "service_name": keyword(),
        "environment": keyword(),
        "trace_id": keyword(),
        "span_id": keyword(),
        "parent_span_id": keyword(),
        "name": keyword(),
        "kind": keyword(),
        "duration_ms": {"type": "double"},
        "duration_bucket": {"type": "integer"},
        "status": keyword(),
        "http_method": keyword(),
        "http_path": keyword(),
        "http_status_code": {"type": "integer"},
        "labels": labels_mapping(flavour),
        "ingestedAt": {"type": "date"}
    })
}

/// Index template of one kind of rollup index (see `panopticon_model::rollup::RollupIndices`):
/// plain indices (not a data stream) that join the kind's read alias when created.
pub fn rollup_template(pattern: &str, alias: &str) -> Value {
    rollup_template_with_settings(pattern, alias, &Map::new())
}

/// [`rollup_template`] with extra index settings merged over its own.
pub fn rollup_template_with_settings(
    pattern: &str,
    alias: &str,
    settings: &Map<String, Value>,
) -> Value {
    let mut template = json!({
        "index_patterns": [pattern],
        "priority": 500,
        "_meta": {"managed_by": "panopticon"},
        "template": {
            "settings": {"number_of_shards": 1},
            "aliases": {alias: {}},
            "mappings": {
                "dynamic": false,
                "properties": rollup_properties()
            }
        }
    });
    merge_settings(&mut template, settings);
    template
}

/// Rollup document fields: window, series kind, service, environment, endpoint, overflow flag,
/// counts, percentiles, exact min/max/sum and the sketch (kept in `_source`, not indexed).
pub fn rollup_properties() -> Value {
    json!({
        "@timestamp": {"type": "date"},
        "@timestamp_bucket": {"type": "date"},
        "bucket_duration_seconds": {"type": "integer"},
        "series": keyword(),
        "service_name": keyword(),
        "environment": keyword(),
        "endpoint": keyword(),
        "target": keyword(),
        "overflow": {"type": "boolean"},
        "request_count": {"type": "long"},
        "error_count": {"type": "long"},
        "error_rate": {"type": "double"},
        "latency_p50_ms": {"type": "double"},
        "latency_p90_ms": {"type": "double"},
        "latency_p95_ms": {"type": "double"},
        "latency_p99_ms": {"type": "double"},
        "latency_min_ms": {"type": "double"},
        "latency_max_ms": {"type": "double"},
        "latency_sum_ms": {"type": "double"},
        "latency_sketch": {"type": "object", "enabled": false},
        "source_window_from": {"type": "date"},
        "source_window_to": {"type": "date"},
        "ingestedAt": {"type": "date"}
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use panopticon_model::{DecodeContext, Limits, decode_log, decode_span};

    fn mapped(properties: &Value) -> Vec<String> {
        properties.as_object().unwrap().keys().cloned().collect()
    }

    /// Every field the model stores is mapped explicitly.
    #[test]
    fn every_stored_field_is_mapped() {
        let limits = Limits::default();
        let ctx = DecodeContext {
            limits: &limits,
            now: chrono::Utc::now(),
        };
        let log = decode_log(
            &json!({"service_name":"s","environment":"e","level":"INFO","message":"m","trace_id":"t",
                "span_id":"s","http_method":"GET","http_path":"/","http_status_code":200,"labels":{"a":1}}),
            &ctx,
        )
        .unwrap();
        let span = decode_span(
            &json!({"service_name":"s","environment":"e","trace_id":"t","span_id":"s","parent_span_id":"p",
                "name":"n","kind":"SERVER","duration_ms":1,"status":"OK","http_method":"GET",
                "http_path":"/","http_status_code":200,"labels":{"a":1}}),
            &ctx,
        )
        .unwrap();
        for (doc, props) in [
            (
                serde_json::to_value(log).unwrap(),
                log_properties(Flavour::OpenSearch),
            ),
            (
                serde_json::to_value(span).unwrap(),
                span_properties(Flavour::OpenSearch),
            ),
        ] {
            let mut stored: Vec<String> = doc.as_object().unwrap().keys().cloned().collect();
            let mut fields = mapped(&props);
            stored.sort();
            fields.sort();
            assert_eq!(stored, fields);
        }
    }

    #[test]
    fn every_rollup_field_is_mapped() {
        use panopticon_model::rollup::{RollupDocument, SeriesKind, SeriesStats, Window};
        let w = Window::containing(0, 60);
        let doc = RollupDocument::new(
            &w,
            SeriesKind::Endpoint,
            ["s", "e", "n"],
            false,
            &SeriesStats::default(),
            &w.end(),
        );
        let doc = serde_json::to_value(doc).unwrap();
        let mut stored: Vec<String> = doc.as_object().unwrap().keys().cloned().collect();
        let mut fields = mapped(&rollup_properties());
        stored.sort();
        fields.sort();
        assert_eq!(stored, fields);
    }

    #[test]
    fn extra_settings_join_the_template_settings() {
        let mut settings = Map::new();
        settings.insert("index.number_of_replicas".to_owned(), json!(2));
        let t = template_with_settings("logs-apm", log_properties(Flavour::OpenSearch), &settings);
        assert_eq!(
            t["template"]["settings"],
            json!({"index.mapping.total_fields.limit": 2000, "index.number_of_replicas": 2})
        );
        let r = rollup_template_with_settings("metrics-apm-service-*", "metrics-apm", &settings);
        assert_eq!(
            r["template"]["settings"],
            json!({"number_of_shards": 1, "index.number_of_replicas": 2})
        );
        // Without extra settings, the plain builders are unchanged.
        assert_eq!(
            template("logs-apm", log_properties(Flavour::OpenSearch))["template"]["settings"],
            json!({"index.mapping.total_fields.limit": 2000})
        );
    }

    #[test]
    fn template_targets_exactly_its_stream() {
        let t = template("traces-apm", span_properties(Flavour::OpenSearch));
        assert_eq!(t["index_patterns"], json!(["traces-apm"]));
        assert_eq!(t["data_stream"], json!({}));
    }

    /// The whole Elasticsearch template of the span stream: `labels` is `flattened`, nothing
    /// in the mapping depends on label keys.
    #[test]
    fn elasticsearch_span_template_exactly() {
        let t = template("traces-apm", span_properties(Flavour::Elasticsearch));
        let kw = json!({"type": "keyword"});
        assert_eq!(
            t,
            json!({
                "index_patterns": ["traces-apm"],
                "data_stream": {},
                "priority": 500,
                "_meta": {"managed_by": "panopticon"},
                "template": {
                    "settings": {"index.mapping.total_fields.limit": 2000},
                    "mappings": {
                        "dynamic": false,
                        "properties": {
                            "@timestamp": {"type": "date"},
                            "type": kw, "service_name": kw, "environment": kw,
                            "trace_id": kw, "span_id": kw, "parent_span_id": kw,
                            "name": kw, "kind": kw,
                            "duration_ms": {"type": "double"},
                            "duration_bucket": {"type": "integer"},
                            "status": kw, "http_method": kw, "http_path": kw,
                            "http_status_code": {"type": "integer"},
                            "labels": {"type": "flattened"},
                            "ingestedAt": {"type": "date"}
                        }
                    }
                }
            })
        );
    }

    /// The Elasticsearch log template's mapping, exactly.
    #[test]
    fn elasticsearch_log_mapping_exactly() {
        let t = template("logs-apm", log_properties(Flavour::Elasticsearch));
        let kw = json!({"type": "keyword"});
        assert_eq!(
            t["template"]["mappings"],
            json!({
                "dynamic": false,
                "properties": {
                    "@timestamp": {"type": "date"},
                    "type": kw, "service_name": kw, "environment": kw, "level": kw,
                    "message": {"type": "text"},
                    "trace_id": kw, "span_id": kw, "http_method": kw, "http_path": kw,
                    "http_status_code": {"type": "integer"},
                    "labels": {"type": "flattened"},
                    "ingestedAt": {"type": "date"}
                }
            })
        );
    }

    #[test]
    fn each_engine_gets_its_own_labels_type() {
        for kind in [StreamKind::Logs, StreamKind::Spans] {
            assert_eq!(
                kind.properties(Flavour::OpenSearch)["labels"],
                json!({"type": "flat_object"})
            );
            assert_eq!(
                kind.properties(Flavour::Elasticsearch)["labels"],
                json!({"type": "flattened"})
            );
        }
    }
}
