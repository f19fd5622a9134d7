use chrono::TimeZone;
use proptest::prelude::*;
use serde_json::json;

use super::*;
use crate::document::LabelValue;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 11, 10, 8, 0, 0).unwrap()
}

fn log(v: Value) -> Result<LogDocument, EventError> {
    decode_log(
        &v,
        &DecodeContext {
            limits: &Limits::default(),
            now: now(),
        },
    )
}

fn span(v: Value) -> Result<SpanDocument, EventError> {
    decode_span(
        &v,
        &DecodeContext {
            limits: &Limits::default(),
            now: now(),
        },
    )
}

fn valid_log() -> Value {
    // A log as the NestJS producerServer's SDK sends it, extra fields included.
    json!({"type":"log","timestamp":"2025-11-10T07:17:00.583Z","service_name":"order-service",
        "environment":"production","level":"INFO","message":"GET /users",
        "trace_id":"98a94347530b375f951d56bda45b50c4","span_id":"5f13c248640e06ca",
        "http_method":"GET","http_path":"/users","http_status_code":200,"duration_ms":4.31,
        "client_ip":"::ffff:10.244.0.16"})
}

fn valid_span() -> Value {
    json!({"type":"span","timestamp":"2025-11-10T07:17:00.583Z","service_name":"demo-service",
        "environment":"prod","trace_id":"t1","span_id":"s1","parent_span_id":null,
        "name":"GET /api/sample","kind":"SERVER","duration_ms":50.5,"status":"OK",
        "http_method":"GET","http_path":"/api/sample","http_status_code":200,
        "labels":{"component":"api"}})
}

fn with(mut base: Value, key: &str, value: Value) -> Value {
    base[key] = value;
    base
}

fn without(mut base: Value, key: &str) -> Value {
    base.as_object_mut().unwrap().remove(key);
    base
}

fn err_of<T: std::fmt::Debug>(r: Result<T, EventError>) -> (String, &'static str, String) {
    let e = r.unwrap_err();
    (e.field.clone(), e.reason.code(), e.to_string())
}

#[test]
fn an_sdk_log_is_stored_with_the_document_fields_and_keeps_extras_in_labels() {
    let doc = log(valid_log()).unwrap();
    let stored = serde_json::to_value(&doc).unwrap();
    assert_eq!(
        stored,
        json!({"@timestamp":"2025-11-10T07:17:00.583Z","type":"log","service_name":"order-service",
            "environment":"production","trace_id":"98a94347530b375f951d56bda45b50c4",
            "span_id":"5f13c248640e06ca","level":"INFO","message":"GET /users","http_method":"GET",
            "http_path":"/users","http_status_code":200,
            "labels":{"client_ip":"::ffff:10.244.0.16","duration_ms":4.31},
            "ingestedAt":"2025-11-10T08:00:00.000Z"})
    );
}

#[test]
fn a_sample_span_is_stored_with_the_document_fields() {
    let doc = span(valid_span()).unwrap();
    let stored = serde_json::to_value(&doc).unwrap();
    assert_eq!(
        stored,
        json!({"@timestamp":"2025-11-10T07:17:00.583Z","type":"span","service_name":"demo-service",
            "environment":"production","trace_id":"t1","span_id":"s1","parent_span_id":null,
            "name":"GET /api/sample","kind":"SERVER","duration_ms":50.5,
            "duration_bucket":crate::sketch::bucket_index(50.5),"status":"OK",
            "http_method":"GET","http_path":"/api/sample","http_status_code":200,
            "labels":{"component":"api"},"ingestedAt":"2025-11-10T08:00:00.000Z"})
    );
    // and back: the stored form is readable by the same types (query and rollup read it).
    assert_eq!(serde_json::from_value::<SpanDocument>(stored).unwrap(), doc);
}

#[test]
fn minimal_events_are_accepted() {
    let l =
        log(json!({"service_name":"a","environment":"b","level":"warn","message":"m"})).unwrap();
    assert_eq!(l.level, Level::Warn);
    assert_eq!(
        l.timestamp, "2025-11-10T08:00:00.000Z",
        "no timestamp means ingest time"
    );
    assert_eq!(l.labels, None);
    let s = span(
        json!({"service_name":"a","environment":"b","trace_id":"t","span_id":"s",
        "name":"n","kind":"INTERNAL","duration_ms":0,"status":"ERROR"}),
    )
    .unwrap();
    assert_eq!(s.parent_span_id, None);
    assert_eq!(s.status, SpanStatus::Error);
}

