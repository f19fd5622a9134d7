//! The API's behaviour around the routes: the Redis cache (hit, miss, expiry, Redis down),
//! failures of Elasticsearch (503, 504), unknown routes, auth, CORS and metrics.

mod common;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::{MIN, World, iso_param, loaded, span};
use panopticon_query::auth::Tokens;

fn metrics_url(t0: i64) -> String {
    format!(
        "/query/services/checkout/metrics?from={}&to={}&interval=1m",
        iso_param(t0),
        iso_param(t0 + 10 * MIN - 1)
    )
}

fn total(body: &serde_json::Value) -> f64 {
    body[0]["points"]
        .as_array()
        .expect("points")
        .iter()
        .map(|p| p["value"].as_f64().expect("a number"))
        .sum()
}

#[tokio::test]
async fn cache_hits_misses_and_expires() {
    let (world, data) = loaded("q-cache").await.unwrap();
    let api = world.api(&[("METRICS_CACHE_TTL_SECONDS", "5")]).unwrap();
    let url = metrics_url(data.t0);

    let first = api.get(&url).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.cache(), "miss");
    assert_eq!(total(&first.json), 170.0);

    // New spans in the range: a hit still serves the stored answer...
    world
        .index_spans(&[span(
            "checkout",
            "prod",
            "GET /orders",
            "SERVER",
            false,
            1.0,
            data.t0 + 1000,
            "new",
            "new",
            None,
        )])
        .await
        .unwrap();
    let second = api.get(&url).await;
    assert_eq!(second.cache(), "hit");
    assert_eq!(second.text, first.text);

    // ...until it expires.
    tokio::time::sleep(Duration::from_millis(5500)).await;
    let third = api.get(&url).await;
    assert_eq!(third.cache(), "miss");
    assert_eq!(total(&third.json), 171.0);

    // Another replica (a second router over the same Redis) shares the entry.
    let other = world.api(&[("METRICS_CACHE_TTL_SECONDS", "5")]).unwrap();
    assert_eq!(other.get(&url).await.cache(), "hit");

    // TTL 0 turns caching off for the route.
    let uncached = world.api(&[("QUERY_CACHE_TTL_SECONDS", "0")]).unwrap();
    let services = format!(
        "/query/services?from={}&to={}",
        iso_param(data.t0),
        iso_param(data.t0 + MIN)
    );
    assert_eq!(uncached.get(&services).await.cache(), "bypass");
    assert_eq!(uncached.get(&services).await.cache(), "bypass");

    let exposition = api.get("/metrics").await.text;
    assert!(
        exposition.contains("panopticon_query_cache_requests_total{result=\"hit\"} 1"),
        "{exposition}"
    );
    assert!(exposition.contains(
        "panopticon_query_http_request_duration_seconds_count{route=\"/query/services/{service}/metrics\",status=\"2xx\"} 3"
    ), "{exposition}");
}

#[tokio::test]
async fn redis_down_is_a_miss_not_an_error() {
    let (world, data) = loaded("q-redis-down").await.unwrap();
    let port = panopticon_e2e::ingest::free_port().unwrap();
    let dead = format!("redis://127.0.0.1:{port}");
    let api = world.api(&[("REDIS_URL", dead.as_str())]).unwrap();
    for _ in 0..2 {
        let answer = api.get(&metrics_url(data.t0)).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
        assert_eq!(answer.cache(), "miss");
        assert_eq!(total(&answer.json), 170.0);
    }
    let ready = api.get("/ready").await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(ready.json["redis"], "down");
    let exposition = api.get("/metrics").await.text;
    assert!(
        panopticon_e2e::ingest::metric(&exposition, "panopticon_query_cache_errors_total") >= 2.0,
        "{exposition}"
    );
}

