//! The operator from `kubectl apply` to `Ready`: one resource, then 50 at once.
//!
//! 1. Installs the CRD and RBAC into the stack's kube-apiserver and starts the
//!    `panopticon-operator` binary (bench profile) watching a fresh namespace.
//! 2. Applies one Panopticon and measures the time until `Ready=True` for its generation
//!    (four Deployments whose pods kwok runs, templates and data streams in the real
//!    OpenSearch, topics in the real Kafka).
//! 3. Applies 50 more at once and measures the time until every one is Ready.
//! 4. Prints both times, reconciles per second over each phase (from the operator's own
//!    counter), and the operator's RSS and peak RSS.
//!
//! The 50 resources share their data streams and topics (50 tenants of one backend), so after
//! the first they find Elasticsearch and Kafka already as asked; what is measured is the
//! operator and the API server. kube-controller-manager, kube-scheduler and kwok run on the
//! same two cores and turn each resource's Deployments into Running pods, so their work is
//! part of every figure.
//!
//! Needs the stack: `e2e/stack up && eval "$(e2e/stack env)" &&
//! cargo bench -p panopticon-operator --bench apply_to_ready`.

// A benchmark reports on standard output.
#![allow(clippy::print_stdout)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;
use common::*;
use futures::future::try_join_all;
use panopticon_e2e::ingest::metric;
use panopticon_e2e::process::{Component, cpu_and_peak_rss};

const MANY: usize = 50;

async fn reconciles(operator: &Component) -> Result<f64> {
    Ok(metric(
        &operator.metrics().await?,
        "panopticon_operator_reconciles_total",
    ))
}

#[tokio::main]
async fn main() -> Result<()> {
    let admin = admin_client().await?;
    install(&admin).await?;
    let ns = TestNamespace::create(&admin, "pano-bench").await?;
    let unique = Unique::new("bench");
    let env = vec![
        ("WATCH_NAMESPACES".to_owned(), ns.name.clone()),
        ("LOG_FORMAT".to_owned(), "json".to_owned()),
    ];
    let binary = Path::new(env!("CARGO_BIN_EXE_panopticon-operator"));
    let mut operator = Component::start(binary, &[], &env, "operator-bench").await?;

    let before = reconciles(&operator).await?;
    let started = Instant::now();
    apply_value(&admin, &resource("one", &ns.name, &unique)).await?;
    wait_ready(&admin, &ns.name, "one", Duration::from_secs(120)).await?;
    let one = started.elapsed();
    let one_reconciles = reconciles(&operator).await? - before;

    let before = reconciles(&operator).await?;
    let started = Instant::now();
    let names: Vec<String> = (0..MANY).map(|i| format!("tenant-{i:02}")).collect();
    let resources: Vec<_> = names
        .iter()
        .map(|n| resource(n, &ns.name, &unique))
        .collect();
    try_join_all(resources.iter().map(|r| apply_value(&admin, r))).await?;
    let mut slowest = Duration::ZERO;
    for n in &names {
        wait_ready(&admin, &ns.name, n, Duration::from_secs(600)).await?;
        slowest = started.elapsed();
    }
    let many_reconciles = reconciles(&operator).await? - before;
    let rss = operator.rss_bytes()?;
    let (cpu, peak) = cpu_and_peak_rss(operator.pid())?;
    let total = one + slowest;

    println!("operator apply → Ready (kube-apiserver + kwok, OpenSearch, Kafka on this machine)");
    println!(
        "{:<28}{:>14}{:>14}{:>16}",
        "case", "to Ready", "reconciles", "reconciles/s"
    );
    println!(
        "{:<28}{:>12.2} s{:>14}{:>16.1}",
        "1 resource",
        one.as_secs_f64(),
        one_reconciles,
        one_reconciles / one.as_secs_f64()
    );
    println!(
        "{:<28}{:>12.2} s{:>14}{:>16.1}",
        format!("{MANY} resources at once"),
        slowest.as_secs_f64(),
        many_reconciles,
        many_reconciles / slowest.as_secs_f64()
    );
    println!(
        "per resource, {MANY} at once: {:.3} s; operator CPU {:.1} s over {:.1} s; RSS {:.1} MiB (peak {:.1} MiB)",
        slowest.as_secs_f64() / MANY as f64,
        cpu,
        total.as_secs_f64(),
        rss as f64 / 1048576.0,
        peak as f64 / 1048576.0
    );
    let status = operator.terminate(Duration::from_secs(30)).await?;
    anyhow::ensure!(status.success(), "operator exit: {status}");
    ns.delete().await?;
    Ok(())
}
