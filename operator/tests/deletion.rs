//! deletionPolicy Delete (a finalizer removes Elasticsearch state and topics before the
//! resource goes), and credentials that reach pods only as Secret references.

mod common;

use std::time::Duration;

use anyhow::{Context as _, Result};
use common::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::api::events::v1::Event;
use kube::ResourceExt as _;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::json;

const WITHIN: Duration = Duration::from_secs(90);
const PASSWORD: &str = "s3cr3t-never-logged-7f2c";

#[tokio::test]
async fn delete_policy_removes_external_state_and_secrets_stay_references() -> Result<()> {
    let admin = admin_client().await?;
    install(&admin).await?;
    let ns = TestNamespace::create(&admin, "pano-del").await?;
    let unique = Unique::new("del");
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), &ns.name);
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "search-user"},
                "stringData": {"username": "panopticon", "password": PASSWORD}
            }))?,
        )
        .await?;
    let operator = Operator::start(&ns.name).await?;
    let mut r = resource("apm", &ns.name, &unique);
    r["spec"]["elasticsearch"]["deletionPolicy"] = json!("Delete");
    // The stack's OpenSearch runs without its security plugin, so it ignores the credentials;
    // what matters here is where they go.
    r["spec"]["elasticsearch"]["credentials"] = json!({"basic": {"secretName": "search-user"}});
    r["spec"]["kafka"]["deletionPolicy"] = json!("Delete");
    apply_value(&admin, &r).await?;
    let ready = wait_ready(&admin, &ns.name, "apm", WITHIN).await?;
    assert!(
        ready
            .finalizers()
            .iter()
            .any(|f| f == "panopticon.io/external-state")
    );

    // The password is a secretKeyRef, never a value: not in ConfigMaps, status or Events.
    let deployments: Api<Deployment> = Api::namespaced(admin.clone(), &ns.name);
    let ingest = deployments.get("apm-ingest").await?;
    let env = ingest
        .spec
        .and_then(|s| s.template.spec)
        .context("pod")?
        .containers[0]
        .env
        .clone()
        .unwrap_or_default();
    let password = env
        .iter()
        .find(|e| e.name == "ELASTICSEARCH_PASSWORD")
        .context("password env")?;
    assert!(password.value.is_none());
    let reference = password
        .value_from
        .as_ref()
        .and_then(|v| v.secret_key_ref.as_ref())
        .context("secretKeyRef")?;
    assert_eq!(
        (reference.name.as_str(), reference.key.as_str()),
        ("search-user", "password")
    );
    let config_maps: Api<ConfigMap> = Api::namespaced(admin.clone(), &ns.name);
    for cm in config_maps.list(&ListParams::default()).await?.items {
        let text = serde_json::to_string(&cm.data)?;
        assert!(!text.contains(PASSWORD), "{}", cm.name_any());
        assert!(
            !text.contains("ELASTICSEARCH_USERNAME"),
            "{}",
            cm.name_any()
        );
    }
    assert!(!serde_json::to_string(&ready.status)?.contains(PASSWORD));
    let events: Api<Event> = Api::namespaced(admin.clone(), &ns.name);
    for e in events.list(&ListParams::default()).await?.items {
        assert!(!e.note.unwrap_or_default().contains(PASSWORD));
    }

    // Deleting the resource deletes what it provisioned, then lets it go.
    assert_eq!(
        es_get(&format!("/_data_stream/{}", unique.stream("logs")))
            .await?
            .0,
        200
    );
    assert!(topic_partitions(&unique.topic("logs"))?.is_some());
    panopticons(&admin, &ns.name)
        .delete("apm", &DeleteParams::background())
        .await?;
    eventually("the resource to be gone", WITHIN, || async {
        Ok(panopticons(&admin, &ns.name)
            .get_opt("apm")
            .await?
            .is_none()
            .then_some(()))
    })
    .await?;
    for kind in ["logs", "traces"] {
        let (code, _) = es_get(&format!("/_data_stream/{}", unique.stream(kind))).await?;
        assert_eq!(code, 404, "{kind} data stream deleted");
        let (code, _) = es_get(&format!(
            "/_index_template/{}-template",
            unique.stream(kind)
        ))
        .await?;
        assert_eq!(code, 404, "{kind} template deleted");
    }
    eventually("the topics to be deleted", WITHIN, || async {
        let left = ["logs", "spans", "errors", "dlq"]
            .iter()
            .filter_map(|k| topic_partitions(&unique.topic(k)).ok().flatten())
            .count();
        Ok((left == 0).then_some(()))
    })
    .await?;

    // Switching both policies back to Retain removes the finalizer again.
    let mut retained = resource("kept", &ns.name, &Unique::new("kept"));
    retained["spec"]["kafka"]["deletionPolicy"] = json!("Delete");
    apply_value(&admin, &retained).await?;
    eventually("the finalizer to be added", WITHIN, || async {
        let p = panopticons(&admin, &ns.name).get("kept").await?;
        Ok(p.finalizers()
            .iter()
            .any(|f| f == "panopticon.io/external-state")
            .then_some(()))
    })
    .await?;
    patch_spec(
        &admin,
        &ns.name,
        "kept",
        json!({"kafka": {"deletionPolicy": "Retain"}}),
    )
    .await?;
    eventually("the finalizer to be removed", WITHIN, || async {
        let p = panopticons(&admin, &ns.name).get("kept").await?;
        Ok(p.finalizers().is_empty().then_some(()))
    })
    .await?;
    operator.stop().await?;
    ns.delete().await?;
    Ok(())
}
