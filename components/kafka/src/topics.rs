//! The topics Panopticon reads and writes.
//!
//! Two audiences:
//! - the components call [`ensure_topics`] at start-up: create what is missing, with the
//!   partitions and replication their configuration gives, and never fail because someone else
//!   created a topic first;
//! - the operator calls [`reconcile_topics`] with the topics the `Panopticon` resource declares
//!   (name, partitions, replication factor, retention) and [`delete_topics`] when its
//!   `deletionPolicy` is `Delete`.
//!
//! Reconciliation is three steps, so that the decisions can be tested without a broker:
//! 1. **observe** (IO): one metadata fetch (brokers, each planned topic's partition count and
//!    replication factor), then `DescribeConfigs` for the existing topics whose plan sets a
//!    retention;
//! 2. **plan** (pure, [`plan_actions`]): which topics to create, which to give more partitions,
//!    which configurations to alter, and what to report;
//! 3. **execute** (IO): `CreateTopics`, `CreatePartitions`, `AlterConfigs`, in that order.
//!
//! Every broker round trip is bounded: the metadata fetch by [`METADATA_TIMEOUT`], each admin
//! request by [`ADMIN_REQUEST_TIMEOUT`] (and a guard timer a little longer, in case librdkafka
//! never answers). An unreachable broker is therefore reported as
//! `cannot reach Kafka at <brokers>: …` after about ten seconds, instead of librdkafka retrying
//! forever.
//!
//! Partitions are only ever raised. A topic with more partitions than asked is left alone and
//! reported in [`TopicsReport::more_partitions_than_asked`]: lowering the count would need the
//! topic to be recreated, losing its data and the key → partition mapping.
//!
//! The replication factor is applied when a topic is created. Changing it on an existing topic
//! needs a partition reassignment, which this module does not do; a difference is logged as a
//! warning.
//!
//! Retention uses the legacy (non-incremental) `AlterConfigs`, the only one rdkafka 0.39 wraps.
//! It *replaces* the topic's whole set of dynamic settings: a setting left out of the request is
//! reset to the broker default. So before altering, the topic's settings are read with
//! `DescribeConfigs`, and every setting whose source is the topic itself
//! ([`ConfigSource::DynamicTopic`], e.g. a `cleanup.policy` or `max.message.bytes` an
//! administrator set) is sent again unchanged next to the new `retention.ms`. A sensitive setting
//! (whose value the broker does not reveal) cannot be resent, so the alteration is refused with
//! [`TopicError::UnpreservableConfig`] rather than silently erasing it. Describing and altering
//! are two requests: a change another client makes between them is overwritten.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::future::Future;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, ConfigEntry, ConfigSource, NewPartitions, NewTopic,
    OwnedResourceSpecifier, ResourceSpecifier, TopicReplication,
};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::producer::{BaseProducer, DeliveryResult, Producer as _, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;

/// How long the metadata fetch that opens every reconciliation (and tells whether Kafka is
/// reachable at all) may take.
pub const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the broker may take to complete a topic creation, partition increase or deletion
/// before answering (the admin "operation timeout").
pub const ADMIN_OPERATION_TIMEOUT: Duration = Duration::from_secs(10);

/// How long one admin request may take in total: finding a broker, sending, the operation
/// itself and the answer. A little longer than [`ADMIN_OPERATION_TIMEOUT`], so that a slow but
/// successful operation is not cut off by the request timeout.
pub const ADMIN_REQUEST_TIMEOUT: Duration = Duration::from_secs(12);

/// Extra time, beyond [`ADMIN_REQUEST_TIMEOUT`], after which we stop waiting for librdkafka to
/// report the outcome of a request at all.
const GUARD_SLACK: Duration = Duration::from_secs(3);

/// The topic setting that holds the retention.
const RETENTION_MS: &str = "retention.ms";

/// Kafka's limit on topic name length.
const MAX_TOPIC_NAME_LEN: usize = 249;

type Admin = AdminClient<DefaultClientContext>;

/// The context of the client that fetches metadata: remembers the last error librdkafka
/// reported in the background (a refused connection, a failed SASL login, a TLS handshake
/// failure). A failed metadata fetch says only "broker transport failure"; this says why.
///
/// The probe is a `BaseProducer` (that never produces) rather than the admin client because
/// rdkafka's `AdminClient` never polls the main queue, where these errors arrive. A consumer
/// with a `group.id` would not do either: rdkafka hands it these errors through `poll` as bare
/// codes, without librdkafka's reason. So the `lag` module probes with this context too.
#[derive(Default)]
pub(crate) struct ProbeContext {
    last_error: Mutex<Option<String>>,
}

impl ProbeContext {
    pub(crate) fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Why [`probe_metadata`] got no metadata.
pub(crate) enum ProbeFailure {
    /// The client could not be created from the configuration.
    Client(KafkaError),
    /// No broker answered in time, or authentication failed.
    Unreachable(Unreachable),
}

/// No broker answered a metadata fetch in time, or authentication failed: the error of
/// [`TopicError::Unreachable`] and [`crate::LagError::Unreachable`].
#[derive(Debug, thiserror::Error)]
#[error("cannot reach Kafka at {brokers}: {}", unreachable_cause(.cause, .detail.as_deref()))]
pub struct Unreachable {
    /// The configured `bootstrap.servers`.
    pub brokers: String,
    /// What the metadata fetch returned.
    pub cause: KafkaError,
    /// The last error librdkafka reported while trying (e.g. "SASL authentication error:
    /// …", "Connect to ipv4#127.0.0.1:1 failed: Connection refused …"), if any.
    pub detail: Option<Box<str>>,
}

impl Unreachable {
    /// A blocking Kafka call that never ran because the runtime is shutting down.
    pub(crate) fn shutting_down(brokers: String) -> Self {
        Self {
            brokers,
            cause: KafkaError::Canceled,
            detail: Some("the runtime is shutting down".into()),
        }
    }
}

/// The cluster's metadata (all topics: asking a producer for named topics could make the
/// broker create them), fetched through a [`ProbeContext`] so that a failure carries
/// librdkafka's reason. Blocks up to `timeout`.
pub(crate) fn probe_metadata(
    config: &ClientConfig,
    timeout: Duration,
) -> Result<rdkafka::metadata::Metadata, ProbeFailure> {
    let probe: BaseProducer<ProbeContext> = config
        .create_with_context(ProbeContext::default())
        .map_err(ProbeFailure::Client)?;
    probe
        .client()
        .fetch_metadata(None, timeout)
        .map_err(|cause| {
            // Deliver the background errors queued meanwhile to `ProbeContext::error`.
            probe.poll(Duration::from_millis(100));
            ProbeFailure::Unreachable(Unreachable {
                brokers: bootstrap_servers(config),
                cause,
                detail: probe.context().last_error().map(String::into_boxed_str),
            })
        })
}

impl From<ProbeFailure> for TopicError {
    fn from(failure: ProbeFailure) -> Self {
        match failure {
            ProbeFailure::Client(cause) => TopicError::Client { cause },
            ProbeFailure::Unreachable(unreachable) => TopicError::Unreachable(unreachable),
        }
    }
}

impl ProducerContext for ProbeContext {
    type DeliveryOpaque = ();

    fn delivery(&self, _: &DeliveryResult<'_>, _: Self::DeliveryOpaque) {}
}

impl ClientContext for ProbeContext {
    fn error(&self, error: KafkaError, reason: &str) {
        // Debug only: the caller gets the cause in the returned error.
        tracing::debug!(%error, reason, "librdkafka error");
        // "1/1 brokers are down" says less than the error that brought them down.
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown) {
            return;
        }
        *self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(reason.to_owned());
    }
}

/// Creates whichever of `topics` (name, partition count) do not exist, with
/// `replication_factor` replicas of each partition (`None`: the brokers'
/// `default.replication.factor`). An existing topic is left as it is. Idempotent and safe when
/// several replicas race (an existing topic is success). Returns the topics it created. Not
/// being allowed to create topics is reported as a warning, not an error: an administrator may
/// have created them.
pub async fn ensure_topics(
    config: &ClientConfig,
    topics: &[(&str, i32)],
    replication_factor: Option<i32>,
) -> Result<Vec<String>, String> {
    let admin: AdminClient<DefaultClientContext> = config
        .create()
        .map_err(|e| format!("cannot create a Kafka admin client: {e}"))?;
    let replication = replication_factor.unwrap_or(-1);
    let names: Vec<&str> = topics.iter().map(|(name, _)| *name).collect();
    let topics: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|(name, partitions)| {
            NewTopic::new(name, *partitions, TopicReplication::Fixed(replication))
        })
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin
        .create_topics(&topics, &opts)
        .await
        .map_err(|e| format!("cannot create topics {names:?}: {e}"))?;
    let mut created = Vec::new();
    for result in results {
        match result {
            Ok(topic) => created.push(topic),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((
                topic,
                code @ (RDKafkaErrorCode::TopicAuthorizationFailed
                | RDKafkaErrorCode::ClusterAuthorizationFailed),
            )) => {
                tracing::warn!(topic, error = %code, "not allowed to create the topic; it must exist already");
            }
            Err((topic, code)) => return Err(format!("cannot create topic {topic}: {code}")),
        }
    }
    Ok(created)
}

/// One topic as the operator wants it.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicPlan {
    /// The topic's name: 1 to 249 characters of `a-z A-Z 0-9 . _ -`, not `.` or `..`.
    pub name: String,
    /// The partition count, at least 1. Raised when the topic has fewer; never lowered.
    pub partitions: i32,
    /// Replicas of each partition, applied at creation. None = the broker's
    /// default.replication.factor
    pub replication_factor: Option<i32>,
    /// retention.ms; None = leave the broker default (or whatever the topic has). `-1` keeps
    /// data forever.
    pub retention_ms: Option<i64>,
}

