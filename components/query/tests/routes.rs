//! One test per route against the stack's OpenSearch and Redis, with the known data set of
//! `common::DataSet`, including the dashboard's exact calls and the rules that keep answers
//! consistent across routes (normalised environments, SERVER spans as requests, filters before
//! the top-N, the SLOW threshold, summed environments, `intervalMinutes`).

mod common;

use axum::http::StatusCode;
use common::{DataSet, MIN, iso, iso_param, loaded};
use panopticon_model::sketch::Sketch;
use serde_json::{Value, json};

fn range(data: &DataSet) -> String {
    format!(
        "from={}&to={}",
        iso_param(data.t0 - 30 * MIN),
        iso_param(data.t0 + 60 * MIN)
    )
}

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().expect("an object").keys().cloned().collect();
    k.sort();
    k
}

#[tokio::test]
async fn health_has_the_compatible_body() {
    let (world, _) = loaded("q-health").await.unwrap();
    let api = world.api(&[]).unwrap();
    let body = api.ok("/health").await;
    assert_eq!(body["status"], "정상");
    assert!(chrono::DateTime::parse_from_rfc3339(body["timestamp"].as_str().unwrap()).is_ok());
    let ready = api.ok("/ready").await;
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["redis"], "up");
}

#[tokio::test]
async fn service_overview_counts_server_spans_and_filters_before_the_cut() {
    let (world, data) = loaded("q-overview").await.unwrap();
    let api = world.api(&[]).unwrap();
    // The dashboard's call: limit=1000 over a fixed window.
    let body = api
        .ok(&format!("/query/services?limit=1000&{}", range(&data)))
        .await;
    assert_eq!(keys(&body), ["environment", "from", "services", "to"]);
    assert_eq!(body["environment"], Value::Null);
    assert_eq!(body["from"], iso(data.t0 - 30 * MIN));
    let rows: Vec<(String, String, u64)> = body["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["service_name"].as_str().unwrap().to_owned(),
                r["environment"].as_str().unwrap().to_owned(),
                r["request_count"].as_u64().unwrap(),
            )
        })
        .collect();
    // CLIENT spans are not requests (only the SERVER ones of the 250 checkout/production spans
    // count), and environments are stored normalised (events sent as "prod" match
    // "production").
    assert_eq!(
        rows,
        [
            ("checkout".into(), "production".into(), 150),
            ("search".into(), "production".into(), 30),
            ("checkout".into(), "staging".into(), 20),
            ("billing".into(), "development".into(), 1),
        ]
    );
    let checkout = &body["services"][0];
    assert_eq!(
        keys(checkout),
        [
            "environment",
            "error_rate",
            "latency_p95_ms",
            "request_count",
            "service_name"
        ]
    );
    assert_eq!(checkout["error_rate"], 0.1333);
    let p95 = checkout["latency_p95_ms"].as_f64().unwrap();
    assert!((200.0..=204.0).contains(&p95), "{p95}");
    assert_eq!(body["services"][3]["latency_p95_ms"], 7.0);

    // name_filter before the cut: the smallest service is found even with limit=1.
    let body = api
        .ok(&format!(
            "/query/services?limit=1&name_filter=BILL&{}",
            range(&data)
        ))
        .await;
    assert_eq!(body["services"].as_array().unwrap().len(), 1);
    assert_eq!(body["services"][0]["service_name"], "billing");

    // An alias selects the stored environment and is echoed normalised.
    let body = api
        .ok(&format!(
            "/query/services?environment=prod&sort_by=latency_p95_ms&{}",
            range(&data)
        ))
        .await;
    assert_eq!(body["environment"], "production");
    let names: Vec<&str> = body["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["service_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["search", "checkout"]);

    let bad = api.get("/query/services?limit=0&sort_by=fast").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let named: Vec<&str> = bad.json["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["parameter"].as_str().unwrap())
        .collect();
    assert_eq!(named, ["sort_by", "limit"]);
}

