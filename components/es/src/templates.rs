//! Index templates of the data streams. Field names and types are the seed's (spec §2.3), with
//! two changes: `labels.*` is always `keyword` (a key first seen as a number no longer rejects
//! later strings, seed bug 9), and unknown top-level fields are kept in `_source` but not mapped
//! (`dynamic: false`), so a stray field cannot grow the mapping.

use serde_json::{Value, json};

/// Composable index template of a data stream.
pub fn template(stream: &str, properties: Value) -> Value {
    json!({
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
    })
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
    fn template_targets_exactly_its_stream() {
        let t = template("traces-apm", span_properties());
        assert_eq!(t["index_patterns"], json!(["traces-apm"]));
        assert_eq!(t["data_stream"], json!({}));
    }
}
