//! The reconcile loop of `Panopticon` resources.
//!
//! `reconcile` is an ordered list of idempotent steps; none waits for anything to become
//! ready (progress is reported in conditions and the resource is requeued):
//! 1. `spec.paused`: write the `Paused` condition and stop.
//! 2. Render every component's configuration; a value a component would refuse stops here with
//!    `InvalidSpec` naming the field (children stay as they were).
//! 3. Server-side apply the children under [`FIELD_MANAGER`] (forcing, so a hand-edited managed
//!    field is restored), each with a controller owner reference; delete a PodDisruptionBudget
//!    the component no longer needs.
//! 4. Provision Elasticsearch and Kafka (at most once a minute per generation unless the last
//!    attempt failed).
//! 5. Read the Deployments back, evaluate the conditions and apply the status.
//!
//! # Finalizer
//! Flow: a finalizer ([`FINALIZER`]) is added only while a `deletionPolicy` is `Delete`; on
//! deletion, Elasticsearch state and/or topics are deleted, then the finalizer is removed and
//! Kubernetes garbage-collects the children through their owner references.
//! Guarantees: with both policies `Retain` no finalizer exists, so deleting the resource never
//! waits on Elasticsearch or Kafka and never deletes data.
//! Caveats: if the cluster stays unreachable, deletion waits (the Event and the log say why);
//! removing the finalizer by hand leaves the external state behind.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::finalizer::{Event as Finalized, finalizer};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt as _};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::autoscale;
use crate::conditions::{self, Area, Observation};
use crate::crd::{
    AutoscalingMode, AutoscalingStatus, ComponentStatus, DeletionPolicy, ElasticsearchStatus,
    Panopticon, PanopticonStatus,
};
use crate::metrics::{ConditionLabels, Metrics, ResourceLabels};
use crate::provision::{self, Secrets};
use crate::render::{self, Component, Rendered};
use crate::resources::{self, CONFIG_HASH_ANNOTATION, Names};

/// The field manager of every apply.
pub const FIELD_MANAGER: &str = "panopticon-operator";
/// Present only while a deletionPolicy is Delete.
pub const FINALIZER: &str = "panopticon.io/external-state";
/// Label on every child; the watches select on it.
const MANAGED_BY: &str = "app.kubernetes.io/managed-by=panopticon-operator";

/// A failure that aborts a reconcile (the controller retries it with backoff).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("finalizer: {0}")]
    Finalizer(String),
    #[error("cleanup of external state: {0}")]
    Cleanup(String),
}

impl Error {
    /// The `reason` label of the failure metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(kube::Error::Api(e)) if e.code == 403 => "forbidden",
            Error::Kube(kube::Error::Api(e)) if e.code == 409 => "conflict",
            Error::Kube(_) => "kube_api",
            Error::Finalizer(_) => "finalizer",
            Error::Cleanup(_) => "cleanup",
        }
    }
}

/// How the controller runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Namespaces to watch; empty means all.
    pub namespaces: Vec<String>,
    /// Resources reconciled at once.
    pub concurrency: u16,
    /// How often a Ready resource is looked at again (external drift: a deleted topic or
    /// template is restored within this period).
    pub resync: Duration,
    /// How long a successful provisioning of one generation is trusted.
    pub provision_interval: Duration,
    /// `Reporter.instance` of Events (the pod name).
    pub instance: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            namespaces: Vec::new(),
            concurrency: 4,
            resync: Duration::from_secs(300),
            provision_interval: Duration::from_secs(60),
            instance: None,
        }
    }
}

#[derive(Debug, Clone)]
struct Provisioned {
    generation: i64,
    at: Instant,
    elasticsearch: Area,
    kafka: Area,
}

/// What the operator remembers per resource (by uid) between reconciles.
#[derive(Debug, Default)]
struct Memory {
    /// Consecutive reconciles that found Elasticsearch or Kafka failing (backoff).
    failures: u32,
    /// The last fully successful provisioning.
    provisioned: Option<Provisioned>,
    /// Detected engine, kept while provisioning is skipped.
    elasticsearch: Option<ElasticsearchStatus>,
    retention_gap: Option<String>,
    /// Conditions that were False after the last reconcile (metrics).
    false_conditions: Vec<String>,
    /// The built-in autoscaler's recommendation window, when it last read the lag, and what
    /// that poll concluded.
    autoscaler: Option<crate::autoscale::policy::Autoscaler>,
    last_lag_read: Option<Instant>,
    last_autoscaling: Option<(AutoscalingStatus, conditions::Observed)>,
}

pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub metrics: Metrics,
    pub options: Options,
    memory: Mutex<HashMap<String, Memory>>,
    /// The autoscaler's clock starts here.
    epoch: Instant,
}

