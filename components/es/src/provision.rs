//! Provisioning of Elasticsearch/OpenSearch for one `Panopticon` resource: the index templates,
//! lifecycle policies and data streams the data path writes into, made to match a
//! [`ProvisionPlan`] ([`provision`]), and removed for `deletionPolicy: Delete` ([`remove`]).
//! The operator calls this; standalone components use [`crate::bootstrap`] instead.
//!
//! # Contract
//! - **Idempotent and quiet.** Every object is read first and written only when it differs from
//!   the desired one, so [`ProvisionReport::changed`] lists exactly what was written, and is
//!   empty when the cluster already matched (the operator emits an Event only then). Each
//!   desired body carries the SHA-256 of its canonical JSON: `_meta.hash` of index templates and
//!   ILM policies, a `[panopticon hash …]` marker ending ISM policy descriptions. The cluster
//!   normalises what it stores (settings become nested strings, defaults appear), so the hashes
//!   are compared, not the bodies. An edit by hand that keeps the hash goes unnoticed; removing
//!   the object or its hash makes the next run write it again.
//! - **Lifecycle by flavour** (one policy per stream, id `<stream>-lifecycle`):
//!   - Elasticsearch, ILM: data streams roll over in the hot phase at
//!     `max_primary_shard_size` or `max_age`, and are deleted in the delete phase at
//!     `min_age` = retention (counted from rollover). The rollup indices (one plain index per
//!     day, not a data stream) have a delete phase only (counted from index creation). Templates
//!     name the policy in `index.lifecycle.name`.
//!   - OpenSearch, ISM: states `hot` → `delete`, with the transition at `min_index_age` =
//!     retention; the data streams' hot state rolls over (`min_primary_shard_size`,
//!     `min_index_age`). An `ism_template` (priority 100) attaches the policy to new indices:
//!     it matches the data stream's name (ISM looks a backing index up by its data stream) or the
//!     rollup index patterns. Updates carry `if_seq_no`/`if_primary_term` of the read.
//!   - No lifecycle support (OpenSearch without the ISM plugin, Elasticsearch without ILM):
//!     [`Lifecycle::Unavailable`] with the reason. Templates and data streams are still
//!     provisioned; retention is not enforced. Not an error.
//! - **Existing data streams move to the current mapping.** A data stream whose write index maps
//!   `labels` otherwise than the template is rolled over, so new documents get the current
//!   mapping; older backing indices keep theirs until retention deletes them.
//! - **Existing indices follow changes.** When a template is written, its dynamic settings
//!   (`index.number_of_replicas`, `index.lifecycle.name`) are applied to the indices that already
//!   exist under it. When an ISM policy is written, it is added to the existing indices that have
//!   no policy, and the ones already managed are switched to it (`change_policy`: ISM keeps a
//!   copy of the policy per index otherwise). ILM applies policy updates by itself.
//! - **Errors** are [`EsError`]s with the engine's status and body. Nothing is retried here: the
//!   operator requeues.
//!
//! Order: lifecycle policies, then templates (which name the policies), then data streams
//! (whose first backing index gets both). [`remove`] goes the other way: data streams and rollup
//! indices, templates, policies; whatever is already absent counts as removed.

use std::fmt::Write as _;

use elasticsearch::http::{Method, StatusCode};
use panopticon_model::config::StreamNames;
use panopticon_model::rollup::{RollupIndices, SeriesKind};
use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};

use crate::bootstrap::{roll_over_stale_labels, rollup_template_name};
use crate::client::{EsClient, EsError, Flavour, truncate};
use crate::templates::{self, StreamKind};

/// `_meta.managed_by` of everything Panopticon writes.
pub const MANAGED_BY: &str = "panopticon";

/// Priority of Panopticon's ISM templates among the cluster's.
const ISM_TEMPLATE_PRIORITY: u32 = 100;

/// Most index names put in one request path.
const NAMES_PER_REQUEST: usize = 100;

/// What one Panopticon resource asks of the cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct ProvisionPlan {
    /// The data streams, the rollup base name and the template names.
    pub streams: StreamNames,
    /// How long logs are kept, as an Elasticsearch time unit (`14d`).
    pub logs_retention: String,
    /// How long spans are kept (`7d`).
    pub traces_retention: String,
    /// How long rollup metrics are kept (`90d`).
    pub metrics_retention: String,
    /// Rollover of the data streams when a primary shard reaches this size (`50gb`).
    pub rollover_max_primary_shard_size: String,
    /// Rollover of the data streams when the write index reaches this age (`1d`).
    pub rollover_max_age: String,
    /// `index.number_of_replicas` of every index.
    pub replicas: u32,
}