#[tokio::test]
async fn endpoints_rank_every_endpoint_by_the_chosen_measure() {
    let (world, data) = loaded("q-endpoints").await.unwrap();
    let api = world.api(&[]).unwrap();
    // The Resources section's call.
    let body = api
        .ok(&format!(
            "/query/services/checkout/endpoints?{}&limit=200&sort_by=request_count",
            range(&data)
        ))
        .await;
    assert_eq!(
        keys(&body),
        ["endpoints", "environment", "from", "service_name", "to"]
    );
    let endpoints = body["endpoints"].as_array().unwrap();
    assert_eq!(endpoints.len(), 2);
    assert_eq!(
        endpoints[0],
        json!({"endpoint_name": "GET /orders", "service_name": "checkout", "environment": "all",
               "request_count": 120, "latency_p95_ms": endpoints[0]["latency_p95_ms"],
               "error_rate": 0.0833})
    );
    assert_eq!(endpoints[1]["endpoint_name"], "POST /pay");
    assert_eq!(endpoints[1]["request_count"], 50);
    assert_eq!(endpoints[1]["error_rate"], 0.2);

    // Ranked by error rate over all endpoints, then cut (the drill-down's limit=5 and more).
    let body = api
        .ok(&format!(
            "/query/services/checkout/endpoints?{}&limit=1&sort_by=error_rate",
            range(&data)
        ))
        .await;
    assert_eq!(body["endpoints"][0]["endpoint_name"], "POST /pay");
    assert_eq!(body["endpoints"].as_array().unwrap().len(), 1);

    let body = api
        .ok(&format!(
            "/query/services/checkout/endpoints?{}&environment=PROD&name_filter=orders",
            range(&data)
        ))
        .await;
    assert_eq!(body["environment"], "production");
    assert_eq!(body["endpoints"].as_array().unwrap().len(), 1);
    assert_eq!(body["endpoints"][0]["request_count"], 100);
    assert_eq!(body["endpoints"][0]["environment"], "production");
}

#[tokio::test]
async fn endpoint_traces_decode_the_name_and_apply_slow_and_error() {
    let (world, data) = loaded("q-ep-traces").await.unwrap();
    let api = world.api(&[]).unwrap();
    // The dashboard encodes the endpoint name: GET /a/b → GET%20%2Fa%2Fb.
    let slow = api
        .ok(&format!(
            "/query/services/search/endpoints/GET%20%2Fa%2Fb/traces?status=SLOW&{}&limit=20",
            range(&data)
        ))
        .await;
    let items = slow.as_array().expect("a bare array");
    // p95 of {1000, 2000, 3000} x 10 is 3000: only the slowest ten, not all 20 recent ones.
    assert_eq!(items.len(), 10, "{slow}");
    assert!(items.iter().all(|i| i["durationMs"] == 3000.0));
    assert_eq!(
        keys(&items[0]),
        [
            "durationMs",
            "environment",
            "serviceName",
            "spanId",
            "status",
            "timestamp",
            "traceId"
        ]
    );

    let errors = api
        .ok(&format!(
            "/query/services/checkout/endpoints/GET%20%2Forders/traces?status=ERROR&{}&limit=20",
            range(&data)
        ))
        .await;
    let items = errors.as_array().unwrap();
    assert_eq!(items.len(), 10);
    assert!(
        items
            .iter()
            .all(|i| i["status"] == "ERROR" && i["serviceName"] == "checkout")
    );
    // Newest first.
    assert_eq!(items[0]["traceId"], "trace-9-0");

    let all = api
        .ok(&format!(
            "/query/services/checkout/endpoints/GET%20%2Forders/traces?{}",
            range(&data)
        ))
        .await;
    assert_eq!(all.as_array().unwrap().len(), 20);

    let none = api
        .ok(&format!(
            "/query/services/checkout/endpoints/GET%20%2Fnothing/traces?status=SLOW&{}",
            range(&data)
        ))
        .await;
    assert_eq!(none, json!([]));
}

