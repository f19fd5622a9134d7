use super::*;

fn pair(s: &str, e: &str, endpoints: u64, durations: u64) -> Pair {
    Pair {
        service: s.into(),
        environment: e.into(),
        spans: 10,
        endpoints,
        durations,
    }
}

#[test]
fn keys_name_what_the_caps_left_out() {
    let answer = json!({
        "hits": {"total": {"value": 30, "relation": "eq"}},
        "aggregations": {"s": {"sum_other_doc_count": 5, "buckets": [
            {"key": "api", "doc_count": 20, "e": {"sum_other_doc_count": 2, "buckets": [
                {"key": "production", "doc_count": 18, "endpoints": {"value": 3}, "durations": {"value": 40}}
            ]}},
            {"key": "web", "doc_count": 5, "e": {"sum_other_doc_count": 0, "buckets": [
                {"key": "staging", "doc_count": 5, "endpoints": {"value": 1}, "durations": {"value": 4}}
            ]}}
        ]}}
    });
    let keys = read_keys(&answer).unwrap();
    assert_eq!(keys.total, 30);
    assert_eq!(keys.pairs.len(), 2);
    assert_eq!(keys.pairs[0].durations, 40);
    assert_eq!(
        keys.overflow,
        [
            OverflowScope::Environments {
                service: "api".into(),
                kept: vec!["production".into()]
            },
            OverflowScope::Services {
                kept: vec!["api".into(), "web".into()]
            },
        ]
    );
    // The overflow filters select exactly the left-out spans.
    assert_eq!(
        keys.overflow[0].filter(),
        json!({"bool": {"filter": [{"term": {"service_name": "api"}}],
            "must_not": [{"terms": {"environment": ["production"]}}]}})
    );
    assert_eq!(keys.overflow[1].key().service, OVERFLOW_KEY);
    assert_eq!(keys.overflow[1].key().overflow, Overflow::Service);
}

fn sketch_bucket(key: &str, n: u64, errors: u64, durations: &[(i64, u64)]) -> Value {
    json!({
        "key": key, "doc_count": n,
        "errors": {"doc_count": errors},
        "duration": {"count": n, "min": 1.0, "max": 9.0, "sum": 20.0},
        "buckets": {"sum_other_doc_count": 0, "buckets":
            durations.iter().map(|(k, c)| json!({"key": k, "doc_count": c})).collect::<Vec<_>>()}
    })
}

#[test]
fn stats_read_sketches_and_zero_durations() {
    let scope = Scope {
        pairs: vec![pair("api", "production", 2, 5)],
        endpoints: None,
    };
    let answer = json!({"aggregations": {"s": {"sum_other_doc_count": 0, "buckets": [
        {"key": "api", "doc_count": 7, "e": {"sum_other_doc_count": 0, "buckets": [
            {"key": "production", "doc_count": 7, "n": {"sum_other_doc_count": 0,
                "doc_count_error_upper_bound": 0, "buckets": [
                sketch_bucket("GET /a", 4, 1, &[(10, 2), (20, 1)]),
                sketch_bucket("GET /b", 3, 0, &[(5, 3)])
            ]}}
        ]}}
    ]}}});
    let result = read_stats(&answer, &scope).unwrap();
    assert!(result.overflow.is_empty() && result.again.is_empty());
    let (key, a) = &result.series[0];
    assert_eq!(key.endpoint, "GET /a");
    assert_eq!(a.errors, 1);
    assert_eq!(a.sketch.count, 4);
    assert_eq!(
        a.sketch.zeros, 1,
        "a span without a duration bucket has a zero duration"
    );
    assert_eq!(a.sketch.max, 9.0);
}