/// How retention is enforced on this cluster.
#[derive(Debug, Clone, PartialEq)]
pub enum Lifecycle {
    /// Elasticsearch index lifecycle management.
    Ilm,
    /// OpenSearch Index State Management.
    Ism,
    /// Neither is available: retention is not enforced, and `reason` says what to do.
    Unavailable { reason: String },
}

/// What [`provision`] found and did.
#[derive(Debug, Clone, PartialEq)]
pub struct ProvisionReport {
    pub flavour: Flavour,
    /// The engine's version, e.g. `2.19.3`.
    pub version: String,
    pub lifecycle: Lifecycle,
    /// Human-readable actions actually taken this time, e.g. "created data stream logs-apm",
    /// "updated index template traces-apm-template", "created ISM policy logs-apm-lifecycle".
    /// Empty when everything already matched (nothing was written).
    pub changed: Vec<String>,
}

/// Id of the lifecycle policy of a data stream or of the rollup indices (`<stream>-lifecycle`).
pub fn lifecycle_policy_id(stream: &str) -> String {
    format!("{stream}-lifecycle")
}

/// Makes the cluster hold the templates, lifecycle policies and data streams of `plan`, writing
/// only what differs (see the module docs).
pub async fn provision(
    client: &EsClient,
    plan: &ProvisionPlan,
) -> Result<ProvisionReport, EsError> {
    let info = client.info().await?;
    let lifecycle = detect_lifecycle(client, info.flavour, plan).await?;
    if let Lifecycle::Unavailable { reason } = &lifecycle {
        tracing::warn!(reason, "lifecycle management unavailable");
    }
    let desired = desired_state(plan, info.flavour, &lifecycle);
    let mut changed = Vec::new();
    for policy in &desired.policies {
        match lifecycle {
            Lifecycle::Ilm => ensure_ilm_policy(client, policy, &mut changed).await?,
            Lifecycle::Ism => ensure_ism_policy(client, policy, &mut changed).await?,
            Lifecycle::Unavailable { .. } => {}
        }
    }
    for template in &desired.templates {
        ensure_template(client, template, &mut changed).await?;
    }
    for (stream, template) in &desired.data_streams {
        ensure_data_stream(client, stream, template, info.flavour, &mut changed).await?;
    }
    Ok(ProvisionReport {
        flavour: info.flavour,
        version: info.version,
        lifecycle,
        changed,
    })
}

/// `deletionPolicy: Delete`: removes the data streams (with their documents), the rollup
/// indices, the index templates and the lifecycle policies of `plan`. Absent things are
/// success. Returns the actions taken (empty when nothing was left).
pub async fn remove(client: &EsClient, plan: &ProvisionPlan) -> Result<Vec<String>, EsError> {
    let info = client.info().await?;
    let names = &plan.streams;
    let mut done = Vec::new();
    for stream in [&names.logs, &names.spans] {
        let path = format!("/_data_stream/{stream}");
        // OpenSearch acknowledges deleting a data stream that does not exist: look first, so
        // the report stays honest.
        if get_optional(client, &path).await?.is_some() && delete_optional(client, &path).await? {
            done.push(format!("deleted data stream {stream}"));
        }
    }
    let rollup = existing_indices(client, &rollup_target(names)).await?;
    for chunk in rollup.chunks(NAMES_PER_REQUEST) {
        delete_optional(client, &format!("/{}", chunk.join(","))).await?;
    }
    if !rollup.is_empty() {
        done.push(format!(
            "deleted {} rollup indices of {}",
            rollup.len(),
            names.metrics
        ));
    }
    for template in template_names(names) {
        if delete_optional(client, &format!("/_index_template/{template}")).await? {
            done.push(format!("deleted index template {template}"));
        }
    }
    for stream in [&names.logs, &names.spans, &names.metrics] {
        let id = lifecycle_policy_id(stream);
        let (path, kind) = match info.flavour {
            Flavour::Elasticsearch => (format!("/_ilm/policy/{id}"), "ILM"),
            Flavour::OpenSearch => (format!("/_plugins/_ism/policies/{id}"), "ISM"),
        };
        let (status, body) = client.request(Method::Delete, &path, None).await?;
        if status.is_success() {
            done.push(format!("deleted {kind} policy {id}"));
        } else if !(status == StatusCode::NOT_FOUND || no_handler(status, &body)) {
            // No handler: no lifecycle support, so no policy either.
            return Err(status_error(Method::Delete, &path, status, &body));
        }
    }
    for action in &done {
        tracing::info!(action, "removed from Elasticsearch");
    }
    Ok(done)
}

