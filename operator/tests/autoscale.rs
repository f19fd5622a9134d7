//! Ingest autoscaling against real Kafka and the real kube-apiserver/kwok: the built-in mode
//! scales from real consumer lag (drained by real `panopticon ingest` processes running the
//! configuration the operator rendered), and `keda` mode hands the job to a ScaledObject.

mod common;

use std::time::Duration;

use anyhow::{Context as _, Result};
use common::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams};
use kube::discovery::ApiResource;
use panopticon_e2e::process::Component;
use serde_json::{Value, json};

const WITHIN: Duration = Duration::from_secs(120);

async fn replicas(deployments: &Api<Deployment>, name: &str) -> Result<Option<i32>> {
    Ok(deployments.get(name).await?.spec.and_then(|s| s.replicas))
}

/// Waits until the status of `apm` reports a total lag of 0.
async fn lag_reported_zero(client: &kube::Client, ns: &str, what: &str) -> Result<()> {
    eventually(what, WITHIN, || async {
        let p = panopticons(client, ns).get("apm").await?;
        Ok(p.status
            .and_then(|s| s.autoscaling)
            .filter(|a| a.total_lag == Some(0))
            .map(|_| ()))
    })
    .await
}

/// The notes of the scale Events, one per occurrence (a series counts its repeats).
async fn scaled_events(client: &kube::Client, ns: &str) -> Result<Vec<String>> {
    let api: Api<Event> = Api::namespaced(client.clone(), ns);
    let mut notes = Vec::new();
    for e in api.list(&ListParams::default()).await?.items {
        if matches!(e.reason.as_deref(), Some("ScaledUp" | "ScaledDown")) {
            let times = e.series.as_ref().map_or(1, |s| s.count);
            for _ in 0..times {
                notes.push(e.note.clone().unwrap_or_default());
            }
        }
    }
    Ok(notes)
}

fn log_events(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            json!({
                "timestamp": chrono::Utc::now().to_rfc3339(),
                "service_name": "checkout", "environment": "production", "level": "INFO",
                "message": format!("autoscale backlog {i}")
            })
            .to_string()
            .into_bytes()
        })
        .collect()
}

#[tokio::test]
async fn builtin_mode_scales_ingest_with_consumer_lag() -> Result<()> {
    let admin = admin_client().await?;
    install(&admin).await?;
    let ns = TestNamespace::create(&admin, "pano-scale").await?;
    let unique = Unique::new("scale");
    let operator = Operator::start(&ns.name).await?;
    let mut r = resource("apm", &ns.name, &unique);
    r["spec"]["kafka"]["topics"]["logs"]["partitions"] = json!(4);
    r["spec"]["kafka"]["topics"]["spans"]["partitions"] = json!(4);
    r["spec"]["ingest"] = json!({"replicas": 3, "consumerGroup": unique.topic("group")});
    apply_value(&admin, &r).await?;
    wait_ready(&admin, &ns.name, "apm", WITHIN).await?;
    let deployments: Api<Deployment> = Api::namespaced(admin.clone(), &ns.name);
    assert_eq!(replicas(&deployments, "apm-ingest").await?, Some(3));

    // Autoscaling on, no lag: the window starts at the current 3, so the hand-over neither
    // resets replicas to 1 (the server-side apply trap) nor scales down before the window.
    patch_spec(
        &admin,
        &ns.name,
        "apm",
        json!({"ingest": {"autoscaling": {
            "mode": "builtin", "minReplicas": 1, "maxReplicas": 10, "lagThreshold": 100,
            "pollIntervalSeconds": 2, "scaleDownStabilizationSeconds": 20
        }}}),
    )
    .await?;
    lag_reported_zero(&admin, &ns.name, "the autoscaler's first poll").await?;
    assert_eq!(
        replicas(&deployments, "apm-ingest").await?,
        Some(3),
        "kept through the hand-over"
    );

    // A backlog while nothing consumes: 550 on 8 partitions, threshold 100 → 6 replicas.
    let producer = panopticon_e2e::kafka::producer()?;
    panopticon_e2e::kafka::produce(&producer, &unique.topic("logs"), &log_events(550)).await?;
    eventually("6 replicas", WITHIN, || async {
        Ok((replicas(&deployments, "apm-ingest").await? == Some(6)).then_some(()))
    })
    .await?;
    let p = panopticons(&admin, &ns.name).get("apm").await?;
    let a = p
        .status
        .and_then(|s| s.autoscaling)
        .context("autoscaling status")?;
    assert_eq!(
        (a.mode.as_str(), a.total_lag, a.partitions),
        ("builtin", Some(550), Some(8))
    );
    assert_eq!(a.desired_replicas, Some(6));
    assert!(a.last_scale_reason.is_some_and(|r| r.contains("550")));
    // Steady lag: no flapping over several polls.
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(replicas(&deployments, "apm-ingest").await?, Some(6));
    assert_eq!(
        scaled_events(&admin, &ns.name).await?.len(),
        1,
        "one scale, no flapping"
    );

    // More backlog: 1 050 would want 11, capped at the 8 partitions.
    panopticon_e2e::kafka::produce(&producer, &unique.topic("logs"), &log_events(500)).await?;
    eventually("8 replicas (the partition count)", WITHIN, || async {
        Ok((replicas(&deployments, "apm-ingest").await? == Some(8)).then_some(()))
    })
    .await?;

    // Real ingest processes, configured exactly as the operator rendered, drain the lag; the
    // autoscaler scales down once the (shortened) window has seen nothing higher.
    let config_maps: Api<ConfigMap> = Api::namespaced(admin.clone(), &ns.name);
    let rendered = config_maps
        .get("apm-ingest")
        .await?
        .data
        .context("rendered config")?;
    let env: Vec<(String, String)> = rendered.into_iter().collect();
    let binary = panopticon_e2e::process::workspace_binary("panopticon")?;
    let mut ingest = Vec::new();
    for i in 0..2 {
        ingest.push(Component::start(&binary, &["ingest"], &env, &format!("ingest-{i}")).await?);
    }
    lag_reported_zero(&admin, &ns.name, "the lag to be drained").await?;
    let drained_at = std::time::Instant::now();
    eventually("1 replica after the window", WITHIN, || async {
        Ok((replicas(&deployments, "apm-ingest").await? == Some(1)).then_some(()))
    })
    .await?;
    assert!(
        drained_at.elapsed() >= Duration::from_secs(12),
        "not before the window"
    );
    let events = scaled_events(&admin, &ns.name).await?;
    assert!(events.iter().any(|e| e.contains("down")), "{events:?}");
    assert_eq!(
        panopticon_e2e::ingest::count_docs(&unique.stream("logs")).await?,
        1050
    );
    for mut process in ingest {
        process.terminate(Duration::from_secs(30)).await?;
    }
    operator.stop().await?;
    ns.delete().await?;
    Ok(())
}

