//! Alert against the real Kafka of the test stack, with real clients: the dashboard's own
//! `socket.io-client` (node), a Rust Socket.IO client and plain WebSockets.

use std::time::Duration;

use panopticon_e2e::ingest::{free_port, http_get, metric, wait_until};
use panopticon_e2e::kafka::{add_partitions, create_topics, produce, producer};
use panopticon_e2e::live::{NodeClient, Received, SocketIoClient, next_json, websocket};
use panopticon_e2e::unique_name;
use panopticon_model::config::{AlertConfig, EnvSource};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(30);

/// An alert server running in this process on its own error topic.
struct Alert {
    topic: String,
    port: u16,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Alert {
    async fn start(partitions: i32, env: &[(&str, &str)]) -> Self {
        let topic = unique_name("alert-errors");
        create_topics(&[&topic], partitions)
            .await
            .expect("create topic");
        Self::on_topic(topic, env).await
    }

    async fn on_topic(topic: String, env: &[(&str, &str)]) -> Self {
        // The server's log goes to the test's output (shown when a test fails).
        // A second init in the same test binary fails: the first one holds.
        panopticon_common::telemetry::init(panopticon_common::telemetry::LogFormat::Plain).ok();
        let brokers = panopticon_e2e::kafka_brokers();
        let mut pairs: Vec<(&str, &str)> = vec![
            ("KAFKA_BROKERS", brokers.as_str()),
            ("KAFKA_APM_LOG_ERROR_TOPIC", topic.as_str()),
        ];
        pairs.extend_from_slice(env);
        let config = AlertConfig::from_env(&EnvSource::from_pairs(&pairs)).expect("config");
        let port = free_port().expect("port");
        let stop = CancellationToken::new();
        let task = tokio::spawn(panopticon_alert::run(
            config,
            panopticon_alert::RunOptions {
                listen: Some(([127, 0, 0, 1], port).into()),
                admin_addr: None,
            },
            stop.clone(),
        ));
        let ready = format!("http://127.0.0.1:{port}/ready");
        wait_until("alert reads the error topic", WAIT, || {
            let ready = ready.clone();
            async move { Ok(matches!(http_get(&ready).await, Ok((200, _)))) }
        })
        .await
        .expect("alert ready");
        Self {
            topic,
            port,
            stop,
            task,
        }
    }

    fn ws_base(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }

    async fn metrics(&self) -> String {
        http_get(&format!("http://127.0.0.1:{}/metrics", self.port))
            .await
            .expect("metrics")
            .1
    }

    async fn stop(self) {
        self.stop.cancel();
        self.task.await.expect("join").expect("alert ran cleanly");
    }
}

fn error_event(service: &str, environment: &str, level: &str, n: usize) -> Value {
    json!({
        "timestamp": format!("2026-11-25T10:00:{:02}.{:03}Z", n % 60, n % 1000),
        "service_name": service,
        "environment": environment,
        "level": level,
        "message": format!("boom {n}"),
        "trace_id": format!("trace-{n}"),
        "span_id": format!("span-{n}"),
        "labels": {"n": n},
    })
}

async fn publish(topic: &str, events: &[Value]) {
    let values: Vec<Vec<u8>> = events.iter().map(|e| e.to_string().into_bytes()).collect();
    produce(&producer().expect("producer"), topic, &values)
        .await
        .expect("produce");
}

fn numbers(payloads: &[Value]) -> Vec<u64> {
    let mut ns: Vec<u64> = payloads
        .iter()
        .map(|p| p["labels"]["n"].as_u64().expect("labels.n"))
        .collect();
    ns.sort_unstable();
    ns
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboards_client_receives_every_error_with_the_seeds_payload() {
    let alert = Alert::start(3, &[]).await;
    let mut dashboard = NodeClient::start(&alert.ws_base(), &json!({})).expect("node client");
    dashboard.connected(WAIT).await.expect("connected");

    // 60 errors over three partitions, some batched in one record (an array), one invalid.
    let events: Vec<Value> = (0..60)
        .map(|n| error_event(["checkout", "cart", "search"][n % 3], "PROD", "ERROR", n))
        .collect();
    publish(&alert.topic, &events[..50]).await;
    let mut batch = events[50..].to_vec();
    batch.push(json!({"service_name": "x", "environment": "dev", "level": "ERROR"}));
    publish(&alert.topic, &[Value::Array(batch)]).await;

    let got = dashboard.error_logs(60, WAIT).await.expect("60 error logs");
    assert_eq!(
        numbers(&got),
        (0..60).collect::<Vec<u64>>(),
        "each error exactly once"
    );
    let first = got.iter().find(|p| p["labels"]["n"] == 7).expect("error 7");
    assert_eq!(
        first,
        &json!({
            "timestamp": "2026-11-25T10:00:07.007Z",
            "service_name": "cart",
            "environment": "production",
            "level": "ERROR",
            "message": "boom 7",
            "trace_id": "trace-7",
            "span_id": "span-7",
            "labels": {"n": 7},
        }),
        "the dashboard's LogItem shape, environment normalised"
    );
    let extra = dashboard
        .lines_within(Duration::from_millis(500))
        .await
        .expect("lines");
    assert!(extra.is_empty(), "nothing else arrives: {extra:?}");

    let m = alert.metrics().await;
    assert_eq!(metric(&m, "panopticon_alert_events_received_total"), 60.0);
    assert_eq!(
        metric(
            &m,
            "panopticon_alert_events_invalid_total{reason=\"missing\"}"
        ),
        1.0
    );
    assert_eq!(
        metric(&m, "panopticon_alert_clients{transport=\"socketio\"}"),
        1.0
    );
    dashboard.stop().await;
    alert.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_replay_and_the_plain_websocket() {
    let alert = Alert::start(2, &[("ERROR_STREAM_REPLAY_SIZE", "50")]).await;
    // History before anyone connects: kept for replay, never pushed live.
    let history: Vec<Value> = (0..10)
        .map(|n| {
            error_event(
                if n % 2 == 0 { "checkout" } else { "cart" },
                "prod",
                "ERROR",
                n,
            )
        })
        .collect();
    // One at a time, so each has its own record timestamp: "most recent" is then defined
    // whichever partition is read first.
    for event in &history {
        publish(&alert.topic, std::slice::from_ref(event)).await;
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    let mut checkout_errors = NodeClient::start(
        &alert.ws_base(),
        &json!({"query": {"service": "checkout", "environment": "production", "level": "ERROR", "replay": "3"}}),
    )
    .expect("node client");
    // The replay arrives right after connecting, so history must be in before the client is.
    wait_until("history read", WAIT, || async {
        let m = alert.metrics().await;
        Ok(metric(&m, "panopticon_alert_events_received_total") >= 10.0)
    })
    .await
    .expect("history");
    checkout_errors.connected(WAIT).await.expect("connected");
    let replayed = checkout_errors.error_logs(3, WAIT).await.expect("replay");
    assert_eq!(
        numbers(&replayed),
        [4, 6, 8],
        "the 3 most recent checkout errors"
    );

    let mut cart = websocket(
        &format!("{}/ws/errors?service=cart&level=warn", alert.ws_base()),
        &[],
    )
    .await
    .expect("plain websocket");
    let mut everything = SocketIoClient::connect(&alert.ws_base(), "/ws/error-logs", &[], None)
        .await
        .expect("rust client");

    let live = vec![
        error_event("checkout", "production", "ERROR", 100),
        error_event("checkout", "staging", "ERROR", 101),
        error_event("checkout", "production", "WARN", 102),
        error_event("cart", "production", "WARN", 103),
        error_event("cart", "production", "INFO", 104),
        error_event("search", "production", "ERROR", 105),
    ];
    publish(&alert.topic, &live).await;

    assert_eq!(
        numbers(&checkout_errors.error_logs(1, WAIT).await.expect("checkout")),
        [100]
    );
    let cart_error = tokio::time::timeout(WAIT, next_json(&mut cart))
        .await
        .expect("in time")
        .expect("frame")
        .expect("open");
    assert_eq!(cart_error["labels"]["n"], 103, "{cart_error}");
    assert_eq!(cart_error["service_name"], "cart");
    let all = everything
        .events_within(Duration::from_secs(3))
        .await
        .expect("events");
    let names: Vec<&str> = all.iter().map(|(name, _)| name.as_str()).collect();
    assert!(names.iter().all(|n| *n == "error-log"), "{names:?}");
    let all: Vec<Value> = all.into_iter().map(|(_, data)| data).collect();
    assert_eq!(
        numbers(&all),
        [100, 101, 102, 103, 104, 105],
        "no filter: everything live, no replay by default"
    );
    let nothing_else = checkout_errors
        .lines_within(Duration::from_millis(300))
        .await
        .expect("lines");
    assert!(nothing_else.is_empty(), "{nothing_else:?}");

    // A bad filter is refused, naming the parameter, on both transports.
    let mut bad = NodeClient::start(
        &alert.ws_base(),
        &json!({"query": {"level": "LOUD"}, "reconnection": false}),
    )
    .expect("node client");
    let refused = bad.next_line(WAIT).await.expect("line");
    assert_eq!(refused["type"], "connect_error", "{refused}");
    assert!(
        refused["message"].as_str().unwrap().starts_with("level:"),
        "{refused}"
    );
    let e = websocket(&format!("{}/ws/errors?replay=lots", alert.ws_base()), &[])
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("HTTP 400") && e.contains("\"parameter\":\"replay\""),
        "{e}"
    );
    bad.stop().await;
    checkout_errors.stop().await;
    alert.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_and_origins_are_enforced_on_both_transports() {
    let dir = std::env::temp_dir().join(unique_name("alert-tokens"));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("tokens");
    std::fs::write(&file, "# alert clients\ns3cret-token\n").expect("write");
    let file = file.to_string_lossy().into_owned();
    let alert = Alert::start(
        1,
        &[
            ("ERROR_STREAM_AUTH_TOKENS_FILE", file.as_str()),
            ("ERROR_STREAM_WS_ORIGINS", "https://dash.example"),
        ],
    )
    .await;

    let mut anonymous =
        NodeClient::start(&alert.ws_base(), &json!({"reconnection": false})).expect("node client");
    let refused = anonymous.next_line(WAIT).await.expect("line");
    assert_eq!(refused["type"], "connect_error", "{refused}");
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .starts_with("unauthorized"),
        "{refused}"
    );
    let wrong = SocketIoClient::connect(
        &alert.ws_base(),
        "/ws/error-logs",
        &[],
        Some(json!({"token": "guess"})),
    )
    .await;
    assert!(wrong.is_err_and(|e| e.to_string().contains("unauthorized")));

    let mut authorised = NodeClient::start(
        &alert.ws_base(),
        &json!({"auth": {"token": "s3cret-token"}}),
    )
    .expect("node client");
    authorised
        .connected(WAIT)
        .await
        .expect("auth payload accepted");
    let mut by_query = SocketIoClient::connect(
        &alert.ws_base(),
        "/ws/error-logs",
        &[("token", "s3cret-token")],
        None,
    )
    .await
    .expect("?token= accepted");

    let ws_url = format!("{}/ws/errors", alert.ws_base());
    let e = websocket(&ws_url, &[]).await.unwrap_err().to_string();
    assert!(e.starts_with("HTTP 401"), "{e}");
    let mut ws = websocket(&ws_url, &[("authorization", "Bearer s3cret-token")])
        .await
        .expect("bearer header accepted");

    // Origins: a listed page may connect, another page may not, whatever its token.
    let e = websocket(
        &ws_url,
        &[
            ("authorization", "Bearer s3cret-token"),
            ("origin", "https://evil.example"),
        ],
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with("HTTP 403") && e.contains("evil.example"),
        "{e}"
    );
    let e = websocket(
        &format!(
            "{}/ws/error-logs/?EIO=4&transport=websocket&token=s3cret-token",
            alert.ws_base()
        ),
        &[("origin", "https://evil.example")],
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("HTTP 403"), "Socket.IO too: {e}");
    let _listed = websocket(
        &ws_url,
        &[
            ("authorization", "Bearer s3cret-token"),
            ("origin", "https://dash.example"),
        ],
    )
    .await
    .expect("listed origin");

    publish(&alert.topic, &[error_event("checkout", "prod", "ERROR", 1)]).await;
    assert_eq!(
        numbers(&authorised.error_logs(1, WAIT).await.expect("event")),
        [1]
    );
    assert!(matches!(
        by_query.next().await.expect("event"),
        Received::Event { .. }
    ));
    let frame = tokio::time::timeout(WAIT, next_json(&mut ws))
        .await
        .expect("in time")
        .expect("frame");
    assert_eq!(frame.expect("open")["labels"]["n"], 1);

    let m = alert.metrics().await;
    assert!(
        metric(
            &m,
            "panopticon_alert_connections_rejected_total{reason=\"auth\"}"
        ) >= 3.0,
        "{m}"
    );
    assert_eq!(
        metric(
            &m,
            "panopticon_alert_connections_rejected_total{reason=\"origin\"}"
        ),
        2.0
    );
    anonymous.stop().await;
    authorised.stop().await;
    alert.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_client_misses_events_is_told_how_many_and_holds_nobody_back() {
    // A queue of 512 (4 MiB of these events): the stalled clients still overflow it many times
    // over, while the healthy node client, sharing two loaded cores with the whole test binary,
    // is not pushed over it by a scheduling hiccup (32 was, on a busy CI machine).
    let alert = Alert::start(2, &[("ERROR_STREAM_CLIENT_QUEUE", "512")]).await;
    let mut healthy = NodeClient::start(&alert.ws_base(), &json!({})).expect("node client");
    healthy.connected(WAIT).await.expect("connected");
    // Connected, then never reading: its socket buffers fill, then its queue.
    let mut stalled_socketio =
        SocketIoClient::connect(&alert.ws_base(), "/ws/error-logs", &[], None)
            .await
            .expect("stalled socket.io client");
    let mut stalled_ws = websocket(&format!("{}/ws/errors", alert.ws_base()), &[])
        .await
        .expect("stalled websocket");

    // 4 000 errors of 8 KiB: 32 MiB, far beyond what socket buffers hold.
    const N: usize = 4000;
    let filler = "x".repeat(8 * 1024);
    let events: Vec<Value> = (0..N)
        .map(|n| {
            let mut e = error_event("checkout", "prod", "ERROR", n);
            e["message"] = json!(format!("boom {n} {filler}"));
            e
        })
        .collect();
    publish(&alert.topic, &events).await;
    let got = healthy
        .error_logs(N, Duration::from_secs(60))
        .await
        .expect("the healthy client gets everything while two others stall");
    assert_eq!(numbers(&got).len(), N);

    // The stalled clients read again: what was queued for them arrives, then silence. One
    // more error follows, and the notice of what they missed comes before it.
    let (mut events_seen, mut missed) = (0u64, 0u64);
    let (mut ws_events, mut ws_missed) = (0u64, 0u64);
    let count = |name: &str, data: &Value, events: &mut u64, missed: &mut u64| {
        if name == "missed" {
            *missed += data["missed"].as_u64().expect("missed count");
        } else {
            *events += 1;
        }
        data["labels"]["n"] == N
    };
    let quiet = Duration::from_secs(2);
    while let Ok(received) = tokio::time::timeout(quiet, stalled_socketio.next()).await {
        match received.expect("read") {
            Received::Event { name, data } => {
                let name = if name == "error-log-missed" {
                    "missed"
                } else {
                    &name
                };
                count(name, &data, &mut events_seen, &mut missed);
            }
            Received::Disconnected => panic!("the stalled client was disconnected"),
        }
    }
    while let Ok(frame) = tokio::time::timeout(quiet, next_json(&mut stalled_ws)).await {
        let frame = frame.expect("frame").expect("open");
        let name = if frame["event"] == "missed" {
            "missed"
        } else {
            "error-log"
        };
        count(name, &frame, &mut ws_events, &mut ws_missed);
    }
    publish(&alert.topic, &[error_event("checkout", "prod", "ERROR", N)]).await;
    loop {
        match tokio::time::timeout(WAIT, stalled_socketio.next())
            .await
            .expect("in time")
            .expect("read")
        {
            Received::Event { name, data } => {
                let name = if name == "error-log-missed" {
                    "missed"
                } else {
                    &name
                };
                if count(name, &data, &mut events_seen, &mut missed) {
                    break;
                }
            }
            Received::Disconnected => panic!("the stalled client was disconnected"),
        }
    }
    loop {
        let frame = tokio::time::timeout(WAIT, next_json(&mut stalled_ws))
            .await
            .expect("in time")
            .expect("frame")
            .expect("open");
        let name = if frame["event"] == "missed" {
            "missed"
        } else {
            "error-log"
        };
        if count(name, &frame, &mut ws_events, &mut ws_missed) {
            break;
        }
    }
    assert!(missed > 0, "the stalled Socket.IO client missed events");
    assert_eq!(
        events_seen + missed,
        N as u64 + 1,
        "every event delivered or counted"
    );
    assert!(ws_missed > 0, "the stalled WebSocket client missed events");
    assert_eq!(
        ws_events + ws_missed,
        N as u64 + 1,
        "every event delivered or counted"
    );

    let m = alert.metrics().await;
    assert_eq!(
        metric(
            &m,
            "panopticon_alert_events_dropped_total{transport=\"socketio\"}"
        ),
        missed as f64
    );
    assert_eq!(
        metric(
            &m,
            "panopticon_alert_events_dropped_total{transport=\"websocket\"}"
        ),
        ws_missed as f64
    );
    healthy.stop().await;
    alert.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waits_for_a_missing_topic_and_reads_partitions_added_later() {
    let topic = unique_name("alert-later");
    let alert_task = tokio::spawn({
        let topic = topic.clone();
        async move { Alert::on_topic(topic, &[("ERROR_STREAM_TOPIC_REFRESH_SECONDS", "1")]).await }
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !alert_task.is_finished(),
        "not ready while its topic is missing"
    );
    create_topics(&[&topic], 1).await.expect("create");
    let alert = tokio::time::timeout(Duration::from_secs(60), alert_task)
        .await
        .expect("ready once the topic exists")
        .expect("join");
    let mut client = SocketIoClient::connect(&alert.ws_base(), "/ws/error-logs", &[], None)
        .await
        .expect("client");

    add_partitions(&topic, 4).await.expect("add partitions");
    wait_until("the new partitions are read", WAIT, || async {
        Ok(metric(
            &alert.metrics().await,
            "panopticon_alert_error_topic_partitions",
        ) == 4.0)
    })
    .await
    .expect("4 partitions");
    // Keys spread the errors over all four partitions.
    let events: Vec<Value> = (0..40)
        .map(|n| error_event("checkout", "prod", "ERROR", n))
        .collect();
    publish(&alert.topic, &events).await;
    let mut got = Vec::new();
    while got.len() < 40 {
        match tokio::time::timeout(WAIT, client.next())
            .await
            .expect("in time")
            .expect("read")
        {
            Received::Event { data, .. } => got.push(data),
            Received::Disconnected => panic!("disconnected"),
        }
    }
    assert_eq!(numbers(&got), (0..40).collect::<Vec<u64>>());
    alert.stop().await;
}