// ---------------------------------------------------------------------------------------------
// Desired state: pure.

/// Where the existing indices of a template or policy are.
#[derive(Debug, Clone, PartialEq)]
enum Target {
    DataStream(String),
    /// The rollup indices: their index patterns.
    Patterns(Vec<String>),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::DataStream(name) => write!(f, "data stream {name}"),
            Target::Patterns(patterns) => f.write_str(&patterns.join(",")),
        }
    }
}

/// A lifecycle policy as it should be.
#[derive(Debug, Clone, PartialEq)]
struct PolicySpec {
    id: String,
    hash: String,
    /// The body to PUT, hash included.
    body: Value,
    target: Target,
}

/// An index template as it should be.
#[derive(Debug, Clone, PartialEq)]
struct TemplateSpec {
    name: String,
    hash: String,
    /// The body to PUT, hash included.
    body: Value,
    /// Its extra settings, also applied to existing indices when the template changes.
    settings: Map<String, Value>,
    target: Target,
}

/// Everything [`provision`] makes sure of, in order.
#[derive(Debug, Clone, PartialEq)]
struct DesiredState {
    /// Empty when lifecycle management is unavailable.
    policies: Vec<PolicySpec>,
    templates: Vec<TemplateSpec>,
    /// Each data stream, with the name of the index template that governs it.
    data_streams: Vec<(String, String)>,
}

/// Rollover conditions of the data streams.
struct Rollover<'a> {
    max_primary_shard_size: &'a str,
    max_age: &'a str,
}

fn desired_state(plan: &ProvisionPlan, flavour: Flavour, lifecycle: &Lifecycle) -> DesiredState {
    let names = &plan.streams;
    let rollover = Rollover {
        max_primary_shard_size: &plan.rollover_max_primary_shard_size,
        max_age: &plan.rollover_max_age,
    };
    let streams = [
        (&names.logs, &plan.logs_retention),
        (&names.spans, &plan.traces_retention),
    ];
    let mut policies = Vec::new();
    for (stream, retention) in streams {
        let target = Target::DataStream(stream.clone());
        policies.extend(policy_spec(
            lifecycle,
            stream,
            Some(&rollover),
            retention,
            target,
        ));
    }
    policies.extend(policy_spec(
        lifecycle,
        &names.metrics,
        None,
        &plan.metrics_retention,
        rollup_target(names),
    ));

    let mut templates = Vec::new();
    for (name, stream, properties) in [
        (
            &names.logs_template,
            &names.logs,
            StreamKind::Logs.properties(flavour),
        ),
        (
            &names.spans_template,
            &names.spans,
            StreamKind::Spans.properties(flavour),
        ),
    ] {
        let settings = template_settings(plan.replicas, lifecycle, stream);
        let body = templates::template_with_settings(stream, properties, &settings);
        let (hash, body) = stamp_meta(body, "");
        templates.push(TemplateSpec {
            name: name.clone(),
            hash,
            body,
            settings,
            target: Target::DataStream(stream.clone()),
        });
    }
    let indices = RollupIndices::new(&names.metrics);
    for kind in [SeriesKind::Service, SeriesKind::Endpoint] {
        let settings = template_settings(plan.replicas, lifecycle, &names.metrics);
        let body = templates::rollup_template_with_settings(
            &indices.pattern(kind),
            &indices.alias(kind),
            &settings,
        );
        let (hash, body) = stamp_meta(body, "");
        templates.push(TemplateSpec {
            name: rollup_template_name(names, kind),
            hash,
            body,
            settings,
            target: Target::Patterns(vec![indices.pattern(kind)]),
        });
    }
    DesiredState {
        policies,
        templates,
        data_streams: vec![
            (names.logs.clone(), names.logs_template.clone()),
            (names.spans.clone(), names.spans_template.clone()),
        ],
    }
}