#[test]
fn required_fields_are_named_when_missing_null_empty_or_mistyped() {
    for field in ["service_name", "environment", "level", "message"] {
        assert_eq!(err_of(log(without(valid_log(), field))).0, field);
        assert_eq!(
            err_of(log(with(valid_log(), field, Value::Null))).1,
            "missing"
        );
        assert_eq!(
            err_of(log(with(valid_log(), field, json!(7)))).1,
            "wrong_type"
        );
    }
    for field in [
        "service_name",
        "environment",
        "trace_id",
        "span_id",
        "name",
        "kind",
        "status",
    ] {
        let (f, code, msg) = err_of(span(without(valid_span(), field)));
        assert_eq!((f.as_str(), code), (field, "missing"), "{msg}");
        assert_eq!(
            err_of(span(with(valid_span(), field, json!(["x"])))).1,
            "wrong_type"
        );
    }
    for field in ["service_name", "environment", "trace_id", "span_id", "name"] {
        assert_eq!(
            err_of(span(with(valid_span(), field, json!("  ")))),
            (
                field.to_owned(),
                "empty",
                format!("{field}: must not be empty")
            )
        );
    }
    assert_eq!(
        err_of(log(with(valid_log(), "message", json!("")))).1,
        "empty"
    );
}

#[test]
fn level_is_case_insensitive_and_aliases_keep_the_original_spelling() {
    assert_eq!(
        log(with(valid_log(), "level", json!("error")))
            .unwrap()
            .level,
        Level::Error
    );
    let fatal = log(with(valid_log(), "level", json!("Fatal"))).unwrap();
    assert_eq!(fatal.level, Level::Error);
    assert_eq!(
        fatal.labels.unwrap()["level_original"],
        LabelValue::String("Fatal".to_owned())
    );
    assert_eq!(
        log(with(valid_log(), "level", json!("warning")))
            .unwrap()
            .level,
        Level::Warn
    );
    let (field, code, msg) = err_of(log(with(valid_log(), "level", json!("LOUD"))));
    assert_eq!((field.as_str(), code), ("level", "not_allowed"));
    assert!(msg.contains("\"LOUD\""), "{msg}");
}

#[test]
fn kind_accepts_messaging_kinds_otlp_spellings_and_unspecified() {
    for (raw, want) in [
        ("PRODUCER", SpanKind::Producer),
        ("CONSUMER", SpanKind::Consumer),
        ("server", SpanKind::Server),
        ("SPAN_KIND_CLIENT", SpanKind::Client),
        ("UNSPECIFIED", SpanKind::Internal),
    ] {
        assert_eq!(
            span(with(valid_span(), "kind", json!(raw))).unwrap().kind,
            want,
            "{raw}"
        );
    }
    assert_eq!(
        err_of(span(with(valid_span(), "kind", json!("BATCH")))).1,
        "not_allowed"
    );
}

#[test]
fn status_unset_is_stored_as_ok() {
    for (raw, want) in [
        ("UNSET", SpanStatus::Ok),
        ("unset", SpanStatus::Ok),
        ("STATUS_CODE_ERROR", SpanStatus::Error),
        ("error", SpanStatus::Error),
    ] {
        assert_eq!(
            span(with(valid_span(), "status", json!(raw)))
                .unwrap()
                .status,
            want
        );
    }
    assert_eq!(
        err_of(span(with(valid_span(), "status", json!("FAILED")))).0,
        "status"
    );
}

#[test]
fn http_status_code_must_be_an_integer_between_100_and_599() {
    for (raw, want) in [
        (json!(404), 404),
        (json!("503"), 503),
        (json!(" 200 "), 200),
        (json!(201.0), 201),
    ] {
        assert_eq!(
            log(with(valid_log(), "http_status_code", raw))
                .unwrap()
                .http_status_code,
            Some(want)
        );
    }
    for raw in [
        json!("abc"),
        json!(700),
        json!(99),
        json!(200.5),
        json!(-1),
        json!("2e2"),
    ] {
        let (field, code, msg) = err_of(log(with(valid_log(), "http_status_code", raw.clone())));
        assert_eq!(
            (field.as_str(), code),
            ("http_status_code", "out_of_range"),
            "{raw}"
        );
        assert!(msg.contains("between 100 and 599"), "{msg}");
    }
    assert_eq!(
        err_of(span(with(valid_span(), "http_status_code", json!(true)))).1,
        "wrong_type"
    );
    assert_eq!(
        log(with(valid_log(), "http_status_code", Value::Null))
            .unwrap()
            .http_status_code,
        None
    );
}

