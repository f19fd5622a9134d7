//! `panopticon-operator`: runs the controller (default), prints the CRD (`crd`) or the
//! configuration reference (`config-reference`).

use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use panopticon_common::lease::Elector;
use panopticon_common::telemetry::{self, LogFormat};
use panopticon_operator::controller::{self, Context, Options};
use panopticon_operator::metrics::Metrics;
use prometheus_client::registry::Registry;

#[derive(Parser)]
#[command(
    name = "panopticon-operator",
    version,
    about = "The Panopticon Kubernetes operator"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Namespaces to watch, comma-separated; empty watches all (needs a ClusterRole).
    #[arg(
        long,
        env = "WATCH_NAMESPACES",
        default_value = "",
        value_delimiter = ','
    )]
    watch_namespaces: Vec<String>,
    /// Elect a leader through a Lease, for more than one replica.
    #[arg(long, env = "LEADER_ELECT", default_value_t = false)]
    leader_elect: bool,
    #[arg(long, env = "LEASE_NAME", default_value = "panopticon-operator")]
    lease_name: String,
    /// Namespace of the Lease; defaults to the pod's.
    #[arg(long, env = "POD_NAMESPACE", default_value = "panopticon-system")]
    lease_namespace: String,
    /// `/health`, `/ready` and `/metrics`.
    #[arg(
        long,
        env = "METRICS_ADDR",
        default_value = "0.0.0.0:8080",
        alias = "admin-addr"
    )]
    metrics_addr: std::net::SocketAddr,
    /// Resources reconciled at once.
    #[arg(long, env = "CONCURRENCY", default_value_t = 4)]
    concurrency: u16,
    /// Seconds between looks at a Ready resource (external drift).
    #[arg(long, env = "RESYNC_SECONDS", default_value_t = 300)]
    resync_seconds: u64,
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "plain")]
    log_format: Format,
}

#[derive(Subcommand)]
enum Command {
    /// Prints the CustomResourceDefinition (YAML).
    Crd,
    /// Prints the configuration reference (Markdown, `docs/configuration.md`).
    ConfigReference,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Format {
    Plain,
    Json,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let printed = match cli.command {
        Some(Command::Crd) => Some(panopticon_operator::crd_yaml()?),
        Some(Command::ConfigReference) => Some(panopticon_operator::reference::markdown()),
        None => None,
    };
    if let Some(text) = printed {
        std::io::Write::write_all(&mut std::io::stdout(), text.as_bytes())?;
        return Ok(());
    }
    telemetry::init(match cli.log_format {
        Format::Plain => LogFormat::Plain,
        Format::Json => LogFormat::Json,
    })?;
    let shutdown = panopticon_common::shutdown::on_signal();
    let client = kube::Client::try_default().await?;
    let mut registry = Registry::default();
    let metrics = Metrics::new(&mut registry);
    let ready: panopticon_common::admin::ReadinessProbe = Arc::new(|| Box::pin(async { Ok(()) }));
    panopticon_common::admin::serve(
        cli.metrics_addr,
        Arc::new(registry),
        ready,
        shutdown.clone(),
    )
    .await?;

    let identity = std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| format!("panopticon-operator-{}", std::process::id()));
    let options = Options {
        namespaces: cli
            .watch_namespaces
            .iter()
            .map(|n| n.trim().to_owned())
            .filter(|n| !n.is_empty())
            .collect(),
        concurrency: cli.concurrency.max(1),
        resync: Duration::from_secs(cli.resync_seconds.max(10)),
        instance: Some(identity.clone()),
        ..Options::default()
    };
    tracing::info!(
        namespaces = ?options.namespaces,
        leader_elect = cli.leader_elect,
        "starting the Panopticon operator"
    );
    let ctx = Arc::new(Context::new(client.clone(), metrics.clone(), options));

    if !cli.leader_elect {
        metrics.leader.set(1);
        return controller::run(client, ctx, shutdown).await;
    }
    // Leader election: work only while holding the Lease; losing it ends the process (the
    // pod restarts as a standby), so two replicas never reconcile at once for long.
    let (elector, mut leading) = Elector::new(
        client.clone(),
        &cli.lease_namespace,
        &cli.lease_name,
        &identity,
        Duration::from_secs(15),
    );
    let election = tokio::spawn(elector.run(shutdown.clone()));
    tracing::info!(lease = %cli.lease_name, "waiting for the leader Lease");
    tokio::select! {
        _ = shutdown.cancelled() => {
            stop_election(election).await;
            return Ok(());
        }
        changed = leading.wait_for(|l| *l) => {
            if changed.is_err() {
                anyhow::bail!("leader election stopped before this replica led");
            }
        }
    }
    tracing::info!(lease = %cli.lease_name, identity, "leading");
    metrics.leader.set(1);
    let work = shutdown.child_token();
    let run = controller::run(client, ctx, work.clone());
    tokio::pin!(run);
    let lost = tokio::select! {
        result = &mut run => {
            result?;
            false
        }
        _ = leading.wait_for(|l| !*l) => {
            work.cancel();
            run.await?;
            // On SIGTERM the elector releases the Lease itself: that is not a loss.
            !shutdown.is_cancelled()
        }
    };
    metrics.leader.set(0);
    shutdown.cancel();
    stop_election(election).await;
    if lost {
        anyhow::bail!("lost the leader Lease; exiting so that a new leader takes over");
    }
    Ok(())
}

async fn stop_election(election: tokio::task::JoinHandle<()>) {
    if let Err(e) = election.await {
        tracing::warn!(error = %e, "leader election task failed");
    }
}