fn rollup_target(names: &StreamNames) -> Target {
    let indices = RollupIndices::new(&names.metrics);
    Target::Patterns(vec![
        indices.pattern(SeriesKind::Service),
        indices.pattern(SeriesKind::Endpoint),
    ])
}

/// The four index template names of a plan.
fn template_names(names: &StreamNames) -> [String; 4] {
    [
        names.logs_template.clone(),
        names.spans_template.clone(),
        rollup_template_name(names, SeriesKind::Service),
        rollup_template_name(names, SeriesKind::Endpoint),
    ]
}

/// Settings Panopticon adds to a template: the replicas, and on Elasticsearch the ILM policy.
/// Data streams need no rollover alias.
fn template_settings(replicas: u32, lifecycle: &Lifecycle, stream: &str) -> Map<String, Value> {
    let mut settings = Map::new();
    settings.insert("index.number_of_replicas".to_owned(), json!(replicas));
    if *lifecycle == Lifecycle::Ilm {
        settings.insert(
            "index.lifecycle.name".to_owned(),
            json!(lifecycle_policy_id(stream)),
        );
    }
    settings
}

fn policy_spec(
    lifecycle: &Lifecycle,
    stream: &str,
    rollover: Option<&Rollover<'_>>,
    retention: &str,
    target: Target,
) -> Option<PolicySpec> {
    let (hash, body) = match lifecycle {
        Lifecycle::Ilm => stamp_meta(ilm_policy(rollover, retention), "/policy"),
        Lifecycle::Ism => {
            let patterns = match &target {
                Target::DataStream(name) => vec![name.clone()],
                Target::Patterns(patterns) => patterns.clone(),
            };
            let description = ism_description(stream, rollover, retention);
            stamp_ism(ism_policy(&description, rollover, retention, &patterns))
        }
        Lifecycle::Unavailable { .. } => return None,
    };
    Some(PolicySpec {
        id: lifecycle_policy_id(stream),
        hash,
        body,
        target,
    })
}

/// ILM policy body (without its hash): rollover in the hot phase when given, then delete.
fn ilm_policy(rollover: Option<&Rollover<'_>>, retention: &str) -> Value {
    let mut phases = Map::new();
    if let Some(r) = rollover {
        phases.insert(
            "hot".to_owned(),
            json!({
                "min_age": "0ms",
                "actions": {"rollover": {
                    "max_primary_shard_size": r.max_primary_shard_size,
                    "max_age": r.max_age
                }}
            }),
        );
    }
    phases.insert(
        "delete".to_owned(),
        json!({"min_age": retention, "actions": {"delete": {}}}),
    );
    json!({"policy": {"_meta": {"managed_by": MANAGED_BY}, "phases": phases}})
}

/// ISM policy body (without its hash): `hot` (rolling over when given) → `delete` at
/// `min_index_age` = retention, attached to new indices matching `patterns`.
fn ism_policy(
    description: &str,
    rollover: Option<&Rollover<'_>>,
    retention: &str,
    patterns: &[String],
) -> Value {
    let hot_actions = match rollover {
        Some(r) => json!([{"rollover": {
            "min_primary_shard_size": r.max_primary_shard_size,
            "min_index_age": r.max_age
        }}]),
        None => json!([]),
    };
    json!({"policy": {
        "description": description,
        "default_state": "hot",
        "states": [
            {
                "name": "hot",
                "actions": hot_actions,
                "transitions": [{"state_name": "delete", "conditions": {"min_index_age": retention}}]
            },
            {"name": "delete", "actions": [{"delete": {}}], "transitions": []}
        ],
        "ism_template": [{"index_patterns": patterns, "priority": ISM_TEMPLATE_PRIORITY}]
    }})
}

fn ism_description(stream: &str, rollover: Option<&Rollover<'_>>, retention: &str) -> String {
    match rollover {
        Some(r) => format!(
            "managed by {MANAGED_BY}: {stream} rolls over at {} per primary shard or {}, \
             indices are deleted {retention} after creation",
            r.max_primary_shard_size, r.max_age
        ),
        None => format!(
            "managed by {MANAGED_BY}: indices of {stream} are deleted {retention} after creation"
        ),
    }
}

const ISM_HASH_MARKER: &str = " [panopticon hash ";

/// Hashes an ISM policy body and appends the hash to its description.
fn stamp_ism(mut body: Value) -> (String, Value) {
    let hash = body_hash(&body);
    if let Some(description) = body
        .pointer_mut("/policy/description")
        .and_then(|d| d.as_str().map(str::to_owned))
    {
        body["policy"]["description"] = json!(format!("{description}{ISM_HASH_MARKER}{hash}]"));
    }
    (hash, body)
}