impl Context {
    pub fn new(client: Client, metrics: Metrics, options: Options) -> Self {
        let reporter = Reporter {
            controller: FIELD_MANAGER.to_owned(),
            instance: options.instance.clone(),
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics,
            options,
            memory: Mutex::new(HashMap::new()),
            epoch: Instant::now(),
        }
    }

    fn remember<T>(&self, uid: &str, f: impl FnOnce(&mut Memory) -> T) -> T {
        let mut memory = self
            .memory
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(memory.entry(uid.to_owned()).or_default())
    }

    fn forget(&self, uid: &str) {
        let mut memory = self
            .memory
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        memory.remove(uid);
        self.publish_condition_gauges(&memory);
    }

    fn set_false_conditions(&self, uid: &str, false_conditions: Vec<String>) {
        let mut memory = self
            .memory
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        memory.entry(uid.to_owned()).or_default().false_conditions = false_conditions;
        self.publish_condition_gauges(&memory);
    }

    fn publish_condition_gauges(&self, memory: &HashMap<String, Memory>) {
        for condition in [
            "Ready",
            "ElasticsearchReady",
            "KafkaReady",
            "ComponentsReady",
        ] {
            let n = memory
                .values()
                .filter(|m| m.false_conditions.iter().any(|c| c == condition))
                .count();
            self.metrics
                .not_ready
                .get_or_create(&ConditionLabels {
                    condition: condition.to_owned(),
                })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    /// A failure found by a reconcile: counted by reason and told as a Warning Event.
    async fn warn(&self, pano: &Panopticon, failure: &provision::Failure, action: &str) {
        self.metrics.failure(failure.reason);
        let note = failure.message.clone();
        self.event(pano, EventType::Warning, failure.reason, action, note)
            .await;
    }

    async fn event(
        &self,
        pano: &Panopticon,
        type_: EventType,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let event = Event {
            type_,
            reason: reason.to_owned(),
            note: Some(crate::truncate(&note, 1000)),
            action: action.to_owned(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, &pano.object_ref(&())).await {
            tracing::warn!(error = %e, reason, "cannot publish an Event");
        }
    }
}

/// Runs the controller until `shutdown`. Fails at once, with what to do, when the CRD is not
/// installed.
pub async fn run(
    client: Client,
    ctx: Arc<Context>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let probe: Api<Panopticon> = match ctx.options.namespaces.first() {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    if let Err(e) = probe.list(&kube::api::ListParams::default().limit(1)).await {
        anyhow::bail!(
            "cannot list Panopticon resources ({e}); is the CRD installed? \
             kubectl apply --server-side -f crds/panopticon.io_panopticons.yaml"
        );
    }
    let scopes: Vec<Option<String>> = if ctx.options.namespaces.is_empty() {
        vec![None]
    } else {
        ctx.options.namespaces.iter().cloned().map(Some).collect()
    };
    let controllers = scopes.into_iter().map(|ns| {
        let ctx = ctx.clone();
        let shutdown = shutdown.clone();
        let client = client.clone();
        async move {
            let (resources, deployments, config_maps, services, accounts, budgets) = match &ns {
                Some(ns) => (
                    Api::<Panopticon>::namespaced(client.clone(), ns),
                    Api::<Deployment>::namespaced(client.clone(), ns),
                    Api::<ConfigMap>::namespaced(client.clone(), ns),
                    Api::<Service>::namespaced(client.clone(), ns),
                    Api::<ServiceAccount>::namespaced(client.clone(), ns),
                    Api::<PodDisruptionBudget>::namespaced(client.clone(), ns),
                ),
                None => (
                    Api::all(client.clone()),
                    Api::all(client.clone()),
                    Api::all(client.clone()),
                    Api::all(client.clone()),
                    Api::all(client.clone()),
                    Api::all(client.clone()),
                ),
            };
            let children = || watcher::Config::default().labels(MANAGED_BY);
            Controller::new(resources, watcher::Config::default())
                .with_config(ControllerConfig::default().concurrency(ctx.options.concurrency))
                .owns(deployments, children())
                .owns(config_maps, children())
                .owns(services, children())
                .owns(accounts, children())
                .owns(budgets, children())
                .graceful_shutdown_on(async move { shutdown.cancelled().await })
                .run(reconcile, error_policy, ctx)
                .for_each(|result| async move {
                    match result {
                        Ok((object, _)) => tracing::debug!(%object, "reconciled"),
                        Err(e) => tracing::debug!(error = %e, "reconcile did not complete"),
                    }
                })
                .await;
        }
    });
    futures::future::join_all(controllers).await;
    Ok(())
}

/// Entry point of one reconcile: the finalizer dance, then [`apply`] or [`cleanup`].
pub async fn reconcile(pano: Arc<Panopticon>, ctx: Arc<Context>) -> Result<Action, Error> {
    use tracing::Instrument as _;
    let metrics = ctx.metrics.clone();
    let _timer = metrics.timer();
    let span = tracing::info_span!(
        "reconcile",
        namespace = %pano.namespace().unwrap_or_default(),
        name = %pano.name_any(),
        generation = pano.metadata.generation.unwrap_or_default(),
    );
    reconcile_with_finalizer(pano, ctx).instrument(span).await
}

async fn reconcile_with_finalizer(
    pano: Arc<Panopticon>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let ns = pano.namespace().unwrap_or_default();
    let api: Api<Panopticon> = Api::namespaced(ctx.client.clone(), &ns);
    let wants_finalizer = pano.spec.elasticsearch.deletion_policy == DeletionPolicy::Delete
        || pano.spec.kafka.deletion_policy == DeletionPolicy::Delete;
    let has_finalizer = pano.finalizers().iter().any(|f| f == FINALIZER);
    if !wants_finalizer && has_finalizer && pano.meta().deletion_timestamp.is_none() {
        // Both policies went back to Retain: nothing to clean up on deletion any more.
        remove_finalizer(&api, &pano).await?;
        return Ok(Action::await_change());
    }
    if wants_finalizer || has_finalizer {
        let ctx2 = ctx.clone();
        finalizer(&api, FINALIZER, pano, |event| async move {
            match event {
                Finalized::Apply(p) => apply(p, ctx2).await,
                Finalized::Cleanup(p) => cleanup(p, ctx2).await,
            }
        })
        .await
        .map_err(|e| match e {
            kube::runtime::finalizer::Error::ApplyFailed(e)
            | kube::runtime::finalizer::Error::CleanupFailed(e) => e,
            other => Error::Finalizer(other.to_string()),
        })
    } else if pano.meta().deletion_timestamp.is_some() {
        ctx.forget(&pano.uid().unwrap_or_default());
        Ok(Action::await_change())
    } else {
        apply(pano, ctx).await
    }
}

async fn remove_finalizer(api: &Api<Panopticon>, pano: &Panopticon) -> Result<(), Error> {
    let keep: Vec<&String> = pano
        .finalizers()
        .iter()
        .filter(|f| *f != FINALIZER)
        .collect();
    let patch = json!({
        "metadata": {"finalizers": keep, "resourceVersion": pano.resource_version()}
    });
    api.patch(
        &pano.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await?;
    Ok(())
}

/// Requeue after consecutive failures: 5 s doubling to 5 min, with jitter.
fn backoff(failures: u32) -> Duration {
    let base = 5u64.saturating_mul(1 << failures.min(6)).min(300);
    let jitter = fastrand_ms(base * 100);
    Duration::from_secs(base) + Duration::from_millis(jitter)
}

fn fastrand_ms(max: u64) -> u64 {
    // Cheap jitter without another dependency: the clock's nanoseconds.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::from(d.subsec_nanos()))
        .unwrap_or(0);
    if max == 0 { 0 } else { nanos % max }
}

/// Makes the cluster match the resource; see the module docs for the steps.
async fn apply(pano: Arc<Panopticon>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = pano.namespace().unwrap_or_default();
    let uid = pano.uid().unwrap_or_default();
    let generation = pano.metadata.generation;
    let previous = pano.status.clone().unwrap_or_default();

    if pano.spec.paused {
        let observed = vec![conditions::Observed::new(
            "Paused",
            true,
            "ReconciliationPaused",
            "spec.paused is true: children, Elasticsearch and Kafka are left as they are",
        )];
        write_conditions_only(&ctx, &pano, &observed).await?;
        return Ok(Action::await_change());
    }

    // 2. Render: all or nothing.
    let mut rendered: Vec<(Component, Rendered)> = Vec::new();
    let mut invalid = None;
    for component in Component::ALL {
        match render::render(&pano, component) {
            Ok(r) => rendered.push((component, r)),
            Err(e) => {
                invalid = Some(e.to_string());
                break;
            }
        }
    }
    if let Some(why) = invalid {
        ctx.metrics.failure("invalid_spec");
        ctx.event(
            &pano,
            EventType::Warning,
            "InvalidSpec",
            "Render",
            why.clone(),
        )
        .await;
        let observation = Observation {
            invalid_spec: Some(why),
            paused: false,
            elasticsearch: Area::Ready {
                message: String::new(),
            },
            kafka: Area::Ready {
                message: String::new(),
            },
            retention_not_enforced: None,
            components: Vec::new(),
        };
        let status =
            write_conditions_only(&ctx, &pano, &conditions::evaluate(&observation)).await?;
        ctx.set_false_conditions(&uid, false_types(&status));
        return Ok(Action::await_change());
    }

    // 3. Children.
    let owner = resources::owner(&pano);
    let mut deployments = Vec::new();
    for (component, config) in &rendered {
        let names = Names::new(&pano, *component);
        deployments.push(
            apply_component(
                &ctx,
                &pano,
                *component,
                &names,
                &owner,
                config,
                previous.observed_generation.is_some(),
            )
            .await?,
        );
    }

    // 4. External state.
    let secrets = Secrets::new(ctx.client.clone(), &ns);
    // A successful provisioning of this generation is trusted for a while; its outcome is
    // kept here (the watched copy of the status can predate what the last reconcile wrote).
    let recent = ctx.remember(&uid, |m| {
        m.provisioned
            .clone()
            .filter(|p| Some(p.generation) == generation)
            .filter(|p| p.at.elapsed() < ctx.options.provision_interval)
            .map(|p| (p.elasticsearch, p.kafka))
    });
    let (es_area, kafka_area) = match recent {
        Some(areas) => areas,
        None => provision_external(&ctx, &pano, &secrets, &uid, generation).await,
    };
    let failed =
        matches!(es_area, Area::Failed { .. }) || matches!(kafka_area, Area::Failed { .. });

    // 5. Status.
    let components: Vec<(Component, ComponentStatus)> = Component::ALL
        .iter()
        .copied()
        .zip(deployments.iter().map(component_status))
        .collect();
    let (es_status, retention_gap) =
        ctx.remember(&uid, |m| (m.elasticsearch.clone(), m.retention_gap.clone()));
    let observation = Observation {
        invalid_spec: None,
        paused: false,
        elasticsearch: es_area,
        kafka: kafka_area,
        retention_not_enforced: retention_gap,
        components: components.clone(),
    };
    let mut evaluated = conditions::evaluate(&observation);
    let (autoscaling, autoscaling_condition) =
        autoscale_step(&ctx, &pano, &secrets, &uid, &deployments[0], &previous).await;
    evaluated.extend(autoscaling_condition);
    let status = PanopticonStatus {
        observed_generation: generation,
        conditions: conditions::merge(&previous.conditions, &evaluated, generation, &now()),
        components: crate::crd::ComponentsStatus {
            ingest: components[0].1.clone(),
            rollup: components[1].1.clone(),
            query: components[2].1.clone(),
            alert: components[3].1.clone(),
        },
        elasticsearch: es_status.or(previous.elasticsearch.clone()),
        autoscaling,
    };
    let was_ready = conditions::is_true(&previous.conditions, "Ready");
    let is_ready = conditions::is_true(&status.conditions, "Ready");
    if status != previous {
        write_status(&ctx, &pano, &status).await?;
    }
    if is_ready == Some(true) && was_ready != Some(true) {
        ctx.event(
            &pano,
            EventType::Normal,
            "Ready",
            "Reconcile",
            "Elasticsearch, Kafka and all components are ready".to_owned(),
        )
        .await;
    }
    ctx.set_false_conditions(&uid, false_types(&status));

    let failures = ctx.remember(&uid, |m| {
        if failed {
            m.failures = m.failures.saturating_add(1);
        } else {
            m.failures = 0;
        }
        m.failures
    });
    let mut requeue = if failed {
        backoff(failures - 1)
    } else if is_ready == Some(true) {
        ctx.options.resync
    } else {
        // Rollouts report through the Deployment watch; this is a safety net.
        Duration::from_secs(30)
    };
    if pano.spec.ingest.autoscaling.mode == AutoscalingMode::Builtin {
        requeue = requeue.min(autoscale::poll_interval(&pano));
    }
    Ok(Action::requeue(requeue))
}

/// The autoscaling part of a reconcile: the built-in step, the KEDA objects, or nothing; with
/// the `AutoscalingReady` condition when autoscaling is on.
async fn autoscale_step(
    ctx: &Context,
    pano: &Panopticon,
    secrets: &Secrets,
    uid: &str,
    ingest: &Deployment,
    previous: &PanopticonStatus,
) -> (Option<AutoscalingStatus>, Option<conditions::Observed>) {
    let mode = pano.spec.ingest.autoscaling.mode;
    let names = Names::new(pano, Component::Ingest);
    let was_keda = previous
        .autoscaling
        .as_ref()
        .is_some_and(|a| a.mode == "keda");
    if mode != AutoscalingMode::Keda && was_keda {
        remove_keda_objects(ctx, &names).await;
    }
    if mode != AutoscalingMode::Builtin {
        ctx.remember(uid, |m| {
            m.autoscaler = None;
            m.last_lag_read = None;
            m.last_autoscaling = None;
        });
    }
    match mode {
        AutoscalingMode::None => (None, None),
        AutoscalingMode::Keda => {
            let (status, condition) = keda_step(ctx, pano, &names).await;
            (Some(status), Some(condition))
        }
        AutoscalingMode::Builtin => {
            let outcome = builtin_step(ctx, pano, secrets, uid, ingest, previous).await;
            ctx.remember(uid, |m| m.last_autoscaling = Some(outcome.clone()));
            (Some(outcome.0), Some(outcome.1))
        }
    }
}

/// One built-in autoscaling step (see [`crate::autoscale`]), at most once per poll interval;
/// between polls the previous status and condition stand.
async fn builtin_step(
    ctx: &Context,
    pano: &Panopticon,
    secrets: &Secrets,
    uid: &str,
    ingest: &Deployment,
    previous: &PanopticonStatus,
) -> (AutoscalingStatus, conditions::Observed) {
    let interval = autoscale::poll_interval(pano);
    // Between polls the last outcome stands. It is kept here, not read back from the
    // resource: the watched copy can predate the status the last poll wrote.
    let last = ctx.remember(uid, |m| {
        let due = m
            .last_lag_read
            .is_none_or(|at| at.elapsed() + Duration::from_millis(500) >= interval);
        (!due).then(|| m.last_autoscaling.clone()).flatten()
    });
    if let Some(last) = last {
        return last;
    }
    let previous_status = previous.autoscaling.clone().filter(|a| a.mode == "builtin");
    let current = ingest.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let lags = autoscale::read_lag(pano, secrets).await;
    ctx.remember(uid, |m| m.last_lag_read = Some(Instant::now()));
    let lags = match lags {
        Ok(lags) => lags,
        Err(f) => {
            ctx.warn(pano, &f, "Autoscale").await;
            let mut status = previous_status.unwrap_or_default();
            status.mode = "builtin".to_owned();
            status.current_replicas = Some(current);
            let condition = conditions::Observed::new(
                "AutoscalingReady",
                false,
                f.reason,
                format!("not scaling: {}", f.message),
            );
            return (status, condition);
        }
    };
    let policy = autoscale::policy::Policy::from_spec(&pano.spec.ingest.autoscaling);
    let now = ctx.epoch.elapsed();
    let decision = ctx.remember(uid, |m| {
        let autoscaler = m
            .autoscaler
            .get_or_insert_with(|| autoscale::policy::Autoscaler::new(policy.clone()));
        autoscaler.set_policy(policy.clone());
        autoscaler.decide(now, &lags, current)
    });
    let mut status = autoscale::status(&decision, current, previous_status.as_ref());
    let labels = ResourceLabels::of(pano);
    ctx.metrics
        .ingest_lag
        .get_or_create(&labels)
        .set(decision.total_lag);
    ctx.metrics
        .ingest_desired_replicas
        .get_or_create(&labels)
        .set(i64::from(decision.desired));
    if decision.desired != current {
        match autoscale::scale(
            &ctx.client,
            &names_ns(pano),
            &Names::new(pano, Component::Ingest).name,
            decision.desired,
        )
        .await
        {
            Ok(()) => {
                // Events with the same reason and action merge into one series (keeping the
                // first note), so the direction and the target are part of them.
                let reason = if decision.desired > current {
                    "ScaledUp"
                } else {
                    "ScaledDown"
                };
                let action = format!("ScaleTo{}", decision.desired);
                ctx.event(
                    pano,
                    EventType::Normal,
                    reason,
                    &action,
                    decision.reason.clone(),
                )
                .await;
                status.current_replicas = Some(decision.desired);
                status.last_scale_time = Some(now_rfc3339());
                status.last_scale_reason = Some(decision.reason.clone());
            }
            Err(e) => {
                ctx.metrics.failure("scale");
                let message = format!(
                    "cannot scale {}: {e}",
                    Names::new(pano, Component::Ingest).name
                );
                ctx.event(
                    pano,
                    EventType::Warning,
                    "ScaleFailed",
                    "Autoscale",
                    message.clone(),
                )
                .await;
                return (
                    status,
                    conditions::Observed::new("AutoscalingReady", false, "ScaleFailed", message),
                );
            }
        }
    }
    (
        status,
        conditions::Observed::new("AutoscalingReady", true, "LagRead", decision.reason),
    )
}

fn names_ns(pano: &Panopticon) -> String {
    pano.namespace().unwrap_or_default()
}

fn now_rfc3339() -> String {
    k8s_openapi::jiff::Timestamp::now().to_string()
}

fn keda_resource(kind: &str) -> kube::discovery::ApiResource {
    kube::discovery::ApiResource::from_gvk(&kube::core::GroupVersionKind::gvk(
        autoscale::keda::GROUP,
        autoscale::keda::VERSION,
        kind,
    ))
}

/// `mode: keda`: applies the ScaledObject (and TriggerAuthentication); a cluster without
/// KEDA's CRDs gets a condition saying so.
async fn keda_step(
    ctx: &Context,
    pano: &Panopticon,
    names: &Names,
) -> (AutoscalingStatus, conditions::Observed) {
    let status = AutoscalingStatus {
        mode: "keda".to_owned(),
        ..AutoscalingStatus::default()
    };
    let owner = serde_json::to_value(resources::owner(pano)).unwrap_or_default();
    let mut objects = vec![(
        "ScaledObject",
        autoscale::keda::scaled_object(pano, names, &owner),
    )];
    if let Some(auth) = autoscale::keda::trigger_authentication(pano, names, &owner) {
        objects.insert(0, ("TriggerAuthentication", auth));
    }
    for (kind, object) in objects {
        let api: Api<kube::api::DynamicObject> =
            Api::namespaced_with(ctx.client.clone(), &names.namespace, &keda_resource(kind));
        let result = api
            .patch(
                &names.name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&object),
            )
            .await;
        match result {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {
                let message = format!(
                    "{}/{} {kind} is not served by this cluster: install KEDA (https://keda.sh), or set spec.ingest.autoscaling.mode to builtin",
                    autoscale::keda::GROUP,
                    autoscale::keda::VERSION
                );
                ctx.event(
                    pano,
                    EventType::Warning,
                    "KedaNotInstalled",
                    "Autoscale",
                    message.clone(),
                )
                .await;
                return (
                    status,
                    conditions::Observed::new(
                        "AutoscalingReady",
                        false,
                        "KedaNotInstalled",
                        message,
                    ),
                );
            }
            Err(e) => {
                ctx.metrics.failure("keda_apply");
                let message = format!("cannot apply {kind} {}: {e}", names.name);
                return (
                    status,
                    conditions::Observed::new(
                        "AutoscalingReady",
                        false,
                        "KedaApplyFailed",
                        message,
                    ),
                );
            }
        }
    }
    (
        status,
        conditions::Observed::new(
            "AutoscalingReady",
            true,
            "ScaledObjectApplied",
            format!(
                "KEDA scales {} through ScaledObject {}",
                names.name, names.name
            ),
        ),
    )
}

/// Leaving `mode: keda`: the ScaledObject must go, or KEDA keeps scaling.
async fn remove_keda_objects(ctx: &Context, names: &Names) {
    for kind in ["ScaledObject", "TriggerAuthentication"] {
        let api: Api<kube::api::DynamicObject> =
            Api::namespaced_with(ctx.client.clone(), &names.namespace, &keda_resource(kind));
        match api.delete(&names.name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => {
                tracing::warn!(error = %e, kind, name = %names.name, "cannot delete a KEDA object")
            }
        }
    }
}

fn false_types(status: &PanopticonStatus) -> Vec<String> {
    status
        .conditions
        .iter()
        .filter(|c| c.status == "False")
        .map(|c| c.type_.clone())
        .collect()
}

fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::now())
}

/// Provisions Elasticsearch and Kafka, with Events for what changed or failed.
async fn provision_external(
    ctx: &Context,
    pano: &Panopticon,
    secrets: &Secrets,
    uid: &str,
    generation: Option<i64>,
) -> (Area, Area) {
    let (es, kafka) = tokio::join!(
        provision::elasticsearch(&pano.spec, secrets),
        provision::kafka(&pano.spec, secrets)
    );
    let es_area = match es {
        Ok(report) => {
            let detected = ElasticsearchStatus {
                flavour: format!("{:?}", report.flavour),
                version: report.version.clone(),
            };
            let gap = provision::retention_gap(&report);
            if !report.changed.is_empty() {
                ctx.event(
                    pano,
                    EventType::Normal,
                    "ElasticsearchProvisioned",
                    "Provision",
                    report.changed.join("; "),
                )
                .await;
            }
            if let Some(why) = &gap
                && ctx.remember(uid, |m| m.retention_gap.is_none())
            {
                ctx.event(
                    pano,
                    EventType::Warning,
                    "RetentionNotEnforced",
                    "Provision",
                    why.clone(),
                )
                .await;
            }
            let message = format!(
                "{} {}: index templates, lifecycle and data streams {}, {}, {} in place",
                detected.flavour,
                detected.version,
                pano.spec.elasticsearch.streams.logs.name,
                pano.spec.elasticsearch.streams.traces.name,
                pano.spec.elasticsearch.streams.metrics.name
            );
            ctx.remember(uid, |m| {
                m.elasticsearch = Some(detected);
                m.retention_gap = gap;
            });
            Area::Ready { message }
        }
        Err(f) => {
            ctx.warn(pano, &f, "ProvisionElasticsearch").await;
            Area::Failed {
                reason: f.reason.to_owned(),
                message: f.message,
            }
        }
    };
    let kafka_area = match kafka {
        Ok(report) => {
            let mut changes = Vec::new();
            if !report.created.is_empty() {
                changes.push(format!("created topics {}", report.created.join(", ")));
            }
            for (topic, from, to) in &report.partitions_raised {
                changes.push(format!("raised partitions of {topic} from {from} to {to}"));
            }
            if !report.retention_updated.is_empty() {
                changes.push(format!(
                    "updated retention of {}",
                    report.retention_updated.join(", ")
                ));
            }
            if !changes.is_empty() {
                ctx.event(
                    pano,
                    EventType::Normal,
                    "TopicsReconciled",
                    "ProvisionKafka",
                    changes.join("; "),
                )
                .await;
            }
            for (topic, actual, asked) in &report.more_partitions_than_asked {
                ctx.event(
                    pano,
                    EventType::Warning,
                    "MorePartitionsThanAsked",
                    "ProvisionKafka",
                    format!("{topic} has {actual} partitions, more than the {asked} asked; Kafka cannot remove partitions"),
                )
                .await;
            }
            let summary: Vec<String> = report
                .partitions
                .iter()
                .map(|(t, p)| format!("{t} ({p} partitions)"))
                .collect();
            Area::Ready {
                message: format!("topics ready: {}", summary.join(", ")),
            }
        }
        Err(f) => {
            ctx.warn(pano, &f, "ProvisionKafka").await;
            Area::Failed {
                reason: f.reason.to_owned(),
                message: f.message,
            }
        }
    };
    if matches!(es_area, Area::Ready { .. }) && matches!(kafka_area, Area::Ready { .. }) {
        if let Some(g) = generation {
            let done = Provisioned {
                generation: g,
                at: Instant::now(),
                elasticsearch: es_area.clone(),
                kafka: kafka_area.clone(),
            };
            ctx.remember(uid, |m| m.provisioned = Some(done));
        }
    } else {
        ctx.remember(uid, |m| m.provisioned = None);
    }
    (es_area, kafka_area)
}

/// Applies one component's children; returns its Deployment as the API server has it.
async fn apply_component(
    ctx: &Context,
    pano: &Panopticon,
    component: Component,
    names: &Names,
    owner: &k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference,
    rendered: &Rendered,
    seen_before: bool,
) -> Result<Deployment, Error> {
    let client = &ctx.client;
    let ns = &names.namespace;
    ssa(
        client,
        ns,
        &resources::service_account(names, owner, component),
    )
    .await?;
    if component == Component::Rollup {
        let (role, binding) = resources::rollup_lease_rbac(names, owner);
        ssa(client, ns, &role).await?;
        ssa(client, ns, &binding).await?;
    }
    ssa(client, ns, &resources::config_map(names, owner, rendered)).await?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let before = deployments.get_opt(&names.name).await?;
    let desired = resources::deployment(pano, component, names, owner, rendered);
    // Handing replicas to an autoscaler: our apply owned `spec.replicas`, and leaving it out
    // would remove the field, which the API server defaults to 1. The autoscaler's manager
    // first co-owns it at the current count, so it stays.
    if let Some(live) = &before
        && resources::declared_replicas(pano, component).is_none()
        && autoscale::applies_replicas(live, FIELD_MANAGER)
    {
        let current = live.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        autoscale::take_over_replicas(client, ns, &names.name, current).await?;
    }
    let applied = ssa(client, ns, &desired).await?;
    match before {
        None if seen_before => {
            ctx.event(
                pano,
                EventType::Normal,
                "ChildRestored",
                "Apply",
                format!(
                    "Deployment {} was missing and has been recreated",
                    names.name
                ),
            )
            .await;
        }
        Some(old) => {
            let hash = |d: &Deployment| {
                d.spec
                    .as_ref()
                    .and_then(|s| s.template.metadata.as_ref())
                    .and_then(|m| m.annotations.as_ref())
                    .and_then(|a| a.get(CONFIG_HASH_ANNOTATION).cloned())
            };
            let (old_hash, new_hash) = (hash(&old), hash(&applied));
            if old_hash.is_some() && old_hash != new_hash {
                ctx.event(
                    pano,
                    EventType::Normal,
                    "ConfigChanged",
                    "Apply",
                    format!(
                        "{} configuration changed ({} -> {}): rolling its pods",
                        component.as_str(),
                        old_hash.unwrap_or_default(),
                        new_hash.unwrap_or_default()
                    ),
                )
                .await;
            }
        }
        None => {}
    }
    if let Some(service) =
        resources::service(component, service_spec(pano, component), names, owner)
    {
        ssa(client, ns, &service).await?;
    }
    let budgets: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), ns);
    match resources::pod_disruption_budget(names, owner, resources::max_replicas(pano, component)) {
        Some(pdb) => {
            ssa(client, ns, &pdb).await?;
        }
        None => match budgets.delete(&names.name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        },
    }
    Ok(applied)
}