fn keda_crd(kind: &str, plural: &str) -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.keda.sh")},
        "spec": {"group": "keda.sh", "scope": "Namespaced",
            "names": {"plural": plural, "singular": kind.to_lowercase(), "kind": kind},
            "versions": [{"name": "v1alpha1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                    "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}}}]}
    })
}

#[tokio::test]
async fn keda_mode_emits_a_scaled_object_or_says_keda_is_missing() -> Result<()> {
    let admin = admin_client().await?;
    install(&admin).await?;
    let crds: Api<CustomResourceDefinition> = Api::all(admin.clone());
    for name in ["scaledobjects.keda.sh", "triggerauthentications.keda.sh"] {
        if crds.get_opt(name).await?.is_some() {
            crds.delete(name, &DeleteParams::default()).await?;
        }
        eventually(&format!("{name} to be gone"), WITHIN, || async {
            Ok(crds.get_opt(name).await?.is_none().then_some(()))
        })
        .await?;
    }
    let ns = TestNamespace::create(&admin, "pano-keda").await?;
    let unique = Unique::new("keda");
    let operator = Operator::start(&ns.name).await?;
    let mut r = resource("apm", &ns.name, &unique);
    r["spec"]["ingest"] = json!({"autoscaling": {"mode": "keda", "minReplicas": 2, "maxReplicas": 6, "lagThreshold": 500}});
    apply_value(&admin, &r).await?;
    let api = panopticons(&admin, &ns.name);
    let (_, _, message) = eventually(
        "AutoscalingReady=False KedaNotInstalled",
        WITHIN,
        || async {
            let p = api.get("apm").await?;
            Ok(condition(&p, "AutoscalingReady")
                .filter(|(s, reason, _)| s == "False" && reason == "KedaNotInstalled"))
        },
    )
    .await?;
    assert!(message.contains("install KEDA"), "{message}");

    // KEDA's CRDs appear: the ScaledObject follows.
    apply_value(&admin, &keda_crd("ScaledObject", "scaledobjects")).await?;
    apply_value(
        &admin,
        &keda_crd("TriggerAuthentication", "triggerauthentications"),
    )
    .await?;
    let resource = ApiResource::from_gvk(&kube::core::GroupVersionKind::gvk(
        "keda.sh",
        "v1alpha1",
        "ScaledObject",
    ));
    let objects: Api<DynamicObject> = Api::namespaced_with(admin.clone(), &ns.name, &resource);
    let so = eventually("the ScaledObject", WITHIN, || async {
        Ok(objects.get_opt("apm-ingest").await.ok().flatten())
    })
    .await?;
    let spec = &so.data["spec"];
    assert_eq!(spec["scaleTargetRef"]["name"], "apm-ingest");
    assert_eq!(
        (
            spec["minReplicaCount"].clone(),
            spec["maxReplicaCount"].clone()
        ),
        (json!(2), json!(6))
    );
    let topics: Vec<&str> = spec["triggers"]
        .as_array()
        .context("triggers")?
        .iter()
        .filter_map(|t| t["metadata"]["topic"].as_str())
        .collect();
    assert_eq!(topics, [unique.topic("logs"), unique.topic("spans")]);
    assert_eq!(spec["triggers"][0]["metadata"]["lagThreshold"], "500");
    assert_eq!(
        spec["triggers"][0]["metadata"]["bootstrapServers"],
        json!(panopticon_e2e::kafka_brokers())
    );
    let owner = so.metadata.owner_references.as_ref().context("owner")?;
    assert_eq!(owner[0].kind, "Panopticon");
    eventually("AutoscalingReady=True", WITHIN, || async {
        let p = api.get("apm").await?;
        Ok(condition(&p, "AutoscalingReady")
            .filter(|(s, _, _)| s == "True")
            .map(|_| ()))
    })
    .await?;
    // The operator's apply leaves replicas to KEDA's HPA.
    let deployments: Api<Deployment> = Api::namespaced(admin.clone(), &ns.name);
    let ingest = deployments.get("apm-ingest").await?;
    assert!(!panopticon_operator::autoscale::applies_replicas(
        &ingest,
        "panopticon-operator"
    ));

    // Leaving keda mode removes the ScaledObject (or KEDA would keep scaling).
    patch_spec(
        &admin,
        &ns.name,
        "apm",
        json!({"ingest": {"autoscaling": {"mode": "none"}}}),
    )
    .await?;
    eventually("the ScaledObject to be deleted", WITHIN, || async {
        Ok(objects.get_opt("apm-ingest").await?.is_none().then_some(()))
    })
    .await?;
    operator.stop().await?;
    ns.delete().await?;
    Ok(())
}
