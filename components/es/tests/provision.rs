//! Provisioning against the real OpenSearch of `e2e/stack` (which has no ISM plugin, so the
//! lifecycle is reported unavailable and everything else is provisioned): quiet second runs,
//! only changed things rewritten, existing indices following a settings change, removal, and a
//! cluster that is down.

use elasticsearch::http::Method;
use panopticon_es::provision::{Lifecycle, ProvisionPlan, provision, remove};
use panopticon_es::{EsClient, EsError, EsSecrets, Flavour};
use panopticon_model::config::{ElasticsearchConfig, EnvSource};
use serde_json::{Value, json};

fn client(node: &str) -> EsClient {
    let config =
        ElasticsearchConfig::from_env(&EnvSource::from_pairs(&[("ELASTICSEARCH_NODE", node)]))
            .expect("the node URL is valid");
    EsClient::new(&config, &EsSecrets::default()).expect("a plain client builds")
}

/// A plan with stream names no other test uses.
fn unique_plan() -> ProvisionPlan {
    let id = panopticon_e2e::unique_name("prov");
    let pairs = [
        ("ELASTICSEARCH_APM_LOG_STREAM", format!("logs-{id}")),
        ("ELASTICSEARCH_APM_SPAN_STREAM", format!("traces-{id}")),
        ("ELASTICSEARCH_APM_ROLLUP_STREAM", format!("metrics-{id}")),
    ];
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    ProvisionPlan {
        streams: ElasticsearchConfig::from_env(&EnvSource::from_pairs(&pairs))
            .expect("the unique names are valid")
            .streams,
        logs_retention: "14d".to_owned(),
        traces_retention: "7d".to_owned(),
        metrics_retention: "90d".to_owned(),
        rollover_max_primary_shard_size: "50gb".to_owned(),
        rollover_max_age: "1d".to_owned(),
        replicas: 0,
    }
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

async fn get(es: &EsClient, path: &str) -> (u16, Value) {
    let (status, body) = es
        .request(Method::Get, path, None)
        .await
        .expect("OpenSearch answers");
    (status.as_u16(), body)
}

#[tokio::test]
async fn provisions_once_stays_quiet_rewrites_only_changes_and_removes_everything() {
    let es = client(&panopticon_e2e::elasticsearch_url());
    let plan = unique_plan();
    let s = plan.streams.clone();
    let endpoints_template = format!("{}-endpoints-template", s.metrics);

    let report = provision(&es, &plan).await.unwrap();
    assert_eq!(report.flavour, Flavour::OpenSearch);
    let (_, root) = get(&es, "/").await;
    assert_eq!(json!(report.version), root["version"]["number"]);
    match &report.lifecycle {
        Lifecycle::Unavailable { reason } => {
            assert!(
                reason.starts_with(
                    "the OpenSearch Index Management (ISM) plugin is not installed: retention of"
                ),
                "{reason}"
            );
            for stream in [&s.logs, &s.spans, &s.metrics] {
                assert!(reason.contains(stream.as_str()), "{reason}");
            }
        }
        other => panic!("the stack's OpenSearch has no ISM plugin, got {other:?}"),
    }
    assert_eq!(
        sorted(report.changed),
        sorted(vec![
            format!("created index template {}", s.logs_template),
            format!("created index template {}", s.spans_template),
            format!("created index template {}", s.metrics_template),
            format!("created index template {endpoints_template}"),
            format!("created data stream {}", s.logs),
            format!("created data stream {}", s.spans),
        ])
    );
    for template in [&s.logs_template, &s.spans_template, &endpoints_template] {
        let (status, body) = get(&es, &format!("/_index_template/{template}")).await;
        assert_eq!(status, 200, "{body}");
        let t = &body["index_templates"][0]["index_template"];
        assert_eq!(
            t["template"]["settings"]["index"]["number_of_replicas"],
            "0"
        );
        assert_eq!(t["_meta"]["managed_by"], "panopticon");
        assert!(t["_meta"]["hash"].is_string(), "{t}");
    }
    for stream in [&s.logs, &s.spans] {
        let (status, body) = get(&es, &format!("/_data_stream/{stream}")).await;
        assert_eq!(status, 200, "{body}");
    }

    // Nothing differs: nothing is written.
    let again = provision(&es, &plan).await.unwrap();
    assert_eq!(again.changed, Vec::<String>::new());

    // A rollup index written meanwhile (as rollup does), so a settings change has more than the
    // data streams to reach.
    let rollup_index = format!("{}-service-60s-2026.01.01", s.metrics);
    es.request_ok(Method::Put, &format!("/{rollup_index}"), None)
        .await
        .unwrap();

    // Without ISM, a retention change has nothing to rewrite.
    let longer = ProvisionPlan {
        logs_retention: "30d".to_owned(),
        ..plan.clone()
    };
    assert_eq!(
        provision(&es, &longer).await.unwrap().changed,
        Vec::<String>::new()
    );

    // More replicas: every template, and the indices that exist under them.
    let replicated = ProvisionPlan {
        replicas: 1,
        ..longer
    };
    let report = provision(&es, &replicated).await.unwrap();
    assert_eq!(
        sorted(report.changed),
        sorted(vec![
            format!("updated index template {}", s.logs_template),
            format!("updated index template {}", s.spans_template),
            format!("updated index template {}", s.metrics_template),
            format!("updated index template {endpoints_template}"),
            format!(
                "applied index settings to 1 existing indices of data stream {}",
                s.logs
            ),
            format!(
                "applied index settings to 1 existing indices of data stream {}",
                s.spans
            ),
            format!(
                "applied index settings to 1 existing indices of {}-service-*",
                s.metrics
            ),
        ])
    );
    let (_, body) = get(&es, &format!("/_index_template/{}", s.spans_template)).await;
    assert_eq!(
        body["index_templates"][0]["index_template"]["template"]["settings"]["index"]["number_of_replicas"],
        "1"
    );
    for target in [&s.logs, &rollup_index] {
        let (_, settings) = get(&es, &format!("/{target}/_settings")).await;
        let replicas: Vec<&Value> = settings
            .as_object()
            .unwrap()
            .values()
            .map(|index| &index["settings"]["index"]["number_of_replicas"])
            .collect();
        assert_eq!(replicas, [&json!("1")], "{settings}");
    }
    assert_eq!(
        provision(&es, &replicated).await.unwrap().changed,
        Vec::<String>::new()
    );

    // Removal: everything goes, and a second removal finds nothing and succeeds.
    let removed = remove(&es, &replicated).await.unwrap();
    assert_eq!(
        removed,
        [
            format!("deleted data stream {}", s.logs),
            format!("deleted data stream {}", s.spans),
            format!("deleted 1 rollup indices of {}", s.metrics),
            format!("deleted index template {}", s.logs_template),
            format!("deleted index template {}", s.spans_template),
            format!("deleted index template {}", s.metrics_template),
            format!("deleted index template {endpoints_template}"),
        ]
    );
    for path in [
        format!("/_data_stream/{}", s.logs),
        format!("/_data_stream/{}", s.spans),
        format!("/{rollup_index}"),
        format!("/_index_template/{}", s.logs_template),
        format!("/_index_template/{endpoints_template}"),
    ] {
        assert_eq!(get(&es, &path).await.0, 404, "{path} still exists");
    }
    assert_eq!(
        remove(&es, &replicated).await.unwrap(),
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn templates_the_components_wrote_are_taken_over() {
    // Ingest ran standalone first: its template has no hash and no replicas setting.
    let es = client(&panopticon_e2e::elasticsearch_url());
    let plan = unique_plan();
    let s = plan.streams.clone();
    panopticon_es::bootstrap::ensure_ingest_streams(&es, &s, 1)
        .await
        .unwrap();

    let report = provision(&es, &plan).await.unwrap();
    let mut expected = vec![
        format!("updated index template {}", s.logs_template),
        format!("updated index template {}", s.spans_template),
        format!("created index template {}", s.metrics_template),
        format!("created index template {}-endpoints-template", s.metrics),
        format!(
            "applied index settings to 1 existing indices of data stream {}",
            s.logs
        ),
        format!(
            "applied index settings to 1 existing indices of data stream {}",
            s.spans
        ),
    ];
    expected.sort();
    assert_eq!(sorted(report.changed), expected);
    remove(&es, &plan).await.unwrap();
}

#[tokio::test]
async fn a_cluster_that_is_down_is_a_transport_error() {
    let es = client("http://127.0.0.1:1");
    let plan = unique_plan();
    let error = provision(&es, &plan).await.unwrap_err();
    assert!(matches!(error, EsError::Transport(_)), "{error:?}");
    assert!(error.to_string().contains("127.0.0.1:1"), "{error}");
    let error = remove(&es, &plan).await.unwrap_err();
    assert!(matches!(error, EsError::Transport(_)), "{error:?}");
}