#[tokio::test]
async fn service_traces_are_root_spans() {
    let (world, data) = loaded("q-svc-traces").await.unwrap();
    let api = world.api(&[]).unwrap();
    // The Traces section's call.
    let body = api
        .ok(&format!(
            "/query/services/checkout/traces?{}&page=1&size=200",
            range(&data)
        ))
        .await;
    assert_eq!(keys(&body), ["page", "size", "total", "traces"]);
    // 100 order roots + 50 payment roots (sent with parent "") + 20 staging roots.
    assert_eq!(body["total"], 170);
    let traces = body["traces"].as_array().unwrap();
    assert_eq!(traces.len(), 170);
    assert_eq!(
        keys(&traces[0]),
        [
            "duration_ms",
            "environment",
            "root_span_name",
            "service_name",
            "start_time",
            "status",
            "trace_id"
        ]
    );
    assert_eq!(traces[0]["root_span_name"], "POST /pay");
    assert_eq!(traces[0]["duration_ms"], 204.0);

    // The drill-down's call.
    let body = api
        .ok(&format!(
            "/query/services/checkout/traces?{}&size=10&sort=duration_desc",
            range(&data)
        ))
        .await;
    assert_eq!(body["traces"].as_array().unwrap().len(), 10);
    assert_eq!(body["page"], 1);

    let body = api
        .ok(&format!(
            "/query/services/checkout/traces?{}&status=ERROR&environment=prod&max_duration_ms=100",
            range(&data)
        ))
        .await;
    assert_eq!(body["total"], 10);

    let deep = api
        .get(&format!(
            "/query/services/checkout/traces?{}&page=51&size=200",
            range(&data)
        ))
        .await;
    assert_eq!(deep.status, StatusCode::BAD_REQUEST);
    assert_eq!(deep.json["errors"][0]["parameter"], "page");
}

#[tokio::test]
async fn a_trace_has_its_spans_and_logs_with_explicit_null_parents() {
    let (world, _) = loaded("q-trace").await.unwrap();
    let api = world.api(&[]).unwrap();
    let body = api.ok("/query/traces/trace-0-0").await;
    assert_eq!(keys(&body), ["logs", "spans", "trace_id"]);
    let spans = body["spans"].as_array().unwrap();
    assert_eq!(spans.len(), 2);
    let root = spans.iter().find(|s| s["kind"] == "SERVER").unwrap();
    assert!(root.as_object().unwrap().contains_key("parent_span_id"));
    assert_eq!(root["parent_span_id"], Value::Null);
    assert_eq!(root["environment"], "production");
    assert_eq!(root["trace_id"], "trace-0-0");
    let child = spans.iter().find(|s| s["kind"] == "CLIENT").unwrap();
    assert_eq!(child["parent_span_id"], "orders-0-0");
    let logs = body["logs"].as_array().unwrap();
    assert_eq!(logs.len(), 2);
    assert_eq!(logs[0]["message"], "order received");
    assert_eq!(logs[1]["labels"], json!({"card": "visa"}));
    assert_eq!(logs[1]["span_id"], "orders-0-0");

    // Filters normalise the environment for logs as for spans.
    let body = api
        .ok("/query/traces/trace-0-0?environment=prod&service=checkout")
        .await;
    assert_eq!(body["logs"].as_array().unwrap().len(), 2);

    let missing = api.get("/query/traces/no-such-trace").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.json["statusCode"], 404);
    assert!(
        missing.json["message"]
            .as_str()
            .unwrap()
            .contains("no-such-trace")
    );
}

