//! The `panopticon-operator` binary as a process: killed in the middle of a reconcile and
//! restarted it converges without duplicates; two replicas with `--leader-elect` never both
//! work, and the standby takes over when the leader dies.

mod common;

use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use common::*;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use kube::api::{Api, ListParams};
use panopticon_e2e::process::Component;

const WITHIN: Duration = Duration::from_secs(120);

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_panopticon-operator"))
}

fn env(ns: &str, leader_elect: bool) -> Vec<(String, String)> {
    vec![
        ("WATCH_NAMESPACES".to_owned(), ns.to_owned()),
        ("LEADER_ELECT".to_owned(), leader_elect.to_string()),
        ("POD_NAMESPACE".to_owned(), ns.to_owned()),
        ("RESYNC_SECONDS".to_owned(), "20".to_owned()),
    ]
}

async fn count<K>(client: &kube::Client, ns: &str, labels: &str) -> Result<usize>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    Ok(api
        .list(&ListParams::default().labels(labels))
        .await?
        .items
        .len())
}

#[tokio::test]
async fn killed_mid_reconcile_and_restarted_it_converges_without_duplicates() -> Result<()> {
    let admin = admin_client().await?;
    install(&admin).await?;
    let ns = TestNamespace::create(&admin, "pano-kill").await?;
    let unique = Unique::new("kill");
    let mut operator = Component::start(binary(), &[], &env(&ns.name, false), "operator").await?;
    apply_value(&admin, &resource("apm", &ns.name, &unique)).await?;
    // Kill it as soon as the first child exists: the reconcile is under way.
    let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), &ns.name);
    eventually("the first child", WITHIN, || async {
        Ok(accounts.get_opt("apm-ingest").await?.map(|_| ()))
    })
    .await?;
    operator.kill_hard()?;
    let p = panopticons(&admin, &ns.name).get("apm").await?;
    assert!(!ready_now(&p), "killed before it finished");

    let mut operator = Component::start(binary(), &[], &env(&ns.name, false), "operator").await?;
    wait_ready(&admin, &ns.name, "apm", WITHIN).await?;
    let labels = "app.kubernetes.io/instance=apm";
    assert_eq!(count::<Deployment>(&admin, &ns.name, labels).await?, 4);
    assert_eq!(count::<ConfigMap>(&admin, &ns.name, labels).await?, 4);
    assert_eq!(count::<ServiceAccount>(&admin, &ns.name, labels).await?, 4);
    assert_eq!(count::<Service>(&admin, &ns.name, labels).await?, 2);
    assert_eq!(
        count::<ReplicaSet>(&admin, &ns.name, labels).await?,
        4,
        "no rollout from a restart"
    );
    let metrics = operator.metrics().await?;
    assert!(
        metrics.contains("panopticon_operator_reconciles_total"),
        "{metrics}"
    );
    // SIGTERM: a graceful exit.
    let status = operator.terminate(Duration::from_secs(20)).await?;
    assert!(status.success(), "{status}: {}", operator.log_tail());
    ns.delete().await?;
    Ok(())
}

fn leading(metrics: &str) -> bool {
    metrics
        .lines()
        .any(|l| l.trim() == "panopticon_operator_leader 1")
}

#[tokio::test]
async fn two_replicas_elect_one_leader_and_the_standby_takes_over() -> Result<()> {
    let admin = admin_client().await?;
    install(&admin).await?;
    let ns = TestNamespace::create(&admin, "pano-lead").await?;
    let unique = Unique::new("lead");
    let first = Component::start(binary(), &[], &env(&ns.name, true), "operator-a").await?;
    let second = Component::start(binary(), &[], &env(&ns.name, true), "operator-b").await?;
    let mut replicas = [first, second];
    let leader = eventually("one leader", WITHIN, || async {
        let a = leading(&replicas[0].metrics().await?);
        let b = leading(&replicas[1].metrics().await?);
        anyhow::ensure!(!(a && b), "both replicas lead");
        Ok(if a {
            Some(0)
        } else if b {
            Some(1)
        } else {
            None
        })
    })
    .await?;
    apply_value(&admin, &resource("apm", &ns.name, &unique)).await?;
    wait_ready(&admin, &ns.name, "apm", WITHIN).await?;
    let standby = 1 - leader;
    assert!(!leading(&replicas[standby].metrics().await?));

    // The leader dies without releasing the Lease: the standby takes over after it expires and
    // reconciles (a deleted child comes back).
    replicas[leader].kill_hard()?;
    let deployments: Api<Deployment> = Api::namespaced(admin.clone(), &ns.name);
    deployments.delete("apm-query", &Default::default()).await?;
    eventually("the standby to lead", WITHIN, || async {
        Ok(leading(&replicas[standby].metrics().await?).then_some(()))
    })
    .await?;
    eventually("apm-query to be restored", WITHIN, || async {
        Ok(deployments
            .get_opt("apm-query")
            .await?
            .filter(|d| d.metadata.deletion_timestamp.is_none())
            .map(|_| ()))
    })
    .await?;
    let status = replicas[standby].terminate(Duration::from_secs(20)).await?;
    assert!(status.success(), "{status}");
    ns.delete().await?;
    Ok(())
}