fn service_spec(pano: &Panopticon, component: Component) -> &crate::crd::ServiceSpec {
    match component {
        Component::Alert => &pano.spec.alert.service,
        _ => &pano.spec.query.service,
    }
}

/// Server-side apply under [`FIELD_MANAGER`], forcing ownership of the fields we set.
async fn ssa<K>(client: &Client, ns: &str, object: &K) -> Result<K, Error>
where
    K: Resource<Scope = NamespaceResourceScope>
        + Serialize
        + DeserializeOwned
        + Clone
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    let name = object.meta().name.clone().unwrap_or_default();
    Ok(api
        .patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(object),
        )
        .await?)
}

fn component_status(d: &Deployment) -> ComponentStatus {
    let desired = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let status = d.status.clone().unwrap_or_default();
    // Counts describe the new template only once the Deployment controller has seen it.
    let current =
        status.observed_generation.is_some() && status.observed_generation == d.metadata.generation;
    let ready = status.ready_replicas.unwrap_or(0);
    let updated = if current {
        status.updated_replicas.unwrap_or(0)
    } else {
        0
    };
    // Old pods still terminating or surplus replicas count as not yet rolled out.
    let total = status.replicas.unwrap_or(0);
    ComponentStatus {
        desired_replicas: desired,
        ready_replicas: ready,
        updated_replicas: if total > desired {
            updated.min(desired - 1).max(0)
        } else {
            updated
        },
        replicas: format!("{ready}/{desired}"),
    }
}