#[test]
fn timestamps_are_read_as_utc_or_epoch_millis_and_bad_ones_are_errors() {
    let t = |v: Value| log(with(valid_log(), "timestamp", v)).map(|d| d.timestamp);
    assert_eq!(
        t(json!("2025-11-10 07:17:00")).unwrap(),
        "2025-11-10T07:17:00.000Z"
    );
    assert_eq!(
        t(json!("2025-11-10T16:17:00+09:00")).unwrap(),
        "2025-11-10T07:17:00.000Z"
    );
    assert_eq!(
        t(json!(1_762_759_020_583_i64)).unwrap(),
        "2025-11-10T07:17:00.583Z"
    );
    assert_eq!(
        t(json!("20251110T071700Z")).unwrap(),
        "2025-11-10T07:17:00.000Z"
    );
    for bad in [
        json!("not a time"),
        json!("2025-11-31"),
        json!(-5),
        json!(true),
        json!({}),
    ] {
        let e = t(bad.clone()).unwrap_err();
        assert_eq!(e.field, "timestamp", "{bad}");
    }
    // More than a day ahead of `now` is refused; an hour ahead is fine (skewed clocks).
    assert!(t(json!("2025-11-10T09:00:00Z")).is_ok());
    let e = t(json!("2025-11-12T09:00:00Z")).unwrap_err();
    assert_eq!(e.reason.code(), "out_of_range");
    assert!(e.to_string().contains("in the future"), "{e}");
}

#[test]
fn environment_aliases_are_normalised_at_ingest() {
    assert_eq!(
        log(with(valid_log(), "environment", json!(" PROD ")))
            .unwrap()
            .environment,
        "production"
    );
    assert_eq!(
        span(with(valid_span(), "environment", json!("Develop")))
            .unwrap()
            .environment,
        "development"
    );
    assert_eq!(
        span(with(valid_span(), "environment", json!("local")))
            .unwrap()
            .environment,
        "local"
    );
}

#[test]
fn an_empty_parent_span_id_means_root() {
    for parent in [json!(""), json!("  "), Value::Null] {
        let doc = span(with(valid_span(), "parent_span_id", parent)).unwrap();
        assert_eq!(doc.parent_span_id, None);
        assert_eq!(
            serde_json::to_value(&doc).unwrap()["parent_span_id"],
            Value::Null
        );
    }
    assert_eq!(
        span(without(valid_span(), "parent_span_id"))
            .unwrap()
            .parent_span_id,
        None
    );
    let child = span(with(valid_span(), "parent_span_id", json!("p1"))).unwrap();
    assert_eq!(child.parent_span_id.as_deref(), Some("p1"));
}

#[test]
fn duration_must_be_a_non_negative_number() {
    assert_eq!(
        err_of(span(with(valid_span(), "duration_ms", json!(-1)))).1,
        "out_of_range"
    );
    assert_eq!(
        err_of(span(with(valid_span(), "duration_ms", json!("12")))).1,
        "wrong_type"
    );
    assert_eq!(
        err_of(span(without(valid_span(), "duration_ms"))).1,
        "missing"
    );
}

#[test]
fn a_top_level_value_key_is_not_unwrapped() {
    // A `value` key is an ordinary field: the payload is never replaced by its content.
    let wrapped = json!({"value": valid_log()});
    assert_eq!(err_of(log(wrapped)).0, "level");
    let doc = log(with(valid_log(), "value", json!(3))).unwrap();
    assert_eq!(doc.labels.unwrap()["value"], LabelValue::Number(3.into()));
    assert_eq!(doc_message(), "GET /users");
}

fn doc_message() -> String {
    log(valid_log()).unwrap().message
}