impl TopicPlan {
    /// The settings in words, for error messages: "3 partitions, replication factor 1,
    /// retention.ms 3600000".
    fn settings(&self) -> String {
        let replication = self
            .replication_factor
            .map_or_else(|| "the broker default".to_owned(), |r| r.to_string());
        let retention = self
            .retention_ms
            .map_or_else(|| "the broker default".to_owned(), |r| r.to_string());
        format!(
            "{} partitions, replication factor {replication}, retention.ms {retention}",
            self.partitions
        )
    }
}

/// What [`reconcile_topics`] found and changed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TopicsReport {
    /// Topics created by this call.
    pub created: Vec<String>,
    /// Topics whose partition count this call raised: (topic, from, to).
    pub partitions_raised: Vec<(String, i32, i32)>,
    /// Topics whose `retention.ms` this call changed.
    pub retention_updated: Vec<String>,
    /// topics that have more partitions than asked (never lowered): (topic, actual, asked)
    pub more_partitions_than_asked: Vec<(String, i32, i32)>,
    /// actual partition count of every planned topic after reconciliation (the autoscaler needs it)
    pub partitions: Vec<(String, i32)>,
}

impl TopicsReport {
    /// Whether this call changed anything in the cluster.
    pub fn changed_anything(&self) -> bool {
        !(self.created.is_empty()
            && self.partitions_raised.is_empty()
            && self.retention_updated.is_empty())
    }
}

/// An admin operation on topics, as named in error messages ("cannot {operation} topic x").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicOperation {
    /// Reading the cluster's metadata (brokers, topics, partitions).
    Describe,
    /// `CreateTopics`.
    Create,
    /// `CreatePartitions`.
    AddPartitions,
    /// `DescribeConfigs`.
    ReadConfig,
    /// `AlterConfigs`.
    AlterConfig,
    /// `DeleteTopics`.
    Delete,
}

impl fmt::Display for TopicOperation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Describe => "describe",
            Self::Create => "create",
            Self::AddPartitions => "add partitions to",
            Self::ReadConfig => "read the configuration of",
            Self::AlterConfig => "alter the configuration of",
            Self::Delete => "delete",
        })
    }
}

/// Why reconciling or deleting topics failed.
///
/// Each message is complete on its own and names the topic and the cause, because the operator
/// shows it as is in a status condition and an Event. That is why the underlying rdkafka error
/// is part of the message and deliberately not repeated as [`std::error::Error::source`].
#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    /// A plan is invalid on its own; found before any request is sent.
    #[error("invalid plan for topic {topic:?}: {reason}")]
    InvalidPlan {
        /// The planned topic name (possibly the invalid one).
        topic: String,
        /// What is wrong.
        reason: String,
    },
    /// Two plans name the same topic with different settings (for example the errors topic
    /// pointing at the logs topic, with another partition count).
    #[error("conflicting plans for topic {topic}: one asks for {first}, another for {second}")]
    ConflictingPlans {
        /// The topic both plans name.
        topic: String,
        /// The first plan's settings, in words.
        first: String,
        /// The second plan's settings, in words.
        second: String,
    },
    /// The client configuration is unusable (an unknown property, for example).
    #[error("cannot create a Kafka admin client: {cause}")]
    Client {
        /// What librdkafka said.
        cause: KafkaError,
    },
    /// The opening metadata fetch failed: no broker answered within [`METADATA_TIMEOUT`], or
    /// authentication failed.
    #[error(transparent)]
    Unreachable(Unreachable),
    /// The broker refused an operation on a topic for lack of permission (ACLs).
    #[error("not authorized to {operation} topic {topic}: {code}")]
    Unauthorized {
        /// The topic.
        topic: String,
        /// What was refused.
        operation: TopicOperation,
        /// The broker's error code.
        code: RDKafkaErrorCode,
    },
    /// A topic cannot be created with the asked replication factor, typically because the
    /// cluster has fewer brokers.
    #[error("cannot create topic {topic}: {}", replication_problem(*.asked, *.available))]
    InvalidReplicationFactor {
        /// The topic.
        topic: String,
        /// The asked replication factor; None = the broker's default.replication.factor.
        asked: Option<i32>,
        /// Brokers in the cluster.
        available: usize,
    },
    /// The broker refused an operation on one topic.
    #[error("cannot {operation} topic {topic}: {code}")]
    Rejected {
        /// The topic.
        topic: String,
        /// What was refused.
        operation: TopicOperation,
        /// The broker's (or librdkafka's) error code.
        code: RDKafkaErrorCode,
    },
    /// A whole admin request failed (timed out, transport error) before per-topic results.
    #[error("cannot {operation} {}: {cause}", topics_phrase(.topics))]
    Request {
        /// What was asked.
        operation: TopicOperation,
        /// The topics of the request.
        topics: Vec<String>,
        /// What librdkafka said.
        cause: KafkaError,
    },
    /// librdkafka did not report any outcome of an admin request in time.
    #[error(
        "Kafka did not answer the request to {operation} {} within {}s",
        topics_phrase(.topics),
        .waited.as_secs()
    )]
    TimedOut {
        /// What was asked.
        operation: TopicOperation,
        /// The topics of the request.
        topics: Vec<String>,
        /// How long we waited.
        waited: Duration,
    },
    /// The topic has a sensitive dynamic setting, whose value the broker does not reveal; the
    /// non-incremental `AlterConfigs` would reset it, so the retention is not changed.
    #[error(
        "cannot change the retention of topic {topic}: its setting {key} is sensitive, so its \
         value cannot be read and sent again, and AlterConfigs would reset it"
    )]
    UnpreservableConfig {
        /// The topic.
        topic: String,
        /// The sensitive setting.
        key: String,
    },
    /// Topics that must exist (they are not managed here) do not.
    #[error("{} missing: create {} or let the operator manage topics", topics_phrase(.topics), if .topics.len() == 1 { "it" } else { "them" })]
    Missing {
        /// The absent topics.
        topics: Vec<String>,
    },
    /// `DescribeConfigs` returned nothing usable for a topic.
    #[error("cannot read the configuration of topic {topic}: {reason}")]
    UnreadableConfig {
        /// The topic.
        topic: String,
        /// What was wrong with the answer.
        reason: String,
    },
}