#[test]
fn endpoints_beyond_the_cap_overflow_and_approximate_counts_are_asked_again() {
    let scope = Scope {
        pairs: vec![pair("api", "production", 9, 5)],
        endpoints: None,
    };
    let endpoints = |bound: i64| {
        json!({"aggregations": {"s": {"sum_other_doc_count": 0, "buckets": [
            {"key": "api", "doc_count": 9, "e": {"sum_other_doc_count": 0, "buckets": [
                {"key": "production", "doc_count": 9, "n": {"sum_other_doc_count": 4,
                    "doc_count_error_upper_bound": bound, "buckets": [
                    sketch_bucket("GET /a", 5, 0, &[(10, 5)])
                ]}}
            ]}}
        ]}}})
    };
    let exact = read_stats(&endpoints(0), &scope).unwrap();
    assert_eq!(exact.series.len(), 1);
    assert_eq!(
        exact.overflow,
        [OverflowScope::Endpoints {
            service: "api".into(),
            environment: "production".into(),
            kept: vec!["GET /a".into()]
        }]
    );
    let approximate = read_stats(&endpoints(2), &scope).unwrap();
    assert!(approximate.series.is_empty());
    assert_eq!(approximate.again.len(), 1);
    assert_eq!(
        approximate.again[0].endpoints,
        Some(vec!["GET /a".to_owned()])
    );
    // Restricted to its endpoint list, a scope must not see other endpoints.
    assert!(read_stats(&endpoints(0), &approximate.again[0]).is_err());
}

#[test]
fn incomplete_duration_buckets_are_an_error_not_a_smaller_sketch() {
    let mut bucket = sketch_bucket("x", 4, 0, &[(1, 4)]);
    bucket["buckets"]["sum_other_doc_count"] = json!(1);
    assert!(read_sketch(&bucket).is_err());
}

#[test]
fn scopes_fit_the_budget_and_split_down_to_endpoints() {
    let c = Caps {
        services: 200,
        environments: 10,
        endpoints: 100,
    };
    let pairs: Vec<Pair> = (0..40)
        .map(|i| pair(&format!("s{i}"), "production", 10, 300))
        .collect();
    let scopes = plan_scopes(&pairs, &c);
    assert!(scopes.len() > 1);
    for s in &scopes {
        assert!(s.estimate(&c) <= BUCKET_BUDGET, "{}", s.estimate(&c));
    }
    assert_eq!(scopes.iter().map(|s| s.pairs.len()).sum::<usize>(), 40);

    let big = pair("huge", "production", 100, 1000);
    let scopes = plan_scopes(std::slice::from_ref(&big), &c);
    assert!(scopes[0].estimate(&c) > BUCKET_BUDGET);
    assert_eq!(split(&scopes[0]), Split::ListEndpoints(big.clone()));
    let chunks = chunk_endpoints(&big, (0..100).map(|i| format!("e{i}")).collect());
    assert!(chunks.len() > 1);
    for chunk in &chunks {
        assert!(chunk.estimate(&c) <= BUCKET_BUDGET);
        assert!(matches!(split(chunk), Split::Halves(..)));
    }
    let one = Scope {
        pairs: vec![big],
        endpoints: Some(vec!["e0".into()]),
    };
    assert_eq!(split(&one), Split::Atomic);
}

#[test]
fn service_series_merge_endpoints_and_count_folded_spans() {
    let mut rollup = WindowRollup::default();
    let mut add = |s: &str, e: &str, n: &str, overflow, values: &[f64]| {
        let mut sketch = Sketch::new();
        for v in values {
            sketch.add(*v);
        }
        rollup.add(
            SeriesKey {
                service: s.into(),
                environment: e.into(),
                endpoint: n.into(),
                overflow,
            },
            SeriesStats { errors: 0, sketch },
        );
    };
    add("api", "production", "a", Overflow::None, &[1.0, 2.0]);
    add(
        "api",
        "production",
        OVERFLOW_KEY,
        Overflow::Endpoint,
        &[3.0],
    );
    add(
        OVERFLOW_KEY,
        OVERFLOW_KEY,
        OVERFLOW_KEY,
        Overflow::Service,
        &[4.0, 5.0],
    );
    let services = rollup.services();
    assert_eq!(services.len(), 2);
    assert_eq!(
        services[&("api".to_owned(), "production".to_owned(), Overflow::None)]
            .sketch
            .count,
        3
    );
    assert_eq!(rollup.counted(), 5);
    assert_eq!(
        rollup.folded(),
        BTreeMap::from([(Overflow::Endpoint, 1), (Overflow::Service, 2)])
    );
}
