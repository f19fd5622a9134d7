//! Building an event's `labels`: explicit labels first, then unknown top-level fields, then the
//! entries of producerServer's `etc` attribute map. A key already present keeps its first value.
//! Every value is flattened to a scalar: strings, numbers and booleans stay, `null` is dropped,
//! objects and arrays become their compact JSON text (so nested labels stay readable
//! as one value).

use serde_json::{Map, Value};

use crate::document::{LabelValue, Labels};
use crate::error::{EventError, Reason, json_type};
use crate::limits::Limits;

pub(crate) struct LabelsBuilder<'a> {
    limits: &'a Limits,
    labels: Labels,
}

impl<'a> LabelsBuilder<'a> {
    pub(crate) fn new(limits: &'a Limits) -> Self {
        Self {
            limits,
            labels: Labels::new(),
        }
    }

    /// Adds the entries of the event's `labels` field (must be an object, or null).
    pub(crate) fn add_object_field(
        &mut self,
        field: &str,
        value: &Value,
    ) -> Result<(), EventError> {
        match value {
            Value::Null => Ok(()),
            Value::Object(map) => self.add_all(map),
            other => Err(EventError::new(
                field,
                Reason::WrongType {
                    expected: "an object",
                    got: json_type(other),
                },
            )),
        }
    }

    pub(crate) fn add_all(&mut self, map: &Map<String, Value>) -> Result<(), EventError> {
        for (key, value) in map {
            self.add(key, value)?;
        }
        Ok(())
    }

    pub(crate) fn add(&mut self, key: &str, value: &Value) -> Result<(), EventError> {
        let flat = match value {
            Value::Null => return Ok(()),
            Value::Bool(b) => LabelValue::Bool(*b),
            Value::Number(n) => LabelValue::Number(n.clone()),
            Value::String(s) => LabelValue::String(s.clone()),
            nested @ (Value::Array(_) | Value::Object(_)) => LabelValue::String(nested.to_string()),
        };
        if self.labels.contains_key(key) {
            return Ok(());
        }
        check_key(key, self.limits)?;
        if let LabelValue::String(s) = &flat
            && s.len() > self.limits.max_label_value_bytes
        {
            return Err(EventError::new(
                format!("labels.{key}"),
                Reason::TooLong {
                    max: self.limits.max_label_value_bytes,
                    len: s.len(),
                },
            ));
        }
        self.labels.insert(key.to_owned(), flat);
        if self.labels.len() > self.limits.max_labels {
            return Err(EventError::new(
                "labels",
                Reason::TooManyLabels {
                    max: self.limits.max_labels,
                    count: self.labels.len(),
                },
            ));
        }
        Ok(())
    }

    /// The labels, or `None` when there are none (the field is then omitted).
    pub(crate) fn finish(self) -> Option<Labels> {
        (!self.labels.is_empty()).then_some(self.labels)
    }
}

/// Keys become Elasticsearch field names under `labels.`: dots separate objects there, so
/// an empty key or an empty segment (`.a`, `a.`, `a..b`) would be refused by the mapping.
fn check_key(key: &str, limits: &Limits) -> Result<(), EventError> {
    if key.len() > limits.max_label_key_bytes {
        let shown: String = key.chars().take(40).collect();
        return Err(EventError::new(
            format!("labels.{shown}…"),
            Reason::Invalid(format!(
                "label key is {} bytes long, the limit is {} bytes",
                key.len(),
                limits.max_label_key_bytes
            )),
        ));
    }
    if key.trim().is_empty() || key.split('.').any(|seg| seg.trim().is_empty()) {
        return Err(EventError::new(
            format!("labels.{key}"),
            Reason::Invalid(
                "label keys must be non-empty and must not start or end with '.' or contain '..'"
                    .to_owned(),
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn build(values: &[(&str, Value)], limits: &Limits) -> Result<Option<Labels>, EventError> {
        let mut b = LabelsBuilder::new(limits);
        for (k, v) in values {
            b.add(k, v)?;
        }
        Ok(b.finish())
    }

    #[test]
    fn flattens_to_scalars_and_drops_nulls() {
        let labels = build(
            &[
                ("s", json!("x")),
                ("n", json!(1.5)),
                ("b", json!(true)),
                ("gone", Value::Null),
                ("obj", json!({"a": [1, 2]})),
                ("arr", json!(["x", 1])),
            ],
            &Limits::default(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(labels.len(), 5);
        assert_eq!(
            labels["obj"],
            LabelValue::String(r#"{"a":[1,2]}"#.to_owned())
        );
        assert_eq!(labels["arr"], LabelValue::String(r#"["x",1]"#.to_owned()));
        assert!(!labels.contains_key("gone"));
    }

    #[test]
    fn first_value_of_a_key_wins() {
        let labels = build(
            &[("k", json!("first")), ("k", json!("second"))],
            &Limits::default(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(labels["k"], LabelValue::String("first".to_owned()));
    }

    #[test]
    fn limits_are_errors_naming_the_label() {
        let limits = Limits {
            max_labels: 2,
            max_label_value_bytes: 4,
            ..Limits::default()
        };
        let err = build(
            &[("a", json!(1)), ("b", json!(2)), ("c", json!(3))],
            &limits,
        )
        .unwrap_err();
        assert_eq!(err.field, "labels");
        assert_eq!(err.reason, Reason::TooManyLabels { max: 2, count: 3 });

        let err = build(&[("long", json!("12345"))], &limits).unwrap_err();
        assert_eq!(
            err.to_string(),
            "labels.long: is 5 bytes long, the limit is 4 bytes"
        );

        let key = "k".repeat(200);
        let err = build(&[(&key, json!(1))], &Limits::default()).unwrap_err();
        assert!(
            err.to_string().contains("label key is 200 bytes long"),
            "{err}"
        );
    }

    #[test]
    fn keys_that_elasticsearch_would_refuse_are_errors() {
        for key in ["", " ", ".a", "a.", "a..b"] {
            let err = build(&[(key, json!(1))], &Limits::default()).unwrap_err();
            assert_eq!(err.field, format!("labels.{key}"));
            assert_eq!(err.reason.code(), "invalid");
        }
        assert!(build(&[("http.method", json!("GET"))], &Limits::default()).is_ok());
    }

    #[test]
    fn no_labels_means_none() {
        assert_eq!(
            build(&[("x", Value::Null)], &Limits::default()).unwrap(),
            None
        );
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            "\\PC{0,10}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[a-z]{1,4}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn any_accepted_label_set_is_flat_and_within_limits(
            entries in prop::collection::vec(("[a-z]{1,6}(\\.[a-z]{1,3})?", arb_json()), 0..80),
        ) {
            let limits = Limits::default();
            let mut b = LabelsBuilder::new(&limits);
            let mut ok = true;
            for (k, v) in &entries {
                if b.add(k, v).is_err() { ok = false; break; }
            }
            if ok {
                let labels = b.finish().unwrap_or_default();
                prop_assert!(labels.len() <= limits.max_labels);
                for v in labels.values() {
                    if let LabelValue::String(s) = v {
                        prop_assert!(s.len() <= limits.max_label_value_bytes);
                    }
                }
            }
        }
    }
}