/// The hash an ISM policy description ends with, if any.
fn ism_hash(description: &str) -> Option<&str> {
    let start = description.rfind(ISM_HASH_MARKER)? + ISM_HASH_MARKER.len();
    description[start..].strip_suffix(']')
}

/// Hashes a body and records the hash in the `_meta` object at `pointer` (`""`: the root).
fn stamp_meta(mut body: Value, pointer: &str) -> (String, Value) {
    let hash = body_hash(&body);
    if let Some(object) = body.pointer_mut(pointer).and_then(Value::as_object_mut) {
        let meta = object
            .entry("_meta")
            .or_insert_with(|| json!({"managed_by": MANAGED_BY}));
        if let Some(meta) = meta.as_object_mut() {
            meta.insert("hash".to_owned(), json!(hash));
        }
    }
    (hash, body)
}

/// SHA-256 (hex) of the canonical JSON of `body`: object keys sorted, no whitespace, so the
/// hash does not depend on map ordering.
fn body_hash(body: &Value) -> String {
    let mut canonical = String::new();
    write_canonical(body, &mut canonical);
    Sha256::digest(canonical.as_bytes())
        .iter()
        .fold(String::with_capacity(64), |mut hex, byte| {
            write!(hex, "{byte:02x}").expect("writing to a String cannot fail");
            hex
        })
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(item, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// What to do with one object, given the hash it carries now (`None`: absent; `Some(None)`:
/// present without a hash).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision {
    Create,
    Update,
    Keep,
}

fn decide(current: Option<Option<&str>>, desired: &str) -> Decision {
    match current {
        None => Decision::Create,
        Some(Some(hash)) if hash == desired => Decision::Keep,
        Some(_) => Decision::Update,
    }
}

fn verb(decision: Decision) -> &'static str {
    match decision {
        Decision::Create => "created",
        Decision::Update | Decision::Keep => "updated",
    }
}

fn unavailable_reason(flavour: Flavour, names: &StreamNames) -> String {
    let streams = format!("{}, {} and {}", names.logs, names.spans, names.metrics);
    match flavour {
        Flavour::OpenSearch => format!(
            "the OpenSearch Index Management (ISM) plugin is not installed: retention of \
             {streams} is not enforced (install opensearch-index-management on the cluster, \
             or delete old indices by other means)"
        ),
        Flavour::Elasticsearch => format!(
            "Elasticsearch index lifecycle management (ILM) is not available on this cluster: \
             retention of {streams} is not enforced (use a distribution with ILM, or delete old \
             indices by other means)"
        ),
    }
}

/// Whether an answer says the endpoint does not exist (a plugin or feature is missing):
/// `400 {"error": "no handler found for uri [...]"}` (OpenSearch, Elasticsearch 7) or the same
/// reason inside an error object (Elasticsearch 8).
fn no_handler(status: StatusCode, body: &Value) -> bool {
    status == StatusCode::BAD_REQUEST && body.to_string().contains("no handler found for uri")
}

// ---------------------------------------------------------------------------------------------
// Talking to the cluster.

async fn detect_lifecycle(
    client: &EsClient,
    flavour: Flavour,
    plan: &ProvisionPlan,
) -> Result<Lifecycle, EsError> {
    let (path, available) = match flavour {
        Flavour::Elasticsearch => ("/_ilm/status", Lifecycle::Ilm),
        Flavour::OpenSearch => ("/_plugins/_ism/policies", Lifecycle::Ism),
    };
    let (status, body) = client.request(Method::Get, path, None).await?;
    if status.is_success() {
        if flavour == Flavour::Elasticsearch && body["operation_mode"] != "RUNNING" {
            tracing::warn!(
                mode = %body["operation_mode"],
                "ILM is not running: policies are in place but nothing rolls over or is \
                 deleted until POST /_ilm/start"
            );
        }
        Ok(available)
    } else if no_handler(status, &body) {
        Ok(Lifecycle::Unavailable {
            reason: unavailable_reason(flavour, &plan.streams),
        })
    } else {
        Err(status_error(Method::Get, path, status, &body))
    }
}