/// For a reconcile that stops before the children (paused, invalid spec): the previous status
/// with `observed` merged into its conditions, for the current generation; written and returned.
async fn write_conditions_only(
    ctx: &Context,
    pano: &Panopticon,
    observed: &[conditions::Observed],
) -> Result<PanopticonStatus, Error> {
    let previous = pano.status.clone().unwrap_or_default();
    let generation = pano.metadata.generation;
    let status = PanopticonStatus {
        conditions: conditions::merge(&previous.conditions, observed, generation, &now()),
        observed_generation: generation,
        ..previous
    };
    write_status(ctx, pano, &status).await?;
    Ok(status)
}

async fn write_status(
    ctx: &Context,
    pano: &Panopticon,
    status: &PanopticonStatus,
) -> Result<(), Error> {
    let api: Api<Panopticon> =
        Api::namespaced(ctx.client.clone(), &pano.namespace().unwrap_or_default());
    let patch = json!({
        "apiVersion": "panopticon.io/v1alpha1",
        "kind": "Panopticon",
        "status": status,
    });
    api.patch_status(
        &pano.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(())
}

/// deletionPolicy Delete: removes the external state, then lets the finalizer go.
async fn cleanup(pano: Arc<Panopticon>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = pano.namespace().unwrap_or_default();
    let secrets = Secrets::new(ctx.client.clone(), &ns);
    if pano.spec.elasticsearch.deletion_policy == DeletionPolicy::Delete {
        let outcome = provision::remove_elasticsearch(&pano.spec, &secrets).await;
        report_cleanup(&ctx, &pano, "ElasticsearchDeleted", outcome).await?;
    }
    if pano.spec.kafka.deletion_policy == DeletionPolicy::Delete {
        let outcome = provision::remove_topics(&pano.spec, &secrets)
            .await
            .map(|topics| vec![format!("deleted topics {}", topics.join(", "))]);
        report_cleanup(&ctx, &pano, "TopicsDeleted", outcome).await?;
    }
    ctx.forget(&pano.uid().unwrap_or_default());
    Ok(Action::await_change())
}

/// An Event for one cleanup step; a failure keeps the finalizer (the deletion waits).
async fn report_cleanup(
    ctx: &Context,
    pano: &Panopticon,
    reason: &str,
    outcome: Result<Vec<String>, provision::Failure>,
) -> Result<(), Error> {
    match outcome {
        Ok(done) => {
            let note = format!("deletionPolicy Delete: {}", done.join("; "));
            ctx.event(pano, EventType::Normal, reason, "Cleanup", note)
                .await;
            Ok(())
        }
        Err(f) => {
            ctx.metrics.failure(f.reason);
            let note = format!("deletion waits: {}", f.message);
            ctx.event(pano, EventType::Warning, f.reason, "Cleanup", note)
                .await;
            Err(Error::Cleanup(f.message))
        }
    }
}

/// Failed reconciles are retried with backoff; the failure is counted by reason.
pub fn error_policy(pano: Arc<Panopticon>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.failure(error.metric_label());
    tracing::warn!(
        namespace = %pano.namespace().unwrap_or_default(),
        name = %pano.name_any(),
        error = %error,
        "reconcile failed"
    );
    let failures = ctx.remember(&pano.uid().unwrap_or_default(), |m| {
        m.failures = m.failures.saturating_add(1);
        m.failures
    });
    Action::requeue(backoff(failures - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        assert!(backoff(0) >= Duration::from_secs(5) && backoff(0) < Duration::from_secs(6));
        assert!(backoff(1) >= Duration::from_secs(10));
        assert!(backoff(20) >= Duration::from_secs(300) && backoff(20) < Duration::from_secs(331));
    }
}