#[test]
fn unknown_fields_and_etc_attributes_become_labels_explicit_labels_win() {
    let event = json!({"service_name":"svc","environment":"prod","trace_id":"t","span_id":"s",
        "name":"n","kind":"CLIENT","duration_ms":1,"status":"OK","type":"span",
        "labels":{"db_system":"explicit"},
        "db_system":"top-level","db_statement":"SELECT 1","retries":2,"cached":false,
        "nested":{"a":1},"etc":{"net.peer.name":"db","db_system":"etc"}});
    let labels = span(event).unwrap().labels.unwrap();
    let s = |v: &str| LabelValue::String(v.to_owned());
    assert_eq!(labels["db_system"], s("explicit"));
    assert_eq!(labels["db_statement"], s("SELECT 1"));
    assert_eq!(labels["retries"], LabelValue::Number(2.into()));
    assert_eq!(labels["cached"], LabelValue::Bool(false));
    assert_eq!(labels["nested"], s(r#"{"a":1}"#));
    assert_eq!(labels["net.peer.name"], s("db"));
    assert!(
        !labels.contains_key("type"),
        "type is a known field, never a label"
    );
    assert!(!labels.contains_key("etc"));
}

#[test]
fn labels_must_be_an_object() {
    let (field, code, _) = err_of(log(with(valid_log(), "labels", json!(["a"]))));
    assert_eq!((field.as_str(), code), ("labels", "wrong_type"));
    assert!(log(with(valid_log(), "labels", Value::Null)).is_ok());
}

#[test]
fn limits_are_errors_not_cuts() {
    let limits = Limits {
        max_message_bytes: 8,
        max_keyword_bytes: 4,
        ..Limits::default()
    };
    let ctx = DecodeContext {
        limits: &limits,
        now: now(),
    };
    let e = decode_log(&with(valid_log(), "message", json!("123456789")), &ctx).unwrap_err();
    assert_eq!(
        e.to_string(),
        "message: is 9 bytes long, the limit is 8 bytes"
    );
    let e = decode_span(&with(valid_span(), "name", json!("abcde")), &ctx).unwrap_err();
    assert_eq!((e.field.as_str(), e.reason.code()), ("name", "too_long"));
}

#[test]
fn split_payload_accepts_an_object_or_an_array_and_names_the_problem_otherwise() {
    assert_eq!(split_payload(br#"{"a":1}"#).unwrap().len(), 1);
    assert_eq!(split_payload(br#"[{"a":1},{"b":2}]"#).unwrap().len(), 2);
    assert_eq!(split_payload(b"[]").unwrap().len(), 0);
    for (bytes, code) in [
        (&b"null"[..], "wrong_type"),
        (b"42", "wrong_type"),
        (b"\"text\"", "wrong_type"),
        (b"", "empty"),
        (b"  \n", "empty"),
        (b"{not json", "invalid_json"),
        (b"\x00\x01binary", "invalid_json"),
    ] {
        let e = split_payload(bytes).unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.reason.code()),
            ("payload", code),
            "{bytes:?}"
        );
    }
    // An array element that is not an object is refused by the decoder.
    let items = split_payload(b"[1]").unwrap();
    assert_eq!(
        err_of(log(items[0].clone())),
        (
            "payload".to_owned(),
            "wrong_type",
            "payload: must be a JSON object, got a number".to_owned()
        )
    );
}

fn arb_scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i32>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        "\\PC{0,12}".prop_map(Value::String),
    ]
}

prop_compose! {
    fn arb_valid_span()(
        service in "[a-z][a-z-]{0,15}",
        env in prop::sample::select(vec!["prod", "production", "Dev", "staging", "local", " QA "]),
        trace in "[0-9a-f]{32}", span_id in "[0-9a-f]{16}",
        parent in prop::option::of("[0-9a-f]{16}|"),
        name in "(GET|POST) /[a-z]{1,10}",
        kind in prop::sample::select(vec!["SERVER", "client", "Internal", "PRODUCER", "SPAN_KIND_CONSUMER"]),
        status in prop::sample::select(vec!["OK", "ERROR", "UNSET", "error"]),
        duration in 0.0f64..60_000.0,
        millis in 1_600_000_000_000i64..1_762_700_000_000,
        code in prop::option::of(100u16..600),
        extras in prop::collection::btree_map("x_[a-z]{1,6}", arb_scalar(), 0..5),
    ) -> Value {
        let mut v = json!({"service_name": service, "environment": env, "trace_id": trace,
            "span_id": span_id, "parent_span_id": parent, "name": name, "kind": kind,
            "duration_ms": duration, "status": status, "timestamp": millis,
            "http_status_code": code});
        for (k, x) in extras { v[k] = x; }
        v
    }
}

proptest! {
    #[test]
    fn every_valid_span_decodes_to_a_normalised_document(event in arb_valid_span()) {
        let doc = span(event.clone()).unwrap();
        prop_assert_eq!(&doc.environment, &normalize_environment(event["environment"].as_str().unwrap()));
        prop_assert_eq!(doc.duration_ms, event["duration_ms"].as_f64().unwrap());
        let stored = serde_json::to_value(&doc).unwrap();
        prop_assert_eq!(serde_json::from_value::<SpanDocument>(stored).unwrap(), doc.clone());
        // Decoding is deterministic for a fixed clock.
        prop_assert_eq!(span(event).unwrap(), doc);
    }

    #[test]
    fn decoding_never_panics_on_arbitrary_objects(
        fields in prop::collection::btree_map(
            prop::sample::select(SPAN_FIELDS.iter().chain(LOG_FIELDS).copied().collect::<Vec<_>>()),
            arb_scalar(), 0..16),
    ) {
        let v = Value::Object(fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect());
        let _outcome = span(v.clone());
        let _outcome = log(v);
    }

    #[test]
    fn split_never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let _outcome = split_payload(&bytes);
    }
}
