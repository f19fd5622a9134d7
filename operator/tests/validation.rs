//! Bad resources: every CEL/schema rule refuses at apply time naming the field; a value only
//! a component can judge becomes an `InvalidSpec` condition and a Warning Event naming the
//! field, and no child is touched.

mod common;

use std::time::Duration;

use anyhow::Result;
use common::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams};
use serde_json::{Value, json};

/// Applies `resource` with `change` merged into its spec; returns the API server's refusal.
async fn refusal(client: &kube::Client, base: &Value, change: Value) -> Result<String> {
    let mut resource = base.clone();
    merge(&mut resource["spec"], change);
    match apply_value(client, &resource).await {
        Ok(()) => anyhow::bail!("accepted: {}", resource["spec"]),
        Err(e) => Ok(format!("{e:#}")),
    }
}

fn merge(target: &mut Value, patch: Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                merge(t.entry(k).or_insert(Value::Null), v);
            }
        }
        (t, p) => *t = p,
    }
}

#[tokio::test]
async fn each_schema_rule_refuses_at_apply_time_naming_the_field() -> Result<()> {
    let admin = admin_client().await?;
    install(&admin).await?;
    let ns = TestNamespace::create(&admin, "pano-cel").await?;
    let base = resource("bad", &ns.name, &Unique::new("cel"));
    let cases = [
        (
            json!({"elasticsearch": {"url": "es:9200"}}),
            "spec.elasticsearch.url",
            "http:// or https://",
        ),
        (
            json!({"elasticsearch": {"credentials": {"basic": {"secretName": "a"}, "apiKey": {"name": "b", "key": "k"}}}}),
            "spec.elasticsearch.credentials",
            "exactly one of basic and apiKey",
        ),
        (
            json!({"elasticsearch": {"credentials": {}}}),
            "spec.elasticsearch.credentials",
            "exactly one",
        ),
        (
            json!({"elasticsearch": {"streams": {"logs": {"name": "Logs", "retention": "14d"}}}}),
            "spec.elasticsearch.streams.logs.name",
            "",
        ),
        (
            json!({"elasticsearch": {"streams": {"logs": {"name": "logs", "retention": "two weeks"}}}}),
            "spec.elasticsearch.streams.logs.retention",
            "",
        ),
        (
            json!({"elasticsearch": {"rollover": {"maxAge": "1y"}}}),
            "spec.elasticsearch.rollover.maxAge",
            "",
        ),
        (
            json!({"elasticsearch": {"replicas": 11}}),
            "spec.elasticsearch.replicas",
            "",
        ),
        (
            json!({"elasticsearch": {"deletionPolicy": "Sometimes"}}),
            "spec.elasticsearch.deletionPolicy",
            "",
        ),
        (
            json!({"kafka": {"topics": {"logs": {"partitions": 0}}}}),
            "spec.kafka.topics.logs.partitions",
            "",
        ),
        (
            json!({"kafka": {"topics": {"spans": {"name": "bad topic"}}}}),
            "spec.kafka.topics.spans.name",
            "",
        ),
        (
            json!({"kafka": {"sasl": {"mechanism": "GSSAPI", "secretName": "s"}}}),
            "spec.kafka.sasl.mechanism",
            "",
        ),
        (
            json!({"redis": {"url": "http://cache"}}),
            "spec.redis.url",
            "redis:// or rediss://",
        ),
        (
            json!({"redis": {"url": "redis://user:secret@cache"}}),
            "spec.redis.url",
            "must not carry credentials",
        ),
        (
            json!({"query": {"corsOrigins": ["apm.example.com"]}}),
            "spec.query.corsOrigins",
            "http(s)://",
        ),
        (
            json!({"alert": {"corsOrigins": ["ftp://x"]}}),
            "spec.alert.corsOrigins",
            "http(s)://",
        ),
        (
            json!({"query": {"service": {"port": 70000}}}),
            "spec.query.service.port",
            "",
        ),
        (
            json!({"ingest": {"replicas": -1}}),
            "spec.ingest.replicas",
            "",
        ),
        (
            json!({"ingest": {"autoscaling": {"minReplicas": 5, "maxReplicas": 2}}}),
            "spec.ingest.autoscaling",
            "minReplicas must not exceed maxReplicas",
        ),
        (
            json!({"ingest": {"autoscaling": {"mode": "hpa"}}}),
            "spec.ingest.autoscaling.mode",
            "",
        ),
        (
            json!({"ingest": {"autoscaling": {"lagThreshold": 0}}}),
            "spec.ingest.autoscaling.lagThreshold",
            "",
        ),
    ];
    for (change, field, words) in cases {
        let message = refusal(&admin, &base, change.clone()).await?;
        assert!(message.contains(field), "{change}: {message}");
        assert!(message.contains(words), "{change}: {message}");
    }

    // Transition rule: partitions can be raised, never lowered.
    apply_value(&admin, &base).await?;
    let message = refusal(
        &admin,
        &base,
        json!({"kafka": {"topics": {"logs": {"partitions": 2}}}}),
    )
    .await?;
    assert!(
        message.contains("spec.kafka.topics.logs.partitions"),
        "{message}"
    );
    assert!(message.contains("cannot be decreased"), "{message}");
    let mut raised = base.clone();
    raised["spec"]["kafka"]["topics"]["logs"]["partitions"] = json!(4);
    apply_value(&admin, &raised).await?;
    ns.delete().await?;
    Ok(())
}

