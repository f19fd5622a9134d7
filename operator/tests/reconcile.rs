//! The operator against the real kube-apiserver (+ controller-manager, scheduler, kwok),
//! OpenSearch and Kafka of `e2e/stack`, running as the install's ServiceAccount.

mod common;

use std::time::Duration;

use anyhow::{Context as _, Result};
use common::*;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service, ServiceAccount};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use serde_json::json;

const WITHIN: Duration = Duration::from_secs(90);

fn deployment_hash(d: &Deployment) -> Option<String> {
    d.spec
        .as_ref()?
        .template
        .metadata
        .as_ref()?
        .annotations
        .as_ref()?
        .get("panopticon.io/config-hash")
        .cloned()
}

async fn events(client: &kube::Client, ns: &str) -> Result<Vec<(String, String)>> {
    let api: Api<Event> = Api::namespaced(client.clone(), ns);
    Ok(api
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .map(|e| (e.reason.unwrap_or_default(), e.note.unwrap_or_default()))
        .collect())
}

/// Apply → every child, pods Running, templates, data streams and topics, Ready; change the
/// spec → children follow and pods roll; delete or edit a child → restored; pause; delete the
/// resource (Retain) → children gone, data and topics kept.
#[tokio::test]
async fn a_resource_becomes_a_running_backend_and_stays_one() -> Result<()> {
    let admin = admin_client().await?;
    install(&admin).await?;
    let ns = TestNamespace::create(&admin, "pano-life").await?;
    let unique = Unique::new("life");
    let operator = Operator::start(&ns.name).await?;
    let mut resource = resource("apm", &ns.name, &unique);
    resource["spec"]["query"] = json!({"replicas": 2, "corsOrigins": ["https://apm.example.com"]});
    resource["spec"]["redis"] = json!({"url": panopticon_e2e::redis_url()});
    apply_value(&admin, &resource).await?;

    let ready = wait_ready(&admin, &ns.name, "apm", WITHIN).await?;
    let status = ready.status.clone().context("status")?;
    assert_eq!(status.observed_generation, ready.metadata.generation);
    assert_eq!(status.components.query.replicas, "2/2");
    assert_eq!(
        status.elasticsearch.as_ref().map(|e| e.flavour.as_str()),
        Some("OpenSearch")
    );
    assert!(condition(&ready, "ElasticsearchReady").is_some_and(|(s, _, _)| s == "True"));
    assert!(
        condition(&ready, "KafkaReady")
            .is_some_and(|(s, _, m)| s == "True" && m.contains(&unique.topic("logs")))
    );
    assert!(condition(&ready, "Degraded").is_some_and(|(s, _, _)| s == "False"));
    // The stack's OpenSearch has no ISM plugin: said, not hidden, and not blocking Ready.
    let (retention, reason, message) =
        condition(&ready, "RetentionEnforced").context("RetentionEnforced")?;
    assert_eq!(
        (retention.as_str(), reason.as_str()),
        ("False", "LifecycleUnavailable")
    );
    assert!(message.contains("ISM"), "{message}");

    // Children, with the expected specs.
    let deployments: Api<Deployment> = Api::namespaced(admin.clone(), &ns.name);
    let config_maps: Api<ConfigMap> = Api::namespaced(admin.clone(), &ns.name);
    for component in ["ingest", "rollup", "query", "alert"] {
        let name = format!("apm-{component}");
        let d = deployments.get(&name).await?;
        let owner = &d.metadata.owner_references.as_ref().context("owner")?[0];
        assert_eq!(
            (owner.kind.as_str(), owner.controller),
            ("Panopticon", Some(true))
        );
        let pod = d
            .spec
            .as_ref()
            .and_then(|s| s.template.spec.clone())
            .context("pod spec")?;
        let container = &pod.containers[0];
        assert_eq!(container.args.as_deref(), Some(&[component.to_owned()][..]));
        assert_eq!(
            container.image.as_deref(),
            Some("ghcr.io/panopticon-io/panopticon:0.1.0")
        );
        let sc = container
            .security_context
            .as_ref()
            .context("securityContext")?;
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        assert_eq!(
            sc.capabilities.as_ref().and_then(|c| c.drop.clone()),
            Some(vec!["ALL".to_owned()])
        );
        let psc = pod
            .security_context
            .as_ref()
            .context("pod securityContext")?;
        assert_eq!(psc.run_as_non_root, Some(true));
        assert_eq!(
            psc.seccomp_profile.as_ref().map(|s| s.type_.as_str()),
            Some("RuntimeDefault")
        );
        let probe_path = |p: &Option<k8s_openapi::api::core::v1::Probe>| {
            p.as_ref()
                .and_then(|p| p.http_get.as_ref())
                .and_then(|h| h.path.clone())
        };
        assert_eq!(
            probe_path(&container.liveness_probe).as_deref(),
            Some("/health")
        );
        assert_eq!(
            probe_path(&container.readiness_probe).as_deref(),
            Some("/ready")
        );
        assert!(deployment_hash(&d).is_some(), "{name} has a config hash");
        let cm = config_maps.get(&name).await?;
        let data = cm.data.context("config data")?;
        assert_eq!(data.get("POD_NAMESPACE"), None);
        if component != "alert" {
            assert_eq!(
                data.get("ELASTICSEARCH_NODE"),
                Some(&panopticon_e2e::elasticsearch_url())
            );
            assert_eq!(
                data.get("ELASTICSEARCH_APM_LOG_STREAM"),
                Some(&unique.stream("logs"))
            );
            assert_eq!(
                data.get("ELASTICSEARCH_MANAGE_TEMPLATES")
                    .map(String::as_str),
                Some("false")
            );
        }
        if component == "ingest" || component == "alert" {
            assert_eq!(
                data.get("KAFKA_BROKERS"),
                Some(&panopticon_e2e::kafka_brokers())
            );
            assert_eq!(
                data.get("KAFKA_APM_LOG_ERROR_TOPIC"),
                Some(&unique.topic("errors"))
            );
        }
        if component == "query" {
            assert_eq!(
                data.get("CORS_ALLOWED_ORIGINS").map(String::as_str),
                Some("https://apm.example.com")
            );
            assert_eq!(data.get("REDIS_URL"), Some(&panopticon_e2e::redis_url()));
        }
        let sa: Api<ServiceAccount> = Api::namespaced(admin.clone(), &ns.name);
        sa.get(&name).await?;
    }
    let services: Api<Service> = Api::namespaced(admin.clone(), &ns.name);
    let query_svc = services.get("apm-query").await?;
    let port = query_svc.spec.and_then(|s| s.ports).context("ports")?[0].port;
    assert_eq!(port, 3001);
    assert!(
        services.get_opt("apm-ingest").await?.is_none(),
        "ingest serves no clients"
    );
    let budgets: Api<PodDisruptionBudget> = Api::namespaced(admin.clone(), &ns.name);
    assert!(
        budgets.get_opt("apm-query").await?.is_some(),
        "2 query replicas get a PDB"
    );
    assert!(
        budgets.get_opt("apm-alert").await?.is_none(),
        "1 alert replica gets none"
    );
    Api::<Role>::namespaced(admin.clone(), &ns.name)
        .get("apm-rollup")
        .await?;
    Api::<RoleBinding>::namespaced(admin.clone(), &ns.name)
        .get("apm-rollup")
        .await?;

    // Pods Running through kwok.
    let pods: Api<Pod> = Api::namespaced(admin.clone(), &ns.name);
    let running = pods
        .list(&ListParams::default().labels("app.kubernetes.io/instance=apm"))
        .await?
        .items
        .iter()
        .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
        .count();
    assert_eq!(running, 5, "1 ingest + 1 rollup + 2 query + 1 alert");

    // External state in the real servers.
    for kind in ["logs", "traces"] {
        let (code, body) = es_get(&format!("/_data_stream/{}", unique.stream(kind))).await?;
        assert_eq!(code, 200, "{body}");
        let (code, template) = es_get(&format!(
            "/_index_template/{}-template",
            unique.stream(kind)
        ))
        .await?;
        assert_eq!(code, 200, "{template}");
        let settings =
            &template["index_templates"][0]["index_template"]["template"]["settings"]["index"];
        assert_eq!(settings["number_of_replicas"], json!("0"), "{template}");
    }
    for kind in ["logs", "spans", "errors", "dlq"] {
        assert!(
            topic_partitions(&unique.topic(kind))?.is_some(),
            "topic {kind}"
        );
    }
    assert_eq!(topic_partitions(&unique.topic("logs"))?, Some(3));

    // A config change rolls the pods of that component only.
    let query_before = deployments.get("apm-query").await?;
    let ingest_before = deployments.get("apm-ingest").await?;
    patch_spec(&admin, &ns.name, "apm", json!({"query": {"queryCacheTtlSeconds": 42}, "kafka": {"topics": {"logs": {"partitions": 5}}}})).await?;
    let p = wait_ready(&admin, &ns.name, "apm", WITHIN).await?;
    assert_eq!(p.metadata.generation, Some(2));
    let query_after = deployments.get("apm-query").await?;
    assert_ne!(
        deployment_hash(&query_before),
        deployment_hash(&query_after)
    );
    assert_eq!(
        deployment_hash(&ingest_before),
        deployment_hash(&deployments.get("apm-ingest").await?)
    );
    let cm = config_maps.get("apm-query").await?;
    assert_eq!(
        cm.data
            .and_then(|d| d.get("QUERY_CACHE_TTL_SECONDS").cloned())
            .as_deref(),
        Some("42")
    );
    let replica_sets: Api<ReplicaSet> = Api::namespaced(admin.clone(), &ns.name);
    let query_sets = replica_sets
        .list(
            &ListParams::default()
                .labels("app.kubernetes.io/component=query,app.kubernetes.io/instance=apm"),
        )
        .await?
        .items
        .len();
    assert_eq!(query_sets, 2, "the change made a new ReplicaSet");
    eventually("the logs topic to have 5 partitions", WITHIN, || async {
        Ok((topic_partitions(&unique.topic("logs"))? == Some(5)).then_some(()))
    })
    .await?;
    eventually("a ConfigChanged Event", WITHIN, || async {
        Ok(events(&admin, &ns.name)
            .await?
            .iter()
            .any(|(r, n)| r == "ConfigChanged" && n.contains("query"))
            .then_some(()))
    })
    .await?;

    // A deleted child comes back; an edited managed field is restored.
    deployments
        .delete("apm-alert", &DeleteParams::foreground())
        .await?;
    eventually("apm-alert to be recreated", WITHIN, || async {
        Ok(deployments
            .get_opt("apm-alert")
            .await?
            .filter(|d| d.metadata.deletion_timestamp.is_none())
            .map(|_| ()))
    })
    .await?;
    let edit = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "apm-query", "namespace": ns.name},
        "spec": {"template": {"spec": {"containers": [{"name": "query", "image": "evil:latest"}]}}}
    });
    deployments
        .patch(
            "apm-query",
            &PatchParams::apply("someone-else").force(),
            &Patch::Apply(&edit),
        )
        .await?;
    eventually("the query image to be restored", WITHIN, || async {
        let d = deployments.get("apm-query").await?;
        let image = d
            .spec
            .and_then(|s| s.template.spec)
            .and_then(|p| p.containers[0].image.clone());
        Ok((image.as_deref() == Some("ghcr.io/panopticon-io/panopticon:0.1.0")).then_some(()))
    })
    .await?;
    let cm_edit = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "apm-ingest", "namespace": ns.name},
        "data": {"KAFKA_BROKERS": "elsewhere:9092"}});
    config_maps
        .patch(
            "apm-ingest",
            &PatchParams::apply("someone-else").force(),
            &Patch::Apply(&cm_edit),
        )
        .await?;
    eventually("the ingest ConfigMap to be restored", WITHIN, || async {
        let cm = config_maps.get("apm-ingest").await?;
        Ok((cm.data.and_then(|d| d.get("KAFKA_BROKERS").cloned())
            == Some(panopticon_e2e::kafka_brokers()))
        .then_some(()))
    })
    .await?;

    // Paused: a deleted child stays deleted until unpaused.
    patch_spec(&admin, &ns.name, "apm", json!({"paused": true})).await?;
    eventually("Paused=True", WITHIN, || async {
        let p = panopticons(&admin, &ns.name).get("apm").await?;
        Ok(condition(&p, "Paused")
            .filter(|(s, _, _)| s == "True")
            .map(|_| ()))
    })
    .await?;
    deployments
        .delete("apm-rollup", &DeleteParams::default())
        .await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let gone = deployments
        .get_opt("apm-rollup")
        .await?
        .is_none_or(|d| d.metadata.deletion_timestamp.is_some());
    assert!(gone, "a paused resource's children are not restored");
    patch_spec(&admin, &ns.name, "apm", json!({"paused": false})).await?;
    wait_ready(&admin, &ns.name, "apm", WITHIN).await?;
    deployments.get("apm-rollup").await?;

    // Events tell the story; none carries a secret (there are none here, see secrets.rs).
    let reasons: Vec<String> = events(&admin, &ns.name)
        .await?
        .into_iter()
        .map(|(r, _)| r)
        .collect();
    for expected in [
        "ElasticsearchProvisioned",
        "TopicsReconciled",
        "Ready",
        "ChildRestored",
    ] {
        assert!(
            reasons.iter().any(|r| r == expected),
            "{expected} in {reasons:?}"
        );
    }

    // Deletion with deletionPolicy Retain: children are garbage-collected, data stays.
    panopticons(&admin, &ns.name)
        .delete("apm", &DeleteParams::foreground())
        .await?;
    eventually("the children to be garbage-collected", WITHIN, || async {
        let left = deployments
            .list(&ListParams::default().labels("app.kubernetes.io/instance=apm"))
            .await?
            .items
            .len()
            + config_maps
                .list(&ListParams::default().labels("app.kubernetes.io/instance=apm"))
                .await?
                .items
                .len();
        Ok((left == 0).then_some(()))
    })
    .await?;
    assert_eq!(
        es_get(&format!("/_data_stream/{}", unique.stream("logs")))
            .await?
            .0,
        200
    );
    assert_eq!(topic_partitions(&unique.topic("logs"))?, Some(5));

    operator.stop().await?;
    ns.delete().await?;
    Ok(())
}