impl TopicError {
    /// A short, fixed label for metrics (`error="unreachable"`).
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::InvalidPlan { .. } => "invalid_plan",
            Self::ConflictingPlans { .. } => "conflicting_plans",
            Self::Client { .. } => "client",
            Self::Unreachable { .. } => "unreachable",
            Self::Unauthorized { .. } => "unauthorized",
            Self::InvalidReplicationFactor { .. } => "invalid_replication_factor",
            Self::Rejected { .. } => "rejected",
            Self::Request { .. } => "request",
            Self::TimedOut { .. } => "timed_out",
            Self::UnpreservableConfig { .. } => "unpreservable_config",
            Self::UnreadableConfig { .. } => "unreadable_config",
            Self::Missing { .. } => "missing",
        }
    }

    /// Whether trying again soon may succeed without anyone changing the plan or the cluster
    /// (a broker that is down, a timeout, a leader election), as opposed to errors that need a
    /// person (invalid plans, permissions, too few brokers).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Unreachable { .. } | Self::Request { .. } | Self::TimedOut { .. } => true,
            Self::Rejected { code, .. } => matches!(
                code,
                RDKafkaErrorCode::RequestTimedOut
                    | RDKafkaErrorCode::OperationTimedOut
                    | RDKafkaErrorCode::NotController
                    | RDKafkaErrorCode::LeaderNotAvailable
                    | RDKafkaErrorCode::BrokerNotAvailable
                    | RDKafkaErrorCode::NetworkException
                    | RDKafkaErrorCode::BrokerTransportFailure
                    | RDKafkaErrorCode::AllBrokersDown
                    | RDKafkaErrorCode::ReassignmentInProgress
            ),
            Self::InvalidPlan { .. }
            | Self::ConflictingPlans { .. }
            | Self::Client { .. }
            | Self::Unauthorized { .. }
            | Self::InvalidReplicationFactor { .. }
            | Self::UnpreservableConfig { .. }
            | Self::UnreadableConfig { .. }
            | Self::Missing { .. } => false,
        }
    }
}

fn replication_problem(asked: Option<i32>, available: usize) -> String {
    let brokers = if available == 1 { "broker" } else { "brokers" };
    match asked {
        Some(asked) if usize::try_from(asked).is_ok_and(|a| a > available) => {
            format!("replication factor {asked} is larger than the {available} available {brokers}")
        }
        Some(asked) => {
            format!("replication factor {asked} is invalid (the cluster has {available} {brokers})")
        }
        None => format!(
            "the broker's default.replication.factor is invalid, probably larger than the \
             {available} available {brokers}"
        ),
    }
}

fn unreachable_cause(cause: &KafkaError, detail: Option<&str>) -> String {
    match detail {
        Some(detail) => format!("{detail} ({cause})"),
        None => cause.to_string(),
    }
}

pub(crate) fn topics_phrase(topics: &[String]) -> String {
    match topics {
        [one] => format!("topic {one}"),
        many => format!("topics {}", many.join(", ")),
    }
}

/// Brings the planned topics to their plans: creates the missing ones (with their partitions,
/// replication factor and retention), raises partition counts that are too low, and sets
/// `retention.ms` where it differs. Plans naming the same topic are merged when identical and
/// an error when not. Idempotent: a second identical call changes nothing and reports empty
/// `created`, `partitions_raised` and `retention_updated`.
///
/// Every request is bounded: the opening metadata fetch by [`METADATA_TIMEOUT`] (an unreachable
/// broker is [`TopicError::Unreachable`] after about that long, instead of librdkafka retrying
/// forever), each admin request by [`ADMIN_REQUEST_TIMEOUT`]. A plan that cannot work (an
/// invalid name, a conflict, a replication factor above the broker count) fails before anything
/// is changed. When one topic's operation fails, the others' still run and the first failure is
/// returned; the next call picks up where this one stopped.
///
/// If another client creates a planned topic between observing and creating (an ingest replica
/// calling [`ensure_topics`], say), the topic is observed again and reconciled like an existing
/// one.
///
/// Retention is changed with the legacy, non-incremental `AlterConfigs` (the only one rdkafka
/// 0.39 wraps), which replaces the topic's whole set of dynamic settings. So the topic's
/// settings are read first and every setting set on the topic itself (source `DynamicTopic`,
/// such as an administrator's `cleanup.policy` or `max.message.bytes`) is sent again with the
/// new `retention.ms`; nothing else is reset. A sensitive setting cannot be read back, so its
/// presence is [`TopicError::UnpreservableConfig`] instead of a silent reset. A change another
/// client makes between the read and the write is overwritten.
///
/// # Panics
/// Outside a Tokio runtime (the metadata fetch runs on Tokio's blocking pool).
pub async fn reconcile_topics(
    config: &ClientConfig,
    plans: &[TopicPlan],
) -> Result<TopicsReport, TopicError> {
    let plans = validated_plans(plans)?;
    if plans.is_empty() {
        return Ok(TopicsReport::default());
    }
    let admin = admin_client(config)?;
    let first = reconcile_pass(config, &admin, &plans, CreateRace::ObserveAgain).await?;
    match first {
        PassOutcome::Done(report) => Ok(report),
        PassOutcome::Raced(report) => {
            let second = reconcile_pass(config, &admin, &plans, CreateRace::Fail).await?;
            Ok(merge_reports(report, second.into_report()))
        }
    }
}

/// Checks, without changing anything, that the planned topics exist (for topics someone else
/// manages). Returns their partition counts in `partitions`; a planned partition count above
/// the actual one is not an error (the owner decides), a missing topic is
/// [`TopicError::Missing`]. Bounded like [`reconcile_topics`].
///
/// # Panics
/// Outside a Tokio runtime (the metadata fetch runs on Tokio's blocking pool).
pub async fn check_topics(
    config: &ClientConfig,
    plans: &[TopicPlan],
) -> Result<TopicsReport, TopicError> {
    let plans = validated_plans(plans)?;
    let names: HashSet<&str> = plans.iter().map(|p| p.name.as_str()).collect();
    let observed = fetch_cluster(config, &names).await?;
    let missing: Vec<String> = plans
        .iter()
        .filter(|p| !observed.topics.contains_key(&p.name))
        .map(|p| p.name.clone())
        .collect();
    if !missing.is_empty() {
        return Err(TopicError::Missing { topics: missing });
    }
    Ok(TopicsReport {
        partitions: plans
            .iter()
            .filter_map(|p| {
                observed
                    .topics
                    .get(&p.name)
                    .map(|t| (p.name.clone(), t.partitions))
            })
            .collect(),
        ..TopicsReport::default()
    })
}