#[tokio::test]
async fn elasticsearch_down_is_503_and_silent_is_504() {
    let world = World::create("q-es-down").await.unwrap();
    let closed = format!(
        "http://127.0.0.1:{}",
        panopticon_e2e::ingest::free_port().unwrap()
    );
    let api = world
        .api(&[("ELASTICSEARCH_NODE", closed.as_str())])
        .unwrap();
    let answer = api.get("/query/services").await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer.json["statusCode"], 503);
    assert!(!answer.text.contains("127.0.0.1"), "{}", answer.text);
    assert_eq!(
        api.get("/ready").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );

    // A server that accepts connections and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_url = format!("http://{}", silent.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let api = world
        .api(&[
            ("ELASTICSEARCH_NODE", silent_url.as_str()),
            ("QUERY_TIMEOUT_MS", "300"),
        ])
        .unwrap();
    let started = std::time::Instant::now();
    let answer = api.get("/query/services/checkout/metrics").await;
    assert_eq!(
        answer.status,
        StatusCode::GATEWAY_TIMEOUT,
        "{}",
        answer.text
    );
    assert_eq!(answer.json["statusCode"], 504);
    assert!(started.elapsed() < Duration::from_secs(5));
    let exposition = api.get("/metrics").await.text;
    assert!(
        exposition.contains("panopticon_query_elasticsearch_errors_total{kind=\"timeout\"} 1"),
        "{exposition}"
    );
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json() {
    let world = World::create("q-404").await.unwrap();
    let api = world.api(&[]).unwrap();
    let answer = api.get("/query/nothing/here").await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert_eq!(answer.json["message"], "Cannot GET /query/nothing/here");
    let answer = api
        .request(
            Request::post("/query/services")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(answer.json["statusCode"], 405);
    let doc = api.ok("/api-docs-json").await;
    assert_eq!(doc["openapi"].as_str().map(|v| &v[..2]), Some("3."));
    let ui = api.get("/api-docs").await;
    assert!(ui.text.contains("swagger-ui"));
}

#[tokio::test]
async fn bearer_tokens_guard_the_query_routes_only() {
    let world = World::create("q-auth").await.unwrap();
    let api = world
        .api_with_tokens(&[], Some(Tokens::from_list(&["s3cret-token"])))
        .unwrap();
    let get = |auth: Option<&str>| {
        let mut request = Request::get("/query/services");
        if let Some(a) = auth {
            request = request.header(header::AUTHORIZATION, a);
        }
        request.body(Body::empty()).unwrap()
    };
    let denied = api.request(get(None)).await;
    assert_eq!(denied.status, StatusCode::UNAUTHORIZED);
    assert_eq!(denied.json["statusCode"], 401);
    assert_eq!(denied.headers[header::WWW_AUTHENTICATE], "Bearer");
    assert_eq!(
        api.request(get(Some("Bearer wrong"))).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        api.request(get(Some("s3cret-token"))).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        api.request(get(Some("Bearer s3cret-token"))).await.status,
        StatusCode::OK
    );
    // Probes stay open for the kubelet.
    assert_eq!(api.get("/health").await.status, StatusCode::OK);
}

#[tokio::test]
async fn cors_only_for_configured_origins() {
    let world = World::create("q-cors").await.unwrap();
    let from = |origin: &str| {
        Request::get("/query/services")
            .header(header::ORIGIN, origin)
            .body(Body::empty())
            .unwrap()
    };
    let allow = header::ACCESS_CONTROL_ALLOW_ORIGIN;

    let closed = world.api(&[]).unwrap();
    let answer = closed.request(from("https://dash.example")).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(answer.headers.get(&allow).is_none());

    let listed = world
        .api(&[("CORS_ALLOWED_ORIGINS", "https://dash.example")])
        .unwrap();
    let answer = listed.request(from("https://dash.example")).await;
    assert_eq!(answer.headers[&allow], "https://dash.example");
    let answer = listed.request(from("https://evil.example")).await;
    assert!(answer.headers.get(&allow).is_none());

    let any = world.api(&[("CORS_ALLOWED_ORIGINS", "*")]).unwrap();
    let answer = any.request(from("https://anywhere.example")).await;
    assert_eq!(answer.headers[&allow], "*");
}