#[tokio::test]
async fn logs_clamp_the_dashboards_size_and_normalise_environments() {
    let (world, data) = loaded("q-logs").await.unwrap();
    let api = world.api(&[]).unwrap();
    // The Logs section's call, with the size it really sends.
    let body = api
        .ok(&format!(
            "/query/logs?service_name=checkout&{}&size=10000",
            range(&data)
        ))
        .await;
    assert_eq!(keys(&body), ["items", "page", "size", "total"]);
    assert_eq!(body["size"], 1000);
    assert_eq!(body["total"], 2);
    let items = body["items"].as_array().unwrap();
    assert_eq!(items[0]["level"], "ERROR");
    assert_eq!(
        keys(&items[0]),
        [
            "environment",
            "labels",
            "level",
            "message",
            "service_name",
            "span_id",
            "timestamp",
            "trace_id"
        ]
    );
    // The log without a trace carries explicit nulls.
    let body = api
        .ok(&format!(
            "/query/logs?service_name=search&{}&size=100",
            range(&data)
        ))
        .await;
    assert_eq!(body["items"][0]["trace_id"], Value::Null);

    // A typed lower-case level tag, an alias environment and full-text message search.
    let body = api
        .ok(&format!(
            "/query/logs?{}&level=error&environment=prod&message=payment%20declined",
            range(&data)
        ))
        .await;
    assert_eq!(body["total"], 1);
    let body = api
        .ok(&format!(
            "/query/logs?{}&message=payment%20accepted",
            range(&data)
        ))
        .await;
    assert_eq!(body["total"], 0);

    let deep = api
        .get(&format!("/query/logs?{}&size=1000&page=11", range(&data)))
        .await;
    assert_eq!(deep.status, StatusCode::BAD_REQUEST);
    let inverted = api
        .get(&format!(
            "/query/logs?from={}&to={}",
            iso_param(data.t0),
            iso_param(data.t0 - MIN)
        ))
        .await;
    assert_eq!(inverted.status, StatusCode::BAD_REQUEST);
    assert_eq!(inverted.json["errors"][0]["parameter"], "from");
}

#[tokio::test]
async fn spans_search_filters_and_pages() {
    let (world, data) = loaded("q-spans").await.unwrap();
    let api = world.api(&[]).unwrap();
    // The drill-down's call: only needs 2xx JSON.
    let body = api
        .ok(&format!(
            "/query/spans?{}&service_name=checkout&size=50",
            range(&data)
        ))
        .await;
    assert_eq!(body["total"], 270);
    assert_eq!(body["items"].as_array().unwrap().len(), 50);
    let body = api
        .ok(&format!(
            "/query/spans?{}&kind=client&sort=duration_asc&size=5&page=2",
            range(&data)
        ))
        .await;
    assert_eq!(body["total"], 100);
    assert_eq!(body["page"], 2);
    assert!(
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["kind"] == "CLIENT")
    );
    let body = api
        .ok(&format!(
            "/query/spans?{}&min_duration_ms=1500&max_duration_ms=2500",
            range(&data)
        ))
        .await;
    assert_eq!(body["total"], 10);
    let bad = api.get("/query/spans?kind=SIDEWAYS&size=-1").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.json["errors"].as_array().unwrap().len(), 2);
}

/// The expected bucket values of checkout, from the data set itself.
fn expected(data: &DataSet, env: Option<&str>, start: i64, end: i64) -> (u64, f64, [f64; 3]) {
    let spans = data.server_spans(|s| {
        s["service_name"] == "checkout" && env.is_none_or(|e| s["environment"] == e)
    });
    let mut sketch = Sketch::new();
    let mut errors = 0;
    for (t, d, e) in spans.iter().filter(|(t, _, _)| (start..end).contains(t)) {
        let _ = t;
        sketch.add(*d);
        errors += u64::from(*e);
    }
    let rate = if sketch.count == 0 {
        0.0
    } else {
        ((errors as f64 / sketch.count as f64) * 10_000.0).round() / 10_000.0
    };
    let q = |q| {
        let v: f64 = sketch.quantile(q).unwrap_or(0.0);
        (v * 1000.0).round() / 1000.0
    };
    (sketch.count, rate, [q(0.95), q(0.90), q(0.5)])
}

