//! Running searches, and reading the parts of their answers every route shares.

use std::collections::BTreeMap;

use elasticsearch::http::Method;
use panopticon_es::EsClient;
use serde_json::{Map, Value};

use crate::error::{ApiError, Result};

/// Runs a search on `index` (a data stream, alias or pattern). A missing index is an empty
/// answer, not an error: a fresh cluster has no data streams until the first event.
pub async fn search(es: &EsClient, index: &str, body: &Value) -> Result<Value> {
    let path = format!("/{index}/_search?ignore_unavailable=true&allow_no_indices=true");
    Ok(es.request_ok(Method::Post, &path, Some(body)).await?)
}

/// The `_source` of each hit, skipping hits without one.
pub fn sources(response: &Value) -> impl Iterator<Item = &Map<String, Value>> {
    response["hits"]["hits"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|hit| hit["_source"].as_object())
}

/// `hits.total` (a number or `{value}`).
pub fn total(response: &Value) -> u64 {
    let t = &response["hits"]["total"];
    t["value"].as_u64().or_else(|| t.as_u64()).unwrap_or(0)
}

/// Reads one field of a document.
pub struct Source<'a>(pub &'a Map<String, Value>);

impl Source<'_> {
    /// A string field, `""` when absent (the dashboard calls string methods on these).
    pub fn text(&self, field: &str) -> String {
        self.opt_text(field).unwrap_or_default()
    }

    pub fn opt_text(&self, field: &str) -> Option<String> {
        match self.0.get(field)? {
            Value::String(s) => Some(s.clone()),
            Value::Null => None,
            other => Some(other.to_string()),
        }
    }

    /// A number field, 0 when absent (never null: the dashboard formats it directly).
    pub fn number(&self, field: &str) -> f64 {
        match self.0.get(field) {
            Some(Value::Number(n)) => n.as_f64().unwrap_or(0.0),
            Some(Value::String(s)) => s.parse().unwrap_or(0.0),
            _ => 0.0,
        }
    }

    pub fn opt_u16(&self, field: &str) -> Option<u16> {
        self.0
            .get(field)?
            .as_u64()
            .and_then(|n| u16::try_from(n).ok())
    }

    pub fn labels(&self) -> Option<BTreeMap<String, Value>> {
        self.0
            .get("labels")?
            .as_object()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
    }
}

/// A value of a `percentiles` aggregation asked with `keyed: false`, whatever its key
/// spelling (`95`, `95.0`); 0 when the bucket had no values. The seed read the key `"95"` and
/// missed the engine's `"95.0"`.
pub fn percentile(aggregation: &Value, percent: f64) -> f64 {
    aggregation["values"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| {
            v["key"]
                .as_f64()
                .is_some_and(|k| (k - percent).abs() < 1e-9)
        })
        .and_then(|v| v["value"].as_f64())
        .unwrap_or(0.0)
}

/// `errors / total` rounded to four decimals, 0 for no requests.
pub fn error_rate(errors: u64, total: u64) -> f64 {
    if total == 0 {
        0.0
    } else {
        round(errors as f64 / total as f64, 4)
    }
}

pub fn round(value: f64, decimals: i32) -> f64 {
    let f = 10f64.powi(decimals);
    (value * f).round() / f
}

/// Answers that are not what a search returns.
pub fn malformed(what: &str) -> ApiError {
    ApiError::internal(format!("unexpected search answer: {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn percentiles_whatever_the_key_spelling() {
        let agg = json!({"values": [{"key": 50.0, "value": 12.5}, {"key": 95.0, "value": 80.0}]});
        assert_eq!(percentile(&agg, 95.0), 80.0);
        assert_eq!(percentile(&agg, 50.0), 12.5);
        assert_eq!(percentile(&agg, 90.0), 0.0);
        let empty = json!({"values": [{"key": 95.0, "value": null}]});
        assert_eq!(percentile(&empty, 95.0), 0.0);
    }

    #[test]
    fn error_rates_are_fractions_rounded_to_four_decimals() {
        assert_eq!(error_rate(1, 3), 0.3333);
        assert_eq!(error_rate(0, 0), 0.0);
        assert_eq!(error_rate(2, 2), 1.0);
    }

    #[test]
    fn sources_skip_hits_without_one() {
        let r = json!({"hits": {"total": {"value": 3}, "hits": [
            {"_id": "a", "_source": {"x": 1}}, {"_id": "b"}]}});
        assert_eq!(sources(&r).count(), 1);
        assert_eq!(total(&r), 3);
    }
}
