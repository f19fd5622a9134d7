//! `panopticon query` as a real process over HTTP: configured only through the variables the
//! operator renders (plus a token file), it serves the dashboard's calls, guards them with the
//! bearer token, and stops cleanly on SIGTERM.

#[path = "../../query/tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::time::Duration;

use anyhow::{Result, ensure};
use panopticon_e2e::ingest::{free_port, http_get, http_with_headers, wait_until};
use panopticon_e2e::process::Component;
use panopticon_model::config::ToEnv as _;

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_panopticon"))
}

/// GET with an optional bearer token.
async fn get_with_token(url: &str, token: Option<&str>) -> Result<(u16, String)> {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
    http_with_headers("GET", url, &headers, None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_the_dashboard_over_http_and_stops_on_sigterm() -> Result<()> {
    let (world, data) = common::loaded("query-proc").await?;
    let port = free_port()?;
    let token_file = std::env::temp_dir().join(panopticon_e2e::unique_name("tokens"));
    std::fs::write(&token_file, "# dashboard\ndash-token\n")?;
    let token_path = token_file.to_string_lossy().into_owned();
    let config = world.config(&[
        ("PORT", &port.to_string()),
        ("QUERY_AUTH_TOKENS_FILE", &token_path),
        ("CORS_ALLOWED_ORIGINS", "*"),
    ])?;
    let env: Vec<(String, String)> = config
        .to_env()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    let mut query = Component::start(
        binary(),
        &["query", "--listen", &format!("127.0.0.1:{port}")],
        &env,
        "query",
    )
    .await?;
    let base = format!("http://127.0.0.1:{port}");
    wait_until("the API", Duration::from_secs(30), || {
        let url = format!("{base}/health");
        async move { Ok(http_get(&url).await.is_ok()) }
    })
    .await?;

    let (status, _) = http_get(&format!("{base}/ready")).await?;
    ensure!(status == 200, "ready answered {status}");
    let range = format!(
        "from={}&to={}",
        common::iso_param(data.t0 - 60_000),
        common::iso_param(data.t0 + 11 * 60_000)
    );
    let services = format!("{base}/query/services?limit=1000&{range}");
    let (status, _) = get_with_token(&services, None).await?;
    ensure!(status == 401, "no token: {status}");
    let (status, body) = get_with_token(&services, Some("dash-token")).await?;
    ensure!(status == 200, "{status}: {body}");
    let body: serde_json::Value = serde_json::from_str(&body)?;
    ensure!(body["services"][0]["service_name"] == "checkout", "{body}");
    ensure!(body["services"][0]["request_count"] == 150, "{body}");

    let metrics = format!("{base}/query/services/checkout/metrics?{range}&interval=1m");
    let (status, body) = get_with_token(&metrics, Some("dash-token")).await?;
    ensure!(status == 200, "{status}: {body}");
    let series: serde_json::Value = serde_json::from_str(&body)?;
    ensure!(series.as_array().map(Vec::len) == Some(5), "{series}");

    // The common admin port serves the same metrics.
    let exposition = query.metrics().await?;
    ensure!(
        exposition.contains("panopticon_query_http_request_duration_seconds"),
        "{exposition}"
    );

    let status = query.terminate(Duration::from_secs(10)).await?;
    ensure!(status.success(), "exit {status}: {}", query.log_tail());
    let log = std::fs::read_to_string(&query.log)?;
    ensure!(!log.contains("dash-token"), "the token leaked into the log");
    std::fs::remove_file(&token_file)?;
    Ok(())
}