/// Ingest refuses to consume its own output: the schema cannot see that, the component's own
/// parser (which the operator runs) can.
#[tokio::test]
async fn a_value_only_the_component_refuses_is_an_invalid_spec_condition() -> Result<()> {
    let admin = admin_client().await?;
    install(&admin).await?;
    let ns = TestNamespace::create(&admin, "pano-invalid").await?;
    let unique = Unique::new("invalid");
    let operator = Operator::start(&ns.name).await?;
    let mut bad = resource("apm", &ns.name, &unique);
    bad["spec"]["kafka"]["topics"]["errors"]["name"] = json!(unique.topic("logs"));
    apply_value(&admin, &bad).await?;
    let api = panopticons(&admin, &ns.name);
    let (ready, degraded) = eventually(
        "InvalidSpec conditions",
        Duration::from_secs(60),
        || async {
            let p = api.get("apm").await?;
            Ok(condition(&p, "Ready")
                .filter(|(_, reason, _)| reason == "InvalidSpec")
                .zip(condition(&p, "Degraded")))
        },
    )
    .await?;
    assert_eq!(ready.0, "False");
    assert!(
        ready.2.contains("spec.kafka.topics.errors.name"),
        "{}",
        ready.2
    );
    assert!(ready.2.contains("input topic"), "{}", ready.2);
    assert_eq!(degraded.0, "True");
    let events: Api<Event> = Api::namespaced(admin.clone(), &ns.name);
    eventually(
        "a Warning InvalidSpec Event",
        Duration::from_secs(30),
        || async {
            let found = events
                .list(&ListParams::default())
                .await?
                .items
                .into_iter()
                .any(|e| {
                    e.reason.as_deref() == Some("InvalidSpec")
                        && e.type_.as_deref() == Some("Warning")
                        && e.note
                            .unwrap_or_default()
                            .contains("spec.kafka.topics.errors.name")
                });
            Ok(found.then_some(()))
        },
    )
    .await?;
    let deployments: Api<Deployment> = Api::namespaced(admin.clone(), &ns.name);
    assert!(
        deployments
            .list(&ListParams::default())
            .await?
            .items
            .is_empty(),
        "nothing applied"
    );

    // Fixed: it converges.
    patch_spec(
        &admin,
        &ns.name,
        "apm",
        json!({"kafka": {"topics": {"errors": {"name": unique.topic("errors")}}}}),
    )
    .await?;
    wait_ready(&admin, &ns.name, "apm", Duration::from_secs(90)).await?;
    operator.stop().await?;
    ns.delete().await?;
    Ok(())
}
