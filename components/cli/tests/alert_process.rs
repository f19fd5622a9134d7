//! `panopticon alert` as real processes: two replicas on one error topic each push every
//! error to their own dashboard client (a shared consumer group would give each half), and
//! SIGTERM closes client connections so that they reconnect, and exits cleanly.

use std::path::Path;
use std::time::Duration;

use anyhow::{Result, ensure};
use panopticon_e2e::ingest::{free_port, http_get, metric, wait_until};
use panopticon_e2e::kafka::{create_topics, produce, producer};
use panopticon_e2e::live::NodeClient;
use panopticon_e2e::process::Component;
use panopticon_model::config::{AlertConfig, EnvSource, ToEnv as _};
use serde_json::json;

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_panopticon"))
}

const WAIT: Duration = Duration::from_secs(30);

async fn start_replica(topic: &str, n: usize) -> Result<(Component, u16)> {
    let brokers = panopticon_e2e::kafka_brokers();
    let port = free_port()?;
    // Only the variables the operator renders.
    let config = AlertConfig::from_env(&EnvSource::from_pairs(&[
        ("KAFKA_BROKERS", &brokers),
        ("KAFKA_APM_LOG_ERROR_TOPIC", topic),
        ("ERROR_STREAM_PORT", &port.to_string()),
    ]))?;
    let env: Vec<(String, String)> = config
        .to_env()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    let alert = Component::start(binary(), &["alert"], &env, &format!("alert-{n}")).await?;
    let ready = format!("http://127.0.0.1:{port}/ready");
    wait_until("the replica reads the error topic", WAIT, || {
        let ready = ready.clone();
        async move { Ok(matches!(http_get(&ready).await, Ok((200, _)))) }
    })
    .await
    .map_err(|e| e.context(alert.log_tail()))?;
    Ok((alert, port))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_replica_delivers_every_error_and_sigterm_disconnects_clients() -> Result<()> {
    let topic = panopticon_e2e::unique_name("alert-replicas");
    create_topics(&[&topic], 4).await?;
    let (mut first, first_port) = start_replica(&topic, 1).await?;
    let (mut second, second_port) = start_replica(&topic, 2).await?;
    let mut clients = Vec::new();
    for port in [first_port, second_port] {
        let mut client = NodeClient::start(&format!("ws://127.0.0.1:{port}"), &json!({}))?;
        client.connected(WAIT).await?;
        clients.push(client);
    }

    let values: Vec<Vec<u8>> = (0..200)
        .map(|n| {
            json!({
                "service_name": format!("svc-{}", n % 7), "environment": "prod",
                "level": "ERROR", "message": format!("boom {n}"), "labels": {"n": n},
            })
            .to_string()
            .into_bytes()
        })
        .collect();
    produce(&producer()?, &topic, &values).await?;
    for (i, client) in clients.iter_mut().enumerate() {
        let got = client.error_logs(200, WAIT).await?;
        let mut ns: Vec<u64> = got
            .iter()
            .filter_map(|p| p["labels"]["n"].as_u64())
            .collect();
        ns.sort_unstable();
        ensure!(
            ns == (0..200).collect::<Vec<u64>>(),
            "replica {} delivered {} distinct errors",
            i + 1,
            ns.len()
        );
    }
    for alert in [&first, &second] {
        let m = alert.metrics().await?;
        ensure!(
            metric(&m, "panopticon_alert_events_received_total") == 200.0,
            "{m}"
        );
        ensure!(
            metric(
                &m,
                "panopticon_alert_events_delivered_total{transport=\"socketio\"}"
            ) == 200.0,
            "{m}"
        );
        ensure!(
            metric(&m, "panopticon_alert_error_topic_partitions") == 4.0,
            "{m}"
        );
    }

    // SIGTERM closes the transport; socket.io-client then reconnects by itself (to another
    // replica behind the Service), which an "io server disconnect" would have prevented.
    let status = first.terminate(Duration::from_secs(20)).await?;
    ensure!(
        status.success(),
        "alert exited with {status}: {}",
        first.log_tail()
    );
    let line = clients[0].next_line(WAIT).await?;
    ensure!(
        line["type"] == "disconnect" && line["reason"] == "transport close",
        "{line}"
    );
    let status = second.terminate(Duration::from_secs(20)).await?;
    ensure!(status.success(), "alert exited with {status}");
    for client in clients {
        client.stop().await;
    }
    Ok(())
}
