//! Index templates of the data streams. Field names and types are the seed's (spec §2.3), with
//! two changes: `labels.*` is always `keyword` (a key first seen as a number no longer rejects
//! later strings, seed bug 9), and unknown top-level fields are kept in `_source` but not mapped
//! (`dynamic: false`), so a stray field cannot grow the mapping.

use serde_json::{Map, Value, json};

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
                "dynamic_templates": [{
                    "labels_as_keywords": {
                        "path_match": "labels.*",
                        "match_mapping_type": "*",
                        "mapping": {"type": "keyword", "ignore_above": 8191}
                    }
                }],
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

fn labels() -> Value {
    json!({"type": "object", "dynamic": true})
}

/// `logs-apm` fields.
pub fn log_properties() -> Value {
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
        "labels": labels(),
        "ingestedAt": {"type": "date"}
    })
}

/// `traces-apm` fields.
pub fn span_properties() -> Value {
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
        "labels": labels(),
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

/// Rollup document fields: the seed's `metrics-apm` mapping (spec §2.3) plus the series kind,
/// endpoint, overflow flag, exact min/max/sum and the sketch (kept in `_source`, not indexed).
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

    /// Every field the model stores is mapped explicitly (labels dynamically).
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
            (serde_json::to_value(log).unwrap(), log_properties()),
            (serde_json::to_value(span).unwrap(), span_properties()),
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
        let t = template_with_settings("logs-apm", log_properties(), &settings);
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
            template("logs-apm", log_properties())["template"]["settings"],
            json!({"index.mapping.total_fields.limit": 2000})
        );
    }

    #[test]
    fn template_targets_exactly_its_stream() {
        let t = template("traces-apm", span_properties());
        assert_eq!(t["index_patterns"], json!(["traces-apm"]));
        assert_eq!(t["data_stream"], json!({}));
    }
}