/// Deletes the named topics. Absent topics are success; returns the topics this call deleted.
/// Bounded like [`reconcile_topics`]. Deletion is not reversible: the topics' data is gone.
///
/// # Panics
/// Outside a Tokio runtime (the metadata fetch runs on Tokio's blocking pool).
pub async fn delete_topics(
    config: &ClientConfig,
    names: &[&str],
) -> Result<Vec<String>, TopicError> {
    let mut seen = HashSet::new();
    let mut unique = Vec::new();
    for name in names {
        if let Some(reason) = invalid_topic_name(name) {
            return Err(TopicError::InvalidPlan {
                topic: (*name).to_owned(),
                reason,
            });
        }
        if seen.insert(*name) {
            unique.push(*name);
        }
    }
    if unique.is_empty() {
        return Ok(Vec::new());
    }
    let observed = fetch_cluster(config, &seen).await?;
    let admin = admin_client(config)?;
    let present: Vec<&str> = unique
        .into_iter()
        .filter(|name| observed.topics.contains_key(*name))
        .collect();
    if present.is_empty() {
        return Ok(Vec::new());
    }
    let owned: Vec<String> = present.iter().map(|n| (*n).to_owned()).collect();
    let results = guarded(
        TopicOperation::Delete,
        &owned,
        admin.delete_topics(&present, &admin_options()),
    )
    .await?;
    let mut deleted = Vec::new();
    let mut errors = Vec::new();
    for result in results {
        match result {
            Ok(topic) => {
                tracing::info!(topic, "deleted topic");
                deleted.push(topic);
            }
            // Deleted by someone else since the metadata fetch.
            Err((_, RDKafkaErrorCode::UnknownTopicOrPartition)) => {}
            Err((topic, code)) => errors.push(classify(TopicOperation::Delete, topic, code)),
        }
    }
    first_error(errors)?;
    Ok(deleted)
}

// ---------------------------------------------------------------------------------------------
// Pure: validation, planning, report merging.
// ---------------------------------------------------------------------------------------------