async fn ensure_ilm_policy(
    client: &EsClient,
    policy: &PolicySpec,
    changed: &mut Vec<String>,
) -> Result<(), EsError> {
    let path = format!("/_ilm/policy/{}", policy.id);
    let current = get_optional(client, &path).await?;
    let current_hash = current
        .as_ref()
        .map(|c| c[&policy.id]["policy"]["_meta"]["hash"].as_str());
    let decision = decide(current_hash, &policy.hash);
    if decision == Decision::Keep {
        return Ok(());
    }
    client
        .request_ok(Method::Put, &path, Some(&policy.body))
        .await?;
    record(
        changed,
        format!("{} ILM policy {}", verb(decision), policy.id),
    );
    Ok(())
}

async fn ensure_ism_policy(
    client: &EsClient,
    policy: &PolicySpec,
    changed: &mut Vec<String>,
) -> Result<(), EsError> {
    let path = format!("/_plugins/_ism/policies/{}", policy.id);
    let current = get_optional(client, &path).await?;
    let current_hash = current
        .as_ref()
        .map(|c| c["policy"]["description"].as_str().and_then(ism_hash));
    let decision = decide(current_hash, &policy.hash);
    let put_path = match (decision, &current) {
        (Decision::Keep, _) => return Ok(()),
        (Decision::Update, Some(c)) => {
            let (Some(seq_no), Some(primary_term)) =
                (c["_seq_no"].as_i64(), c["_primary_term"].as_i64())
            else {
                return Err(EsError::Decode {
                    what: format!("GET {path}"),
                    detail: format!(
                        "no _seq_no/_primary_term in {}",
                        truncate(&c.to_string(), 300)
                    ),
                });
            };
            format!("{path}?if_seq_no={seq_no}&if_primary_term={primary_term}")
        }
        _ => path.clone(),
    };
    client
        .request_ok(Method::Put, &put_path, Some(&policy.body))
        .await?;
    record(
        changed,
        format!("{} ISM policy {}", verb(decision), policy.id),
    );
    attach_ism_policy(client, policy, changed).await
}

/// Puts the indices that exist already under `policy` (an ISM template only catches new ones):
/// adds it where there is no policy, switches to it where there is one.
async fn attach_ism_policy(
    client: &EsClient,
    policy: &PolicySpec,
    changed: &mut Vec<String>,
) -> Result<(), EsError> {
    let indices = existing_indices(client, &policy.target).await?;
    let body = json!({"policy_id": policy.id});
    let (mut added, mut switched) = (0, 0);
    for chunk in indices.chunks(NAMES_PER_REQUEST) {
        let path = format!("/_plugins/_ism/add/{}", chunk.join(","));
        let answer = client.request_ok(Method::Post, &path, Some(&body)).await?;
        added += answer["updated_indices"].as_u64().unwrap_or(0);
        let mut managed = Vec::new();
        for failed in answer["failed_indices"].as_array().into_iter().flatten() {
            let index = failed["index_name"].as_str().unwrap_or_default();
            let reason = failed["reason"].as_str().unwrap_or_default();
            if reason.contains("already has a policy") {
                managed.push(index.to_owned());
            } else {
                tracing::warn!(
                    index,
                    reason,
                    policy = policy.id,
                    "cannot add the ISM policy"
                );
            }
        }
        if managed.is_empty() {
            continue;
        }
        let path = format!("/_plugins/_ism/change_policy/{}", managed.join(","));
        let answer = client.request_ok(Method::Post, &path, Some(&body)).await?;
        switched += answer["updated_indices"].as_u64().unwrap_or(0);
        for failed in answer["failed_indices"].as_array().into_iter().flatten() {
            tracing::warn!(
                index = failed["index_name"].as_str().unwrap_or_default(),
                reason = failed["reason"].as_str().unwrap_or_default(),
                policy = policy.id,
                "cannot switch the index to the ISM policy"
            );
        }
    }
    if added > 0 {
        record(
            changed,
            format!(
                "attached ISM policy {} to {added} existing indices of {}",
                policy.id, policy.target
            ),
        );
    }
    if switched > 0 {
        record(
            changed,
            format!(
                "switched {switched} existing indices of {} to ISM policy {}",
                policy.target, policy.id
            ),
        );
    }
    Ok(())
}

