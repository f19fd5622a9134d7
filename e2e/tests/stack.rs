//! Smoke tests of the real stack, one per server, through the client crates the components use:
//! rdkafka, elasticsearch, redis and kube. They prove the servers that `e2e/stack up` starts
//! do what the later integration tests rely on. A missing server fails the test.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context as _, Result, bail, ensure};
use serde_json::{Value, json};

const DEADLINE: Duration = Duration::from_secs(60);

/// Polls `probe` every 250 ms until it yields a value or [`DEADLINE`] passes.
async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    let start = std::time::Instant::now();
    loop {
        if let Some(v) = probe().await? {
            return Ok(v);
        }
        if start.elapsed() > DEADLINE {
            bail!("timed out after {DEADLINE:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

mod kafka {
    use super::*;
    use futures::StreamExt as _;
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
    use rdkafka::producer::{FutureProducer, FutureRecord};
    use rdkafka::{ClientConfig, Message, Offset};

    #[tokio::test]
    async fn create_topic_produce_consume_in_a_group_and_commit() -> Result<()> {
        let brokers = panopticon_e2e::kafka_brokers();
        let topic = panopticon_e2e::unique_name("smoke");
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .create()?;
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        for result in admin
            .create_topics(
                &[NewTopic::new(&topic, 3, TopicReplication::Fixed(1))],
                &opts,
            )
            .await?
        {
            result.map_err(|(t, e)| anyhow::anyhow!("create topic {t}: {e}"))?;
        }

        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .create()?;
        let sent: BTreeSet<String> = (0..30).map(|i| format!("event-{i}")).collect();
        for (i, payload) in sent.iter().enumerate() {
            let key = format!("key-{}", i % 7);
            producer
                .send(
                    FutureRecord::to(&topic).key(&key).payload(payload),
                    Duration::from_secs(10),
                )
                .await
                .map_err(|(e, _)| anyhow::anyhow!("produce: {e}"))?;
        }

        let group = panopticon_e2e::unique_name("smoke-group");
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("group.id", &group)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("partition.assignment.strategy", "cooperative-sticky")
            .create()?;
        consumer.subscribe(&[&topic])?;
        let mut received = BTreeSet::new();
        let mut stream = consumer.stream();
        tokio::time::timeout(DEADLINE, async {
            while received.len() < sent.len() {
                let msg = stream.next().await.context("consumer stream ended")??;
                received.insert(String::from_utf8(
                    msg.payload().unwrap_or_default().to_vec(),
                )?);
            }
            anyhow::Ok(())
        })
        .await
        .context("timed out consuming")??;
        drop(stream);
        assert_eq!(received, sent);

        consumer.commit_consumer_state(CommitMode::Sync)?;
        let committed = consumer.committed(Duration::from_secs(10))?;
        let total: i64 = committed
            .elements()
            .iter()
            .map(|e| match e.offset() {
                Offset::Offset(o) => o,
                _ => 0,
            })
            .sum();
        assert_eq!(
            total, 30,
            "committed offsets of the group cover every message"
        );

        admin.delete_topics(&[&topic], &opts).await?;
        Ok(())
    }
}

mod opensearch {
    use super::*;
    use chrono::{TimeZone, Utc};
    use elasticsearch::http::request::JsonBody;
    use elasticsearch::http::transport::Transport;
    use elasticsearch::indices::{
        IndicesCreateDataStreamParts, IndicesDeleteDataStreamParts,
        IndicesDeleteIndexTemplateParts, IndicesPutIndexTemplateParts, IndicesRefreshParts,
    };
    use elasticsearch::{BulkParts, Elasticsearch, SearchParts};
    use panopticon_model::{DecodeContext, Limits, decode_span, ids};

    async fn body(response: elasticsearch::http::response::Response) -> Result<Value> {
        let status = response.status_code();
        let value: Value = response.json().await?;
        ensure!(status.is_success(), "HTTP {status}: {value}");
        Ok(value)
    }

    #[tokio::test]
    async fn template_data_stream_bulk_create_and_aggregations() -> Result<()> {
        let client =
            Elasticsearch::new(Transport::single_node(&panopticon_e2e::elasticsearch_url())?);
        let stream = panopticon_e2e::unique_name("smoke-traces");

        body(
            client
                .indices()
                .put_index_template(IndicesPutIndexTemplateParts::Name(&stream))
                .body(json!({
                    "index_patterns": [stream],
                    "data_stream": {},
                    "priority": 500,
                    "template": {
                        "settings": {"number_of_shards": 1, "number_of_replicas": 0},
                        "mappings": {"properties": {
                            "@timestamp": {"type": "date"},
                            "service_name": {"type": "keyword"},
                            "name": {"type": "keyword"},
                            "duration_ms": {"type": "double"},
                            "status": {"type": "keyword"}
                        }}
                    }
                }))
                .send()
                .await?,
        )
        .await?;
        body(
            client
                .indices()
                .create_data_stream(IndicesCreateDataStreamParts::Name(&stream))
                .send()
                .await?,
        )
        .await?;

        // 100 spans from the model, two services, two minutes, durations 1..=100 ms.
        let limits = Limits::default();
        let ctx = DecodeContext {
            limits: &limits,
            now: Utc::now(),
        };
        let minute = Utc.with_ymd_and_hms(2025, 11, 10, 7, 0, 0).unwrap();
        let mut ops: Vec<Value> = Vec::new();
        for i in 0..100u32 {
            let event = json!({
                "service_name": if i % 2 == 0 { "checkout" } else { "search" },
                "environment": "prod", "trace_id": format!("trace-{}", i / 10),
                "span_id": format!("span-{i}"), "name": "GET /api", "kind": "SERVER",
                "duration_ms": f64::from(i + 1), "status": if i % 10 == 0 { "ERROR" } else { "OK" },
                "timestamp": (minute + chrono::TimeDelta::seconds(i64::from(i))).to_rfc3339(),
            });
            let doc = decode_span(&event, &ctx)?;
            ops.push(json!({"create": {"_id": ids::span_id(&doc.trace_id, &doc.span_id)}}));
            ops.push(serde_json::to_value(&doc)?);
        }
        let bulk = |ops: &[Value]| {
            let lines: Vec<JsonBody<Value>> = ops.iter().cloned().map(JsonBody::from).collect();
            client.bulk(BulkParts::Index(&stream)).body(lines).send()
        };
        let first = body(bulk(&ops).await?).await?;
        assert_eq!(first["errors"], json!(false), "{first}");

        // The same bulk again: deterministic ids turn every duplicate into a 409.
        let replay = body(bulk(&ops).await?).await?;
        let items = replay["items"].as_array().context("items")?;
        assert_eq!(items.len(), 100);
        assert!(
            items.iter().all(|it| it["create"]["status"] == json!(409)),
            "{replay}"
        );

        body(
            client
                .indices()
                .refresh(IndicesRefreshParts::Index(&[&stream]))
                .send()
                .await?,
        )
        .await?;
        let result = body(
            client
                .search(SearchParts::Index(&[&stream]))
                .body(json!({
                    "size": 0,
                    "track_total_hits": true,
                    "aggs": {
                        "services": {"terms": {"field": "service_name"},
                            "aggs": {"errors": {"filter": {"term": {"status": "ERROR"}}}}},
                        "latency": {"percentiles": {"field": "duration_ms", "percents": [50, 95]}},
                        "per_minute": {"date_histogram": {"field": "@timestamp", "fixed_interval": "1m"}},
                        "sketch": {"terms": {"field": "duration_bucket", "size": 1000}}
                    }
                }))
                .send()
                .await?,
        )
        .await?;
        assert_eq!(result["hits"]["total"]["value"], json!(100));
        let buckets = result["aggregations"]["services"]["buckets"]
            .as_array()
            .context("terms")?;
        let counts: Vec<(String, u64, u64)> = buckets
            .iter()
            .map(|b| {
                (
                    b["key"].as_str().unwrap_or_default().to_owned(),
                    b["doc_count"].as_u64().unwrap_or_default(),
                    b["errors"]["doc_count"].as_u64().unwrap_or_default(),
                )
            })
            .collect();
        assert_eq!(
            counts,
            vec![("checkout".into(), 50, 10), ("search".into(), 50, 0)]
        );
        let p50 = result["aggregations"]["latency"]["values"]["50.0"]
            .as_f64()
            .context("p50")?;
        let p95 = result["aggregations"]["latency"]["values"]["95.0"]
            .as_f64()
            .context("p95")?;
        assert!((49.0..=52.0).contains(&p50), "p50 {p50}");
        assert!((94.0..=97.0).contains(&p95), "p95 {p95}");
        let minutes: Vec<u64> = result["aggregations"]["per_minute"]["buckets"]
            .as_array()
            .context("histogram")?
            .iter()
            .map(|b| b["doc_count"].as_u64().unwrap_or_default())
            .collect();
        assert_eq!(minutes, vec![60, 40]);

        // The latency sketch rebuilt from a terms aggregation on the stored bucket index:
        // the rollup path, without reading raw spans. Exact p95 of 1..=100 ms is 95 ms.
        let mut sketch = panopticon_model::sketch::Sketch::new();
        for b in result["aggregations"]["sketch"]["buckets"]
            .as_array()
            .context("sketch")?
        {
            let index = i32::try_from(b["key"].as_i64().context("bucket key")?)?;
            sketch.add_bucket(index, b["doc_count"].as_u64().context("bucket count")?);
        }
        assert_eq!(sketch.count, 100);
        let p95 = sketch.quantile(0.95).context("p95")?;
        assert!((p95 - 95.0).abs() <= 0.95, "sketch p95 {p95}");

        body(
            client
                .indices()
                .delete_data_stream(IndicesDeleteDataStreamParts::Name(&[&stream]))
                .send()
                .await?,
        )
        .await?;
        body(
            client
                .indices()
                .delete_index_template(IndicesDeleteIndexTemplateParts::Name(&stream))
                .send()
                .await?,
        )
        .await?;
        Ok(())
    }
}

mod redis_cache {
    use super::*;
    use redis::AsyncCommands as _;

    #[tokio::test]
    async fn set_with_expiry_and_get() -> Result<()> {
        let client = redis::Client::open(panopticon_e2e::redis_url())?;
        let mut conn = client.get_multiplexed_async_connection().await?;
        let key = panopticon_e2e::unique_name("smoke");
        let () = conn.set_ex(&key, "cached", 30).await?;
        let value: Option<String> = conn.get(&key).await?;
        assert_eq!(value.as_deref(), Some("cached"));
        let ttl: i64 = conn.ttl(&key).await?;
        assert!((1..=30).contains(&ttl), "ttl {ttl}");
        let missing: Option<String> = conn.get(format!("{key}-absent")).await?;
        assert_eq!(missing, None);
        let _: i64 = conn.del(&key).await?;
        Ok(())
    }
}

mod kubernetes {
    use super::*;
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::{Namespace, Pod};
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
    use kube::core::{ApiResource, GroupVersionKind};
    use kube::{Client, Config};

    const MANAGER: &str = "panopticon-e2e";

    async fn client() -> Result<Client> {
        let kubeconfig = kube::config::Kubeconfig::read_from(panopticon_e2e::kubeconfig())?;
        let config = Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?;
        Ok(Client::try_from(config)?)
    }

    #[tokio::test]
    async fn apply_a_crd_and_run_a_deployment_whose_pod_becomes_running() -> Result<()> {
        let client = client().await?;

        // A CRD, server-side applied, becomes Established and serves objects.
        let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
        let crd: CustomResourceDefinition = serde_json::from_value(json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "smokes.e2e.panopticon.io"},
            "spec": {"group": "e2e.panopticon.io", "scope": "Namespaced",
                "names": {"plural": "smokes", "singular": "smoke", "kind": "Smoke"},
                "versions": [{"name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                        "spec": {"type": "object", "properties": {"size": {"type": "integer"}}}}}}}]}
        }))?;
        crds.patch(
            "smokes.e2e.panopticon.io",
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&crd),
        )
        .await?;
        eventually("the CRD to be Established", || async {
            let crd = crds.get("smokes.e2e.panopticon.io").await?;
            let established = crd.status.and_then(|s| s.conditions).is_some_and(|cs| {
                cs.iter()
                    .any(|c| c.type_ == "Established" && c.status == "True")
            });
            Ok(established.then_some(()))
        })
        .await?;

        let ns_name = panopticon_e2e::unique_name("smoke");
        let namespaces: Api<Namespace> = Api::all(client.clone());
        namespaces
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": ns_name}}))?,
            )
            .await?;

        let gvk = GroupVersionKind::gvk("e2e.panopticon.io", "v1", "Smoke");
        let smokes: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), &ns_name, &ApiResource::from_gvk(&gvk));
        let mut obj = DynamicObject::new("one", &ApiResource::from_gvk(&gvk));
        obj.data = json!({"spec": {"size": 3}});
        smokes.create(&PostParams::default(), &obj).await?;
        assert_eq!(smokes.get("one").await?.data["spec"]["size"], json!(3));

        // A Deployment gets a ReplicaSet (controller-manager), its pod a node (scheduler) and
        // a Running, Ready status (kwok).
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns_name);
        deployments
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({
                    "metadata": {"name": "web"},
                    "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                        "template": {"metadata": {"labels": {"app": "web"}},
                            "spec": {"containers": [{"name": "web", "image": "example/web:1"}]}}}
                }))?,
            )
            .await?;
        let pods: Api<Pod> = Api::namespaced(client.clone(), &ns_name);
        eventually("two Running pods", || async {
            let list = pods.list(&ListParams::default().labels("app=web")).await?;
            let running = list
                .items
                .iter()
                .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
                .count();
            Ok((running == 2).then_some(()))
        })
        .await?;
        eventually("the Deployment to report 2 available replicas", || async {
            let d = deployments.get("web").await?;
            let available = d
                .status
                .and_then(|s| s.available_replicas)
                .unwrap_or_default();
            Ok((available == 2).then_some(()))
        })
        .await?;

        namespaces
            .delete(&ns_name, &DeleteParams::default())
            .await?;
        Ok(())
    }
}