/// Why `name` is not a valid topic name, if it is not.
pub(crate) fn invalid_topic_name(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("the name is empty".to_owned());
    }
    if name == "." || name == ".." {
        return Some("the name cannot be \".\" or \"..\"".to_owned());
    }
    if name.len() > MAX_TOPIC_NAME_LEN {
        return Some(format!(
            "the name is {} characters long, more than Kafka's {MAX_TOPIC_NAME_LEN}",
            name.len()
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Some(format!(
            "the name contains {bad:?}; only a-z, A-Z, 0-9, '.', '_' and '-' are allowed"
        ));
    }
    None
}

/// Checks each plan on its own and merges plans naming the same topic (first occurrence keeps
/// its place); two different plans for one topic are [`TopicError::ConflictingPlans`].
fn validated_plans(plans: &[TopicPlan]) -> Result<Vec<TopicPlan>, TopicError> {
    let mut unique: Vec<TopicPlan> = Vec::with_capacity(plans.len());
    for plan in plans {
        let invalid = |reason: String| TopicError::InvalidPlan {
            topic: plan.name.clone(),
            reason,
        };
        if let Some(reason) = invalid_topic_name(&plan.name) {
            return Err(invalid(reason));
        }
        if plan.partitions < 1 {
            return Err(invalid(format!(
                "partitions must be at least 1, not {}",
                plan.partitions
            )));
        }
        if let Some(replication) = plan.replication_factor
            && !(1..=i32::from(i16::MAX)).contains(&replication)
        {
            return Err(invalid(format!(
                "the replication factor must be between 1 and {}, not {replication}",
                i16::MAX
            )));
        }
        if let Some(retention) = plan.retention_ms
            && retention < -1
        {
            return Err(invalid(format!(
                "retention.ms must be -1 (forever) or more, not {retention}"
            )));
        }
        match unique.iter().find(|p| p.name == plan.name) {
            None => unique.push(plan.clone()),
            Some(earlier) if earlier == plan => {}
            Some(earlier) => {
                return Err(TopicError::ConflictingPlans {
                    topic: plan.name.clone(),
                    first: earlier.settings(),
                    second: plan.settings(),
                });
            }
        }
    }
    Ok(unique)
}

/// What reconciliation knows about the cluster.
#[derive(Debug, Clone, Default, PartialEq)]
struct Observed {
    /// Brokers in the cluster.
    brokers: usize,
    /// The topics of interest that exist.
    topics: HashMap<String, ObservedTopic>,
}

/// One existing topic.
#[derive(Debug, Clone, Default, PartialEq)]
struct ObservedTopic {
    partitions: i32,
    /// Replicas of the first partition.
    replication_factor: i32,
    /// Read only when the topic's plan sets a retention.
    config: Option<ObservedConfig>,
}

/// The settings of a topic that matter for altering its retention.
#[derive(Debug, Clone, Default, PartialEq)]
struct ObservedConfig {
    /// The effective `retention.ms`, whatever its source.
    retention_ms: Option<String>,
    /// Settings set on the topic itself (source `DynamicTopic`); None = a sensitive value the
    /// broker does not reveal.
    dynamic: BTreeMap<String, Option<String>>,
}

impl ObservedConfig {
    fn from_entries(entries: &[ConfigEntry]) -> Self {
        let mut config = Self::default();
        for entry in entries {
            if entry.name == RETENTION_MS {
                config.retention_ms.clone_from(&entry.value);
            }
            if entry.source == ConfigSource::DynamicTopic {
                let value = if entry.is_sensitive {
                    None
                } else {
                    entry.value.clone()
                };
                config.dynamic.insert(entry.name.clone(), value);
            }
        }
        config
    }
}

/// A topic to create.
#[derive(Debug, Clone, PartialEq)]
struct CreateTopic {
    name: String,
    partitions: i32,
    replication_factor: Option<i32>,
    retention_ms: Option<i64>,
}

/// What to do, and what to report besides what is done.
#[derive(Debug, Clone, Default, PartialEq)]
struct Actions {
    create: Vec<CreateTopic>,
    /// (topic, from, to)
    raise_partitions: Vec<(String, i32, i32)>,
    /// (topic, the complete set of dynamic settings to send, `retention.ms` included)
    alter_configs: Vec<(String, BTreeMap<String, String>)>,
    /// (topic, actual, asked)
    more_partitions_than_asked: Vec<(String, i32, i32)>,
    /// (topic, actual, asked): existing topics whose replication factor differs from the plan.
    replication_differs: Vec<(String, i32, i32)>,
    /// Every planned topic's partition count once the actions succeed.
    partitions: Vec<(String, i32)>,
}

/// The existing topics whose configuration must be read before planning: those whose plan
/// sets a retention.
fn topics_needing_config(plans: &[TopicPlan], observed: &Observed) -> Vec<String> {
    plans
        .iter()
        .filter(|p| p.retention_ms.is_some() && observed.topics.contains_key(&p.name))
        .map(|p| p.name.clone())
        .collect()
}

/// Decides what to do so that the observed cluster matches the (validated, deduplicated)
/// plans. Fails, before anything is done, when a topic cannot be created as planned or its
/// retention cannot be changed safely.
fn plan_actions(plans: &[TopicPlan], observed: &Observed) -> Result<Actions, TopicError> {
    let mut actions = Actions::default();
    for plan in plans {
        let name = &plan.name;
        let Some(topic) = observed.topics.get(name) else {
            if let Some(asked) = plan.replication_factor
                && usize::try_from(asked).is_ok_and(|a| a > observed.brokers)
            {
                return Err(TopicError::InvalidReplicationFactor {
                    topic: name.clone(),
                    asked: Some(asked),
                    available: observed.brokers,
                });
            }
            actions.create.push(CreateTopic {
                name: name.clone(),
                partitions: plan.partitions,
                replication_factor: plan.replication_factor,
                retention_ms: plan.retention_ms,
            });
            actions.partitions.push((name.clone(), plan.partitions));
            continue;
        };

        if plan.partitions > topic.partitions {
            actions
                .raise_partitions
                .push((name.clone(), topic.partitions, plan.partitions));
            actions.partitions.push((name.clone(), plan.partitions));
        } else {
            if plan.partitions < topic.partitions {
                actions.more_partitions_than_asked.push((
                    name.clone(),
                    topic.partitions,
                    plan.partitions,
                ));
            }
            actions.partitions.push((name.clone(), topic.partitions));
        }

        if let Some(asked) = plan.replication_factor
            && asked != topic.replication_factor
        {
            actions
                .replication_differs
                .push((name.clone(), topic.replication_factor, asked));
        }

        if let Some(retention) = plan.retention_ms {
            let config = topic
                .config
                .as_ref()
                .ok_or_else(|| TopicError::UnreadableConfig {
                    topic: name.clone(),
                    reason: "it was not read".to_owned(),
                })?;
            let current = config
                .retention_ms
                .as_deref()
                .and_then(|v| v.trim().parse::<i64>().ok());
            if current != Some(retention) {
                let mut settings = BTreeMap::new();
                for (key, value) in &config.dynamic {
                    if key == RETENTION_MS {
                        continue;
                    }
                    let value = value
                        .clone()
                        .ok_or_else(|| TopicError::UnpreservableConfig {
                            topic: name.clone(),
                            key: key.clone(),
                        })?;
                    settings.insert(key.clone(), value);
                }
                settings.insert(RETENTION_MS.to_owned(), retention.to_string());
                actions.alter_configs.push((name.clone(), settings));
            }
        }
    }
    Ok(actions)
}

/// The report of two passes: what either changed, and the state the last one saw.
fn merge_reports(first: TopicsReport, second: TopicsReport) -> TopicsReport {
    let mut merged = first;
    merged.created.extend(second.created);
    merged.partitions_raised.extend(second.partitions_raised);
    merged.retention_updated.extend(second.retention_updated);
    merged.more_partitions_than_asked = second.more_partitions_than_asked;
    merged.partitions = second.partitions;
    merged
}

fn classify(operation: TopicOperation, topic: String, code: RDKafkaErrorCode) -> TopicError {
    match code {
        RDKafkaErrorCode::TopicAuthorizationFailed
        | RDKafkaErrorCode::ClusterAuthorizationFailed => TopicError::Unauthorized {
            topic,
            operation,
            code,
        },
        _ => TopicError::Rejected {
            topic,
            operation,
            code,
        },
    }
}

/// Returns the first error, logging the others (they would be lost otherwise).
fn first_error(errors: Vec<TopicError>) -> Result<(), TopicError> {
    let mut errors = errors.into_iter();
    let Some(first) = errors.next() else {
        return Ok(());
    };
    for other in errors {
        tracing::warn!(error = %other, "another topic operation failed too");
    }
    Err(first)
}

// ---------------------------------------------------------------------------------------------
// IO: observe and execute.
// ---------------------------------------------------------------------------------------------

fn admin_client(config: &ClientConfig) -> Result<Admin, TopicError> {
    config
        .create()
        .map_err(|cause| TopicError::Client { cause })
}

pub(crate) fn bootstrap_servers(config: &ClientConfig) -> String {
    config
        .get("bootstrap.servers")
        .unwrap_or("(no bootstrap.servers configured)")
        .to_owned()
}

fn admin_options() -> AdminOptions {
    AdminOptions::new()
        .request_timeout(Some(ADMIN_REQUEST_TIMEOUT))
        .operation_timeout(Some(ADMIN_OPERATION_TIMEOUT))
}

/// Awaits an admin request, bounded even if librdkafka never reports an outcome.
async fn guarded<T>(
    operation: TopicOperation,
    topics: &[String],
    request: impl Future<Output = KafkaResult<T>>,
) -> Result<T, TopicError> {
    let waited = ADMIN_REQUEST_TIMEOUT + GUARD_SLACK;
    match tokio::time::timeout(waited, request).await {
        Ok(Ok(outcome)) => Ok(outcome),
        Ok(Err(cause)) => Err(TopicError::Request {
            operation,
            topics: topics.to_vec(),
            cause,
        }),
        Err(_) => Err(TopicError::TimedOut {
            operation,
            topics: topics.to_vec(),
            waited,
        }),
    }
}

/// Fetches the cluster's metadata (bounded by [`METADATA_TIMEOUT`]) and keeps the brokers and
/// the topics in `interesting`. This is also the reachability check.
async fn fetch_cluster(
    config: &ClientConfig,
    interesting: &HashSet<&str>,
) -> Result<Observed, TopicError> {
    let config = config.clone();
    let interesting: HashSet<String> = interesting.iter().map(|&n| n.to_owned()).collect();
    // `fetch_metadata` blocks the calling thread until the answer or the timeout.
    match tokio::task::spawn_blocking(move || observe_metadata(&config, &interesting)).await {
        Ok(observed) => observed,
        Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
        Err(_) => Err(TopicError::Unreachable(Unreachable::shutting_down(
            "Kafka".to_owned(),
        ))),
    }
}

/// The blocking part of [`fetch_cluster`].
fn observe_metadata(
    config: &ClientConfig,
    interesting: &HashSet<String>,
) -> Result<Observed, TopicError> {
    let metadata = probe_metadata(config, METADATA_TIMEOUT)?;
    let mut observed = Observed {
        brokers: metadata.brokers().len(),
        topics: HashMap::new(),
    };
    for topic in metadata.topics() {
        if !interesting.contains(topic.name()) {
            continue;
        }
        if let Some(error) = topic.error() {
            let code = RDKafkaErrorCode::from(error);
            if code == RDKafkaErrorCode::UnknownTopicOrPartition {
                continue;
            }
            if topic.partitions().is_empty() {
                return Err(classify(
                    TopicOperation::Describe,
                    topic.name().to_owned(),
                    code,
                ));
            }
        }
        let partitions = topic.partitions();
        observed.topics.insert(
            topic.name().to_owned(),
            ObservedTopic {
                partitions: i32::try_from(partitions.len()).unwrap_or(i32::MAX),
                replication_factor: partitions
                    .first()
                    .map_or(0, |p| i32::try_from(p.replicas().len()).unwrap_or(i32::MAX)),
                config: None,
            },
        );
    }
    Ok(observed)
}

/// Reads the configuration of `names` (existing topics) into `observed`.
async fn read_configs(
    admin: &Admin,
    names: &[String],
    observed: &mut Observed,
) -> Result<(), TopicError> {
    if names.is_empty() {
        return Ok(());
    }
    let specifiers: Vec<ResourceSpecifier<'_>> = names
        .iter()
        .map(|name| ResourceSpecifier::Topic(name))
        .collect();
    let results = guarded(
        TopicOperation::ReadConfig,
        names,
        admin.describe_configs(&specifiers, &admin_options()),
    )
    .await?;
    // Results come in request order; a failed one does not say which topic it was for.
    for (asked, result) in names.iter().zip(results) {
        let resource =
            result.map_err(|code| classify(TopicOperation::ReadConfig, asked.clone(), code))?;
        let name = match &resource.specifier {
            OwnedResourceSpecifier::Topic(name) => name.clone(),
            _ => asked.clone(),
        };
        // rdkafka 0.39 drops per-resource errors: an empty answer is how a refused or vanished
        // topic shows.
        if resource.entries.is_empty() {
            return Err(TopicError::UnreadableConfig {
                topic: name,
                reason: "the broker returned no settings (was it deleted, or is reading its \
                         configuration not allowed?)"
                    .to_owned(),
            });
        }
        if let Some(topic) = observed.topics.get_mut(&name) {
            topic.config = Some(ObservedConfig::from_entries(&resource.entries));
        }
    }
    Ok(())
}

/// What to do when a topic this pass meant to create turns out to exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CreateRace {
    /// Finish the pass, then observe again and reconcile it as an existing topic.
    ObserveAgain,
    /// Report it as an error (it already raced once).
    Fail,
}

