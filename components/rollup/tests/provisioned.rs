//! Rollup under an operator that provisions Elasticsearch (`ELASTICSEARCH_MANAGE_TEMPLATES=false`),
//! against the stack's OpenSearch: it writes no template of its own, waits for the operator's
//! before creating anything, and leaves them as they are.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Result;
use panopticon_e2e::ingest::{free_port, http_get, wait_until};
use panopticon_es::provision::{ProvisionPlan, provision, remove};
use panopticon_es::{EsClient, EsSecrets};
use panopticon_model::config::{EnvSource, RollupConfig};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollup_waits_for_the_operators_templates_and_leaves_them_alone() -> Result<()> {
    let name = panopticon_e2e::unique_name("rollup-provisioned");
    let url = panopticon_e2e::elasticsearch_url();
    let (spans, metrics, checkpoint) = (
        format!("traces-{name}"),
        format!("metrics-{name}"),
        format!("rollup-state-{name}"),
    );
    let pairs = [
        ("ELASTICSEARCH_NODE", url.as_str()),
        ("ELASTICSEARCH_APM_LOG_STREAM", &format!("logs-{name}")),
        ("ELASTICSEARCH_APM_SPAN_STREAM", spans.as_str()),
        ("ELASTICSEARCH_APM_ROLLUP_STREAM", metrics.as_str()),
        ("ELASTICSEARCH_MANAGE_TEMPLATES", "false"),
        ("ROLLUP_CHECKPOINT_INDEX", checkpoint.as_str()),
        ("ROLLUP_LEADER_ELECTION", "off"),
        ("ROLLUP_POLL_INTERVAL_MS", "300"),
    ];
    let config = RollupConfig::from_env(&EnvSource::from_pairs(&pairs))?;
    let es = EsClient::new(&config.elasticsearch, &EsSecrets::default())?;
    let plan = ProvisionPlan {
        streams: config.elasticsearch.streams.clone(),
        logs_retention: "14d".to_owned(),
        traces_retention: "7d".to_owned(),
        metrics_retention: "90d".to_owned(),
        rollover_max_primary_shard_size: "50gb".to_owned(),
        rollover_max_age: "1d".to_owned(),
        replicas: 0,
    };
    let template_url = format!("{url}/_index_template/{metrics}-template");
    let checkpoint_url = format!("{url}/{checkpoint}");

    let admin: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
    let stop = CancellationToken::new();
    let task = tokio::spawn(panopticon_rollup::run(
        config,
        panopticon_rollup::RunOptions { admin_addr: admin },
        stop.clone(),
    ));
    wait_until("the admin server", Duration::from_secs(30), || async move {
        Ok(http_get(&format!("http://{admin}/health")).await.is_ok())
    })
    .await?;
    // Several attempts of its start-up step go by: still no template, and nothing created.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(http_get(&template_url).await?.0, 404);
    assert_eq!(http_get(&checkpoint_url).await?.0, 404);

    provision(&es, &plan).await?;
    let provisioned: Value = serde_json::from_str(&http_get(&template_url).await?.1)?;
    // Its start-up step goes on once the templates exist (within the 10 s backoff ceiling).
    wait_until("the checkpoint index", Duration::from_secs(60), || async {
        Ok(http_get(&checkpoint_url).await?.0 == 200)
    })
    .await?;
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(30), task).await???;

    let after: Value = serde_json::from_str(&http_get(&template_url).await?.1)?;
    assert_eq!(after, provisioned);
    remove(&es, &plan).await?;
    panopticon_e2e::ingest::http("DELETE", &checkpoint_url, None).await?;
    Ok(())
}