fn series<'a>(body: &'a Value, name: &str) -> &'a Vec<Value> {
    body.as_array()
        .expect("an array of series")
        .iter()
        .find(|s| s["metric_name"] == name)
        .unwrap_or_else(|| panic!("no {name} series in {body}"))["points"]
        .as_array()
        .expect("points")
}

fn check_buckets(body: &Value, data: &DataSet, env: Option<&str>, interval: i64, buckets: i64) {
    for name in [
        "http_requests_total",
        "latency_p95_ms",
        "latency_p90_ms",
        "latency_p50_ms",
        "error_rate",
    ] {
        assert_eq!(series(body, name).len() as i64, buckets, "{name}");
    }
    for b in 0..buckets {
        let start = data.t0 + b * interval;
        let (count, rate, [p95, p90, p50]) = expected(data, env, start, start + interval);
        let at = |name| &series(body, name)[b as usize];
        assert_eq!(at("http_requests_total")["timestamp"], iso(start));
        assert_eq!(
            at("http_requests_total")["value"],
            count as f64,
            "bucket {b}"
        );
        assert_eq!(at("error_rate")["value"], rate, "bucket {b}");
        assert_eq!(at("latency_p95_ms")["value"], p95, "bucket {b}");
        assert_eq!(at("latency_p90_ms")["value"], p90, "bucket {b}");
        assert_eq!(at("latency_p50_ms")["value"], p50, "bucket {b}");
    }
}

#[tokio::test]
async fn metrics_merge_rollups_and_raw_without_gap_or_double_count() {
    let (world, data) = loaded("q-metrics").await.unwrap();
    // Minutes 0–5 are rolled up; 6–9 are not yet (the aggregator is behind).
    world.roll((0..6).map(|m| data.t0 + m * MIN)).await.unwrap();
    let api = world.api(&[]).unwrap();
    let raw_only = world.api(&[("ROLLUP_ENABLED", "false")]).unwrap();
    let window = format!(
        "from={}&to={}",
        iso_param(data.t0 + 20_000),
        iso_param(data.t0 + 10 * MIN - 1)
    );

    // The overview chart's call: buckets aligned to the interval, every series, all
    // environments summed into one point per bucket, not one point per environment.
    let body = api
        .ok(&format!(
            "/query/services/checkout/metrics?{window}&interval=1m"
        ))
        .await;
    assert_eq!(body.as_array().unwrap().len(), 5);
    assert_eq!(body[0]["environment"], "all");
    assert_eq!(
        keys(&body[0]),
        ["environment", "metric_name", "points", "service_name"]
    );
    assert!(
        !body[0]["points"][0]
            .as_object()
            .unwrap()
            .contains_key("labels")
    );
    check_buckets(&body, &data, None, MIN, 10);
    // Every point equals what raw spans alone give.
    assert_eq!(
        body,
        raw_only
            .ok(&format!(
                "/query/services/checkout/metrics?{window}&interval=1m"
            ))
            .await
    );

    // 5-minute buckets: the second mixes rolled (5) and raw (6–9) minutes; percentiles come
    // from the merged sketches.
    let body = api
        .ok(&format!(
            "/query/services/checkout/metrics?{window}&interval=5m&environment=prod"
        ))
        .await;
    check_buckets(&body, &data, Some("prod"), 5 * MIN, 2);
    assert_eq!(body[0]["environment"], "production");
    assert_eq!(
        body[0]["points"][0]["labels"],
        json!({"environment": "production"})
    );

    // intervalMinutes is read as a number of minutes.
    let body = api
        .ok(&format!(
            "/query/services/checkout/metrics?{window}&intervalMinutes=5"
        ))
        .await;
    check_buckets(&body, &data, None, 5 * MIN, 2);

    // An interval the rollups cannot tile (the dashboard's 15-minute preset) reads raw.
    let body = api
        .ok(&format!(
            "/query/services/checkout/metrics?{window}&interval=45s"
        ))
        .await;
    assert_eq!(series(&body, "http_requests_total").len(), 14);
    let total: f64 = series(&body, "http_requests_total")
        .iter()
        .map(|p| p["value"].as_f64().unwrap())
        .sum();
    assert_eq!(total, 170.0);

    // One series only, still an array.
    let body = api
        .ok(&format!(
            "/query/services/checkout/metrics?{window}&interval=1m&metric=error_rate"
        ))
        .await;
    assert_eq!(body.as_array().unwrap().len(), 1);

    // A service without data: every series, zero-valued points, never null.
    let body = api
        .ok(&format!(
            "/query/services/nobody/metrics?{window}&interval=1m"
        ))
        .await;
    for s in body.as_array().unwrap() {
        let points = s["points"].as_array().unwrap();
        assert_eq!(points.len(), 10);
        assert!(points.iter().all(|p| p["value"] == 0.0));
    }
}