enum PassOutcome {
    Done(TopicsReport),
    /// Some topic was created by someone else in the meantime: another pass is needed.
    Raced(TopicsReport),
}

impl PassOutcome {
    fn into_report(self) -> TopicsReport {
        match self {
            Self::Done(report) | Self::Raced(report) => report,
        }
    }
}

/// Observe → plan → execute, once.
async fn reconcile_pass(
    config: &ClientConfig,
    admin: &Admin,
    plans: &[TopicPlan],
    on_race: CreateRace,
) -> Result<PassOutcome, TopicError> {
    let interesting: HashSet<&str> = plans.iter().map(|p| p.name.as_str()).collect();
    let mut observed = fetch_cluster(config, &interesting).await?;
    let needing_config = topics_needing_config(plans, &observed);
    read_configs(admin, &needing_config, &mut observed).await?;
    let actions = plan_actions(plans, &observed)?;
    for (topic, actual, asked) in &actions.replication_differs {
        tracing::warn!(
            topic,
            actual,
            asked,
            "the topic's replication factor differs from the plan; changing it needs a partition \
             reassignment, which is not done automatically"
        );
    }

    let mut report = TopicsReport {
        more_partitions_than_asked: actions.more_partitions_than_asked.clone(),
        partitions: actions.partitions.clone(),
        ..TopicsReport::default()
    };
    let mut errors = Vec::new();
    let mut raced = false;

    if !actions.create.is_empty() {
        match create(admin, &actions.create, observed.brokers, on_race).await {
            Ok((created, race)) => {
                report.created = created;
                raced = race;
            }
            Err(error) => errors.push(error),
        }
    }
    if !actions.raise_partitions.is_empty() {
        match raise_partitions(admin, &actions.raise_partitions).await {
            Ok(raised) => report.partitions_raised = raised,
            Err(error) => errors.push(error),
        }
    }
    if !actions.alter_configs.is_empty() {
        match alter_configs(admin, &actions.alter_configs).await {
            Ok(altered) => report.retention_updated = altered,
            Err(error) => errors.push(error),
        }
    }
    first_error(errors)?;
    Ok(if raced {
        PassOutcome::Raced(report)
    } else {
        PassOutcome::Done(report)
    })
}

/// Creates the topics; returns those created and whether one already existed. A per-topic
/// failure stops nothing but is returned once all results are in.
async fn create(
    admin: &Admin,
    topics: &[CreateTopic],
    brokers: usize,
    on_race: CreateRace,
) -> Result<(Vec<String>, bool), TopicError> {
    let retentions: Vec<Option<String>> = topics
        .iter()
        .map(|t| t.retention_ms.map(|r| r.to_string()))
        .collect();
    let new_topics: Vec<NewTopic<'_>> = topics
        .iter()
        .zip(&retentions)
        .map(|(topic, retention)| {
            let new = NewTopic::new(
                &topic.name,
                topic.partitions,
                TopicReplication::Fixed(topic.replication_factor.unwrap_or(-1)),
            );
            match retention {
                Some(retention) => new.set(RETENTION_MS, retention),
                None => new,
            }
        })
        .collect();
    let names: Vec<String> = topics.iter().map(|t| t.name.clone()).collect();
    let results = guarded(
        TopicOperation::Create,
        &names,
        admin.create_topics(&new_topics, &admin_options()),
    )
    .await?;
    let mut created = Vec::new();
    let mut raced = false;
    let mut errors = Vec::new();
    for result in results {
        match result {
            Ok(name) => {
                if let Some(topic) = topics.iter().find(|t| t.name == name) {
                    tracing::info!(
                        topic = name,
                        partitions = topic.partitions,
                        replication_factor = topic.replication_factor,
                        retention_ms = topic.retention_ms,
                        "created topic"
                    );
                }
                created.push(name);
            }
            Err((name, RDKafkaErrorCode::TopicAlreadyExists))
                if on_race == CreateRace::ObserveAgain =>
            {
                tracing::info!(
                    topic = name,
                    "topic was created concurrently; reconciling it as an existing topic"
                );
                raced = true;
            }
            Err((name, RDKafkaErrorCode::InvalidReplicationFactor)) => {
                let asked = topics
                    .iter()
                    .find(|t| t.name == name)
                    .and_then(|t| t.replication_factor);
                errors.push(TopicError::InvalidReplicationFactor {
                    topic: name,
                    asked,
                    available: brokers,
                });
            }
            Err((name, code)) => errors.push(classify(TopicOperation::Create, name, code)),
        }
    }
    first_error(errors)?;
    Ok((created, raced))
}

/// Raises partition counts; returns (topic, from, to) for each raised.
async fn raise_partitions(
    admin: &Admin,
    raises: &[(String, i32, i32)],
) -> Result<Vec<(String, i32, i32)>, TopicError> {
    let new_partitions: Vec<NewPartitions<'_>> = raises
        .iter()
        .map(|(name, _, to)| NewPartitions::new(name, usize::try_from(*to).unwrap_or(0)))
        .collect();
    let names: Vec<String> = raises.iter().map(|(name, _, _)| name.clone()).collect();
    let results = guarded(
        TopicOperation::AddPartitions,
        &names,
        admin.create_partitions(&new_partitions, &admin_options()),
    )
    .await?;
    let mut raised = Vec::new();
    let mut errors = Vec::new();
    for result in results {
        match result {
            Ok(name) => {
                if let Some(raise) = raises.iter().find(|(n, _, _)| *n == name) {
                    tracing::info!(
                        topic = name,
                        from = raise.1,
                        to = raise.2,
                        "raised partitions"
                    );
                    raised.push(raise.clone());
                }
            }
            Err((name, code)) => errors.push(classify(TopicOperation::AddPartitions, name, code)),
        }
    }
    first_error(errors)?;
    Ok(raised)
}