async fn ensure_template(
    client: &EsClient,
    template: &TemplateSpec,
    changed: &mut Vec<String>,
) -> Result<(), EsError> {
    let path = format!("/_index_template/{}", template.name);
    let current = get_optional(client, &path).await?;
    let current_hash = current
        .as_ref()
        .map(|c| c["index_templates"][0]["index_template"]["_meta"]["hash"].as_str());
    let decision = decide(current_hash, &template.hash);
    if decision == Decision::Keep {
        return Ok(());
    }
    client
        .request_ok(Method::Put, &path, Some(&template.body))
        .await?;
    record(
        changed,
        format!("{} index template {}", verb(decision), template.name),
    );
    // A template only shapes new indices: bring the existing ones to its settings too.
    let indices = existing_indices(client, &template.target).await?;
    let settings = Value::Object(template.settings.clone());
    for chunk in indices.chunks(NAMES_PER_REQUEST) {
        let path = format!("/{}/_settings", chunk.join(","));
        client
            .request_ok(Method::Put, &path, Some(&settings))
            .await?;
    }
    if !indices.is_empty() {
        record(
            changed,
            format!(
                "applied index settings to {} existing indices of {}",
                indices.len(),
                template.target
            ),
        );
    }
    Ok(())
}

/// Creates the data stream, or, when it exists, rolls it over if its write index predates the
/// template's `labels` mapping.
async fn ensure_data_stream(
    client: &EsClient,
    stream: &str,
    template: &str,
    flavour: Flavour,
    changed: &mut Vec<String>,
) -> Result<(), EsError> {
    let path = format!("/_data_stream/{stream}");
    if get_optional(client, &path).await?.is_some() {
        if let Some(old) = roll_over_stale_labels(client, stream, template, flavour).await? {
            record(
                changed,
                format!(
                    "rolled data stream {stream} over onto the current labels mapping \
                     (backing index {old} keeps the old one until retention deletes it)"
                ),
            );
        }
        return Ok(());
    }
    let (status, body) = client.request(Method::Put, &path, None).await?;
    if status.is_success() {
        record(changed, format!("created data stream {stream}"));
        Ok(())
    } else if body["error"]["type"] == "resource_already_exists_exception" {
        Ok(()) // created by someone else meanwhile: nothing written by us
    } else {
        Err(status_error(Method::Put, &path, status, &body))
    }
}

/// The names of the indices that exist under a target (backing indices of a data stream, or
/// indices matching the patterns).
async fn existing_indices(client: &EsClient, target: &Target) -> Result<Vec<String>, EsError> {
    match target {
        Target::DataStream(name) => {
            let Some(answer) = get_optional(client, &format!("/_data_stream/{name}")).await? else {
                return Ok(Vec::new());
            };
            Ok(answer["data_streams"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|ds| ds["indices"].as_array().into_iter().flatten())
                .filter_map(|index| index["index_name"].as_str().map(str::to_owned))
                .collect())
        }
        Target::Patterns(patterns) => {
            let path = format!(
                "/_cat/indices/{}?format=json&h=index&expand_wildcards=all",
                patterns.join(",")
            );
            let answer = client.request_ok(Method::Get, &path, None).await?;
            let mut names: Vec<String> = answer
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|row| row["index"].as_str().map(str::to_owned))
                .collect();
            names.sort();
            Ok(names)
        }
    }
}

/// GET that treats 404 as absence.
async fn get_optional(client: &EsClient, path: &str) -> Result<Option<Value>, EsError> {
    let (status, body) = client.request(Method::Get, path, None).await?;
    if status == StatusCode::NOT_FOUND {
        Ok(None)
    } else if status.is_success() {
        Ok(Some(body))
    } else {
        Err(status_error(Method::Get, path, status, &body))
    }
}

/// DELETE that treats 404 as already done; `true` when something was deleted.
async fn delete_optional(client: &EsClient, path: &str) -> Result<bool, EsError> {
    let (status, body) = client.request(Method::Delete, path, None).await?;
    if status == StatusCode::NOT_FOUND {
        Ok(false)
    } else if status.is_success() {
        Ok(true)
    } else {
        Err(status_error(Method::Delete, path, status, &body))
    }
}

fn status_error(method: Method, path: &str, status: StatusCode, body: &Value) -> EsError {
    EsError::Status {
        what: format!("{method:?} {path}"),
        status: status.as_u16(),
        body: truncate(&body.to_string(), 2000),
    }
}

fn record(changed: &mut Vec<String>, action: String) {
    tracing::info!(action, "provisioned Elasticsearch");
    changed.push(action);
}

#[cfg(test)]
mod tests;