#[tokio::test]
async fn metrics_read_covered_windows_from_rollups_and_the_rest_raw() {
    let (world, data) = loaded("q-metrics-cover").await.unwrap();
    world
        .roll((0..10).map(|m| data.t0 + m * MIN))
        .await
        .unwrap();
    let api = world.api(&[("METRICS_CACHE_TTL_SECONDS", "0")]).unwrap();
    let window = format!(
        "from={}&to={}&interval=1m&environment=production",
        iso_param(data.t0),
        iso_param(data.t0 + 10 * MIN - 1)
    );
    let url = format!("/query/services/checkout/metrics?{window}");

    // Make minute 3's rollup say something raw spans do not: its sketch moves to ~5 s, with
    // the same request count. The answer follows the rollup, so covered windows come from it.
    let alias = world
        .rollup_indices()
        .alias(panopticon_model::rollup::SeriesKind::Service);
    let found = world
        .es
        .request_ok(
            elasticsearch::http::Method::Post,
            &format!("/{alias}/_search"),
            Some(&json!({"query": {"bool": {"filter": [
                {"term": {"service_name": "checkout"}},
                {"term": {"environment": "production"}},
                {"term": {"@timestamp_bucket": data.t0 + 3 * MIN}},
            ]}}})),
        )
        .await
        .unwrap();
    let hit = &found["hits"]["hits"][0];
    let mut doc = hit["_source"].clone();
    let far = panopticon_model::sketch::bucket_index(5000.0).unwrap();
    let n = doc["latency_sketch"]["index"].as_array().unwrap().len();
    doc["latency_sketch"]["index"] = json!(vec![far; n]);
    doc["latency_max_ms"] = json!(5000.0);
    world
        .es
        .request_ok(
            elasticsearch::http::Method::Put,
            &format!(
                "/{}/_doc/{}?refresh=true",
                hit["_index"].as_str().unwrap(),
                hit["_id"].as_str().unwrap()
            ),
            Some(&doc),
        )
        .await
        .unwrap();
    let body = api.ok(&url).await;
    let p50 = series(&body, "latency_p50_ms")[3]["value"]
        .as_f64()
        .unwrap();
    assert!(
        (p50 - 5000.0).abs() / 5000.0 < 0.011,
        "p50 {p50}: the rollup was not read"
    );

    // A late span in minute 3: the rollup no longer matches the spans, so the window is read
    // raw (the late span counted once, the tampered sketch gone) until it is rolled again.
    world
        .index_spans(&[common::span(
            "checkout",
            "prod",
            "GET /orders",
            "SERVER",
            false,
            42.0,
            data.t0 + 3 * MIN + 59_000,
            "late",
            "late",
            None,
        )])
        .await
        .unwrap();
    let body = api.ok(&url).await;
    assert_eq!(series(&body, "http_requests_total")[3]["value"], 16.0);
    let p50 = series(&body, "latency_p50_ms")[3]["value"]
        .as_f64()
        .unwrap();
    assert!(p50 < 100.0, "{p50}");
    assert_eq!(series(&body, "http_requests_total")[2]["value"], 15.0);

    // Retention deletes spans before rollups (traces 7 d, metrics 90 d): minute 5 keeps its
    // rolled-up counts after its spans are gone.
    let spans = world.spans();
    let found = world
        .es
        .request_ok(
            elasticsearch::http::Method::Post,
            &format!("/{spans}/_search"),
            Some(
                &json!({"size": 1000, "_source": false, "query": {"range": {"@timestamp": {
                "gte": data.t0 + 5 * MIN, "lt": data.t0 + 6 * MIN, "format": "epoch_millis"}}}}),
            ),
        )
        .await
        .unwrap();
    let mut deletes = String::new();
    for hit in found["hits"]["hits"].as_array().unwrap() {
        deletes
            .push_str(&json!({"delete": {"_index": hit["_index"], "_id": hit["_id"]}}).to_string());
        deletes.push('\n');
    }
    let (status, _) = world
        .es
        .send_raw(
            elasticsearch::http::Method::Post,
            "/_bulk?refresh=true",
            "application/x-ndjson",
            Some(deletes.into()),
        )
        .await
        .unwrap();
    assert!(status.is_success());
    assert_eq!(
        raw_count(&world, data.t0 + 5 * MIN).await,
        0,
        "the spans of minute 5 are gone"
    );
    let body = api.ok(&url).await;
    assert_eq!(series(&body, "http_requests_total")[5]["value"], 15.0);
}