/// Sends each topic's complete dynamic configuration (see the module docs on why complete);
/// returns the topics altered.
async fn alter_configs(
    admin: &Admin,
    alters: &[(String, BTreeMap<String, String>)],
) -> Result<Vec<String>, TopicError> {
    let requests: Vec<AlterConfig<'_>> = alters
        .iter()
        .map(|(name, settings)| {
            settings.iter().fold(
                AlterConfig::new(ResourceSpecifier::Topic(name)),
                |request, (key, value)| request.set(key, value),
            )
        })
        .collect();
    let names: Vec<String> = alters.iter().map(|(name, _)| name.clone()).collect();
    let results = guarded(
        TopicOperation::AlterConfig,
        &names,
        admin.alter_configs(&requests, &admin_options()),
    )
    .await?;
    let mut altered = Vec::new();
    let mut errors = Vec::new();
    for result in results {
        match result {
            Ok(OwnedResourceSpecifier::Topic(name)) => {
                let retention = alters
                    .iter()
                    .find(|(n, _)| *n == name)
                    .and_then(|(_, settings)| settings.get(RETENTION_MS));
                tracing::info!(
                    topic = name,
                    retention_ms = retention,
                    "updated topic retention"
                );
                altered.push(name);
            }
            Err((OwnedResourceSpecifier::Topic(name), code)) => {
                errors.push(classify(TopicOperation::AlterConfig, name, code));
            }
            Ok(_) | Err(_) => {}
        }
    }
    first_error(errors)?;
    Ok(altered)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(name: &str, partitions: i32) -> TopicPlan {
        TopicPlan {
            name: name.to_owned(),
            partitions,
            replication_factor: None,
            retention_ms: None,
        }
    }

    fn with_retention(mut plan: TopicPlan, retention_ms: i64) -> TopicPlan {
        plan.retention_ms = Some(retention_ms);
        plan
    }

    fn existing(partitions: i32) -> ObservedTopic {
        ObservedTopic {
            partitions,
            replication_factor: 1,
            config: None,
        }
    }

    fn with_config(
        mut topic: ObservedTopic,
        retention_ms: &str,
        dynamic: &[(&str, Option<&str>)],
    ) -> ObservedTopic {
        topic.config = Some(ObservedConfig {
            retention_ms: Some(retention_ms.to_owned()),
            dynamic: dynamic
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.map(str::to_owned)))
                .collect(),
        });
        topic
    }

    fn cluster(brokers: usize, topics: &[(&str, ObservedTopic)]) -> Observed {
        Observed {
            brokers,
            topics: topics
                .iter()
                .map(|(n, t)| ((*n).to_owned(), t.clone()))
                .collect(),
        }
    }

    #[test]
    fn missing_topics_are_created_with_their_plan() {
        let plans = [
            with_retention(plan("apm.logs", 3), 3_600_000),
            TopicPlan {
                replication_factor: Some(1),
                ..plan("apm.spans", 6)
            },
        ];
        let actions = plan_actions(&plans, &cluster(1, &[])).unwrap();
        assert_eq!(
            actions.create,
            vec![
                CreateTopic {
                    name: "apm.logs".into(),
                    partitions: 3,
                    replication_factor: None,
                    retention_ms: Some(3_600_000),
                },
                CreateTopic {
                    name: "apm.spans".into(),
                    partitions: 6,
                    replication_factor: Some(1),
                    retention_ms: None,
                },
            ]
        );
        assert!(actions.raise_partitions.is_empty());
        assert!(actions.alter_configs.is_empty());
        assert_eq!(
            actions.partitions,
            vec![("apm.logs".into(), 3), ("apm.spans".into(), 6)]
        );
    }

    #[test]
    fn a_topic_that_matches_its_plan_needs_nothing() {
        let plans = [with_retention(plan("apm.logs", 3), 3_600_000)];
        let observed = cluster(
            1,
            &[(
                "apm.logs",
                with_config(existing(3), "3600000", &[("retention.ms", Some("3600000"))]),
            )],
        );
        let actions = plan_actions(&plans, &observed).unwrap();
        assert_eq!(
            actions,
            Actions {
                partitions: vec![("apm.logs".into(), 3)],
                ..Actions::default()
            }
        );
    }

    #[test]
    fn fewer_partitions_than_planned_are_raised() {
        let plans = [plan("apm.spans", 8)];
        let actions = plan_actions(&plans, &cluster(1, &[("apm.spans", existing(3))])).unwrap();
        assert_eq!(actions.raise_partitions, vec![("apm.spans".into(), 3, 8)]);
        assert!(actions.more_partitions_than_asked.is_empty());
        assert_eq!(actions.partitions, vec![("apm.spans".into(), 8)]);
    }

    #[test]
    fn more_partitions_than_planned_are_kept_and_reported() {
        let plans = [plan("apm.spans", 2)];
        let actions = plan_actions(&plans, &cluster(1, &[("apm.spans", existing(5))])).unwrap();
        assert!(actions.raise_partitions.is_empty());
        assert!(actions.create.is_empty());
        assert_eq!(
            actions.more_partitions_than_asked,
            vec![("apm.spans".into(), 5, 2)]
        );
        assert_eq!(actions.partitions, vec![("apm.spans".into(), 5)]);
    }

    #[test]
    fn a_changed_retention_is_altered_keeping_the_other_dynamic_settings() {
        let plans = [with_retention(plan("apm.logs", 3), 7_200_000)];
        let observed = cluster(
            1,
            &[(
                "apm.logs",
                with_config(
                    existing(3),
                    "3600000",
                    &[
                        ("retention.ms", Some("3600000")),
                        ("cleanup.policy", Some("compact,delete")),
                        ("max.message.bytes", Some("2097152")),
                    ],
                ),
            )],
        );
        let actions = plan_actions(&plans, &observed).unwrap();
        let expected: BTreeMap<String, String> = [
            ("cleanup.policy", "compact,delete"),
            ("max.message.bytes", "2097152"),
            ("retention.ms", "7200000"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(actions.alter_configs, vec![("apm.logs".into(), expected)]);
    }

    #[test]
    fn a_retention_equal_to_the_broker_default_is_not_altered() {
        // No dynamic retention: the effective value comes from the broker, and already matches.
        let plans = [with_retention(plan("apm.logs", 1), 604_800_000)];
        let observed = cluster(
            1,
            &[("apm.logs", with_config(existing(1), "604800000", &[]))],
        );
        assert!(
            plan_actions(&plans, &observed)
                .unwrap()
                .alter_configs
                .is_empty()
        );
    }

    #[test]
    fn no_retention_in_the_plan_leaves_the_topic_configuration_alone() {
        let plans = [plan("apm.logs", 1)];
        let observed = cluster(1, &[("apm.logs", with_config(existing(1), "1000", &[]))]);
        assert!(
            plan_actions(&plans, &observed)
                .unwrap()
                .alter_configs
                .is_empty()
        );
        assert!(topics_needing_config(&plans, &observed).is_empty());
    }

    #[test]
    fn a_sensitive_dynamic_setting_blocks_the_retention_change() {
        let plans = [with_retention(plan("apm.logs", 1), 1000)];
        let observed = cluster(
            1,
            &[(
                "apm.logs",
                with_config(existing(1), "2000", &[("some.secret", None)]),
            )],
        );
        let error = plan_actions(&plans, &observed).unwrap_err();
        assert!(
            matches!(&error, TopicError::UnpreservableConfig { topic, key } if topic == "apm.logs" && key == "some.secret"),
            "{error}"
        );
    }

    #[test]
    fn only_existing_topics_with_a_planned_retention_have_their_configuration_read() {
        let plans = [
            with_retention(plan("a", 1), 1000),
            with_retention(plan("missing", 1), 1000),
            plan("b", 1),
        ];
        let observed = cluster(1, &[("a", existing(1)), ("b", existing(1))]);
        assert_eq!(
            topics_needing_config(&plans, &observed),
            vec!["a".to_owned()]
        );
    }

    #[test]
    fn a_replication_factor_above_the_broker_count_fails_before_anything_is_done() {
        let plans = [
            plan("first", 1),
            TopicPlan {
                replication_factor: Some(3),
                ..plan("apm.logs", 3)
            },
        ];
        let error = plan_actions(&plans, &cluster(1, &[])).unwrap_err();
        assert_eq!(
            error.to_string(),
            "cannot create topic apm.logs: replication factor 3 is larger than the 1 available broker"
        );
        assert!(!error.is_retryable());
    }

    #[test]
    fn a_different_replication_factor_on_an_existing_topic_is_noted_not_acted_on() {
        let plans = [TopicPlan {
            replication_factor: Some(3),
            ..plan("apm.logs", 1)
        }];
        let actions = plan_actions(&plans, &cluster(1, &[("apm.logs", existing(1))])).unwrap();
        assert!(actions.create.is_empty());
        assert_eq!(actions.replication_differs, vec![("apm.logs".into(), 1, 3)]);
    }

    #[test]
    fn identical_plans_for_one_topic_are_merged() {
        let logs = with_retention(plan("apm.logs", 3), 1000);
        let plans = validated_plans(&[logs.clone(), plan("apm.spans", 1), logs.clone()]).unwrap();
        assert_eq!(plans, vec![logs, plan("apm.spans", 1)]);
    }

    #[test]
    fn different_plans_for_one_topic_are_an_error_naming_both() {
        let error = validated_plans(&[
            with_retention(plan("apm.logs", 3), 1000),
            TopicPlan {
                replication_factor: Some(1),
                ..plan("apm.logs", 6)
            },
        ])
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "conflicting plans for topic apm.logs: one asks for 3 partitions, replication factor \
             the broker default, retention.ms 1000, another for 6 partitions, replication factor \
             1, retention.ms the broker default"
        );
    }

    #[test]
    fn invalid_plans_are_refused_naming_the_topic() {
        let cases = [
            (plan("", 1), "the name is empty"),
            (plan("..", 1), "cannot be"),
            (plan("apm logs", 1), "contains ' '"),
            (plan(&"x".repeat(250), 1), "more than Kafka's 249"),
            (plan("apm.logs", 0), "partitions must be at least 1, not 0"),
            (
                TopicPlan {
                    replication_factor: Some(0),
                    ..plan("apm.logs", 1)
                },
                "replication factor must be between 1 and 32767, not 0",
            ),
            (
                with_retention(plan("apm.logs", 1), -2),
                "retention.ms must be -1 (forever) or more, not -2",
            ),
        ];
        for (plan, expected) in cases {
            let error = validated_plans(std::slice::from_ref(&plan)).unwrap_err();
            let message = error.to_string();
            assert!(message.contains(expected), "{message}");
            assert!(message.contains(&format!("{:?}", plan.name)), "{message}");
        }
        assert!(validated_plans(&[with_retention(plan("ok_name-1.x", 1), -1)]).is_ok());
    }

    #[test]
    fn only_settings_set_on_the_topic_itself_are_kept_for_resending() {
        let entry = |name: &str, value: &str, source, is_sensitive| ConfigEntry {
            name: name.to_owned(),
            value: Some(value.to_owned()),
            source,
            is_read_only: false,
            is_default: false,
            is_sensitive,
        };
        let config = ObservedConfig::from_entries(&[
            entry("retention.ms", "604800000", ConfigSource::Default, false),
            entry(
                "cleanup.policy",
                "compact",
                ConfigSource::DynamicTopic,
                false,
            ),
            entry("segment.bytes", "1024", ConfigSource::StaticBroker, false),
            entry("secret", "hidden", ConfigSource::DynamicTopic, true),
        ]);
        assert_eq!(config.retention_ms.as_deref(), Some("604800000"));
        assert_eq!(
            config.dynamic,
            BTreeMap::from([
                ("cleanup.policy".to_owned(), Some("compact".to_owned())),
                ("secret".to_owned(), None),
            ])
        );
    }

    #[test]
    fn a_second_pass_adds_its_changes_and_replaces_the_observed_state() {
        let first = TopicsReport {
            created: vec!["a".into()],
            partitions_raised: vec![("b".into(), 1, 2)],
            retention_updated: vec![],
            more_partitions_than_asked: vec![],
            partitions: vec![("a".into(), 3), ("b".into(), 2), ("c".into(), 3)],
        };
        let second = TopicsReport {
            created: vec![],
            partitions_raised: vec![("c".into(), 1, 3)],
            retention_updated: vec!["c".into()],
            more_partitions_than_asked: vec![],
            partitions: vec![("a".into(), 3), ("b".into(), 2), ("c".into(), 3)],
        };
        let merged = merge_reports(first, second.clone());
        assert_eq!(merged.created, vec!["a".to_owned()]);
        assert_eq!(
            merged.partitions_raised,
            vec![("b".into(), 1, 2), ("c".into(), 1, 3)]
        );
        assert_eq!(merged.retention_updated, vec!["c".to_owned()]);
        assert_eq!(merged.partitions, second.partitions);
        assert!(merged.changed_anything());
        assert!(!TopicsReport::default().changed_anything());
    }

    #[test]
    fn messages_name_the_topic_and_the_cause() {
        let cases = [
            (
                TopicError::InvalidReplicationFactor {
                    topic: "t".into(),
                    asked: Some(5),
                    available: 3,
                },
                "cannot create topic t: replication factor 5 is larger than the 3 available brokers",
            ),
            (
                TopicError::InvalidReplicationFactor {
                    topic: "t".into(),
                    asked: None,
                    available: 1,
                },
                "cannot create topic t: the broker's default.replication.factor is invalid, \
                 probably larger than the 1 available broker",
            ),
            (
                TopicError::Unauthorized {
                    topic: "t".into(),
                    operation: TopicOperation::AddPartitions,
                    code: RDKafkaErrorCode::TopicAuthorizationFailed,
                },
                "not authorized to add partitions to topic t: TopicAuthorizationFailed (Broker: Topic \
                 authorization failed)",
            ),
            (
                TopicError::Request {
                    operation: TopicOperation::Create,
                    topics: vec!["a".into(), "b".into()],
                    cause: KafkaError::AdminOp(RDKafkaErrorCode::OperationTimedOut),
                },
                "cannot create topics a, b: Admin operation error: OperationTimedOut (Local: Timed out)",
            ),
            (
                TopicError::Unreachable(Unreachable {
                    brokers: "kafka:9092".into(),
                    cause: KafkaError::MetadataFetch(RDKafkaErrorCode::BrokerTransportFailure),
                    detail: Some("SASL authentication error: invalid credentials".into()),
                }),
                "cannot reach Kafka at kafka:9092: SASL authentication error: invalid credentials \
                 (Meta data fetch error: BrokerTransportFailure (Local: Broker transport failure))",
            ),
            (
                TopicError::Unreachable(Unreachable {
                    brokers: "kafka:9092".into(),
                    cause: KafkaError::MetadataFetch(RDKafkaErrorCode::OperationTimedOut),
                    detail: None,
                }),
                "cannot reach Kafka at kafka:9092: Meta data fetch error: OperationTimedOut \
                 (Local: Timed out)",
            ),
            (
                TopicError::TimedOut {
                    operation: TopicOperation::AlterConfig,
                    topics: vec!["a".into()],
                    waited: Duration::from_secs(15),
                },
                "Kafka did not answer the request to alter the configuration of topic a within 15s",
            ),
        ];
        for (error, expected) in cases {
            assert_eq!(error.to_string(), expected);
        }
    }

    #[test]
    fn authorization_codes_are_classified_as_unauthorized() {
        let error = classify(
            TopicOperation::Create,
            "t".into(),
            RDKafkaErrorCode::ClusterAuthorizationFailed,
        );
        assert_eq!(error.metric_label(), "unauthorized");
        let error = classify(
            TopicOperation::Create,
            "t".into(),
            RDKafkaErrorCode::NotController,
        );
        assert_eq!(error.metric_label(), "rejected");
        assert!(error.is_retryable());
    }
}