async fn raw_count(world: &common::World, start: i64) -> u64 {
    let answer = world
        .es
        .request_ok(
            elasticsearch::http::Method::Post,
            &format!("/{}/_count", world.spans()),
            Some(&json!({"query": {"range": {"@timestamp": {
                "gte": start, "lt": start + MIN, "format": "epoch_millis"}}}})),
        )
        .await
        .expect("count");
    answer["count"].as_u64().expect("a count")
}

/// Labels with the keys real traffic uses (dotted, prefix-conflicting, unicode) come back from
/// the trace route exactly as sent: flat keys, scalar values.
#[tokio::test]
async fn a_trace_returns_dotted_and_conflicting_labels_flat() {
    let world = common::World::create("q-labels").await.unwrap();
    let at = common::past_hour() + 5 * MIN;
    let mut root = common::span(
        "checkout",
        "prod",
        "GET /orders",
        "SERVER",
        false,
        12.0,
        at,
        "trace-l",
        "root",
        None,
    );
    root["labels"] = json!({"http.request.method": "GET", "http": "1.1", "k8s.pod.name": "c-1"});
    let mut client = common::span(
        "checkout",
        "prod",
        "SELECT orders",
        "CLIENT",
        false,
        3.0,
        at + 1,
        "trace-l",
        "db",
        Some("root"),
    );
    client["labels"] = json!({"db.system": "postgresql", "db": "orders", "db.rows": 3,
        "peer.service": "postgres", "ключ.名前": "ünï ✓"});
    world.index_spans(&[root, client.clone()]).await.unwrap();
    world
        .index_logs(&[json!({"timestamp": at + 2, "service_name": "checkout",
            "environment": "prod", "level": "ERROR", "message": "slow query",
            "trace_id": "trace-l", "span_id": "db",
            "labels": {"exception.type": "Timeout", "exception": "yes"}})])
        .await
        .unwrap();
    let api = world.api(&[]).unwrap();
    let body = api.ok("/query/traces/trace-l").await;
    let spans = body["spans"].as_array().unwrap();
    let db = spans.iter().find(|s| s["span_id"] == "db").unwrap();
    assert_eq!(db["labels"], client["labels"]);
    let root = spans.iter().find(|s| s["span_id"] == "root").unwrap();
    assert_eq!(
        root["labels"],
        json!({"http.request.method": "GET", "http": "1.1", "k8s.pod.name": "c-1"})
    );
    assert_eq!(
        body["logs"][0]["labels"],
        json!({"exception.type": "Timeout", "exception": "yes"})
    );
}
