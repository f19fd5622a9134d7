//! The `Panopticon` custom resource (`panopticon.io/v1alpha1`, short name `pano`).
//!
//! Defaults live in the schema (so `kubectl get -o yaml` and Argo CD's diff show them, and the
//! operator never writes the spec) and validation is CEL in the schema (no webhook): a bad
//! resource is refused at apply time with a message naming the field. `crds/` holds the YAML
//! generated from these types; a test fails when it drifts. Where a field and a component
//! variable share a default (topic and stream names, partitions, replicas, ports), the default
//! is the variable's declaration in `panopticon_model::config::vars`.

use k8s_openapi::api::core::v1::{
    Affinity, PodSecurityContext, ResourceRequirements, Toleration, TopologySpreadConstraint,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use panopticon_model::config::var::Var;
use panopticon_model::config::vars;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A Panopticon APM backend: where Elasticsearch/OpenSearch, Kafka and Redis are, and how its
/// four components (ingest, rollup, query, alert) run.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "panopticon.io",
    version = "v1alpha1",
    kind = "Panopticon",
    namespaced,
    shortname = "pano",
    category = "panopticon",
    status = "PanopticonStatus",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Ingest","type":"string","description":"ready/desired ingest replicas","jsonPath":".status.components.ingest.replicas"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","priority":1,"jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Lag","type":"integer","priority":1,"description":"ingest consumer lag","jsonPath":".status.autoscaling.totalLag"}"#,
    printcolumn = r#"{"name":"Mode","type":"string","priority":1,"description":"ingest autoscaling mode","jsonPath":".spec.ingest.autoscaling.mode"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct PanopticonSpec {
    /// The `panopticon` image every component runs.
    #[serde(default)]
    pub image: ImageSpec,
    pub elasticsearch: ElasticsearchSpec,
    pub kafka: KafkaSpec,
    /// The query cache. Without it, query answers every call from Elasticsearch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis: Option<RedisSpec>,
    #[serde(default)]
    pub ingest: IngestSpec,
    #[serde(default)]
    pub rollup: RollupSpec,
    #[serde(default)]
    pub query: QuerySpec,
    #[serde(default)]
    pub alert: AlertSpec,
    /// Stop reconciling: children, Elasticsearch and Kafka are left as they are until this is
    /// false again (status says `Paused`).
    #[serde(default)]
    pub paused: bool,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageSpec {
    #[serde(default = "default_repository")]
    #[schemars(length(min = 1))]
    pub repository: String,
    /// Defaults to the operator's own version.
    #[serde(default = "default_tag")]
    #[schemars(length(min = 1))]
    pub tag: String,
    #[serde(default)]
    pub pull_policy: PullPolicy,
    /// Secrets (in the resource's namespace) to pull the image with.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pull_secrets: Vec<LocalObjectName>,
}

impl Default for ImageSpec {
    fn default() -> Self {
        Self {
            repository: default_repository(),
            tag: default_tag(),
            pull_policy: PullPolicy::default(),
            pull_secrets: Vec::new(),
        }
    }
}

fn default_repository() -> String {
    "ghcr.io/panopticon-io/panopticon".to_owned()
}

fn default_tag() -> String {
    env!("CARGO_PKG_VERSION").to_owned()
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum PullPolicy {
    Always,
    #[default]
    IfNotPresent,
    Never,
}

impl PullPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            PullPolicy::Always => "Always",
            PullPolicy::IfNotPresent => "IfNotPresent",
            PullPolicy::Never => "Never",
        }
    }
}

/// A Secret in the resource's namespace, by name.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct LocalObjectName {
    #[schemars(length(min = 1))]
    pub name: String,
}

/// One key of a Secret in the resource's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct SecretKey {
    #[schemars(length(min = 1))]
    pub name: String,
    #[schemars(length(min = 1))]
    pub key: String,
}

/// What happens to external state (Elasticsearch data, Kafka topics) when the resource is
/// deleted.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum DeletionPolicy {
    /// Keep it (the default): deleting the resource never deletes data.
    #[default]
    Retain,
    /// Delete it. The resource then carries a finalizer until the deletion succeeded.
    Delete,
}

// ---------------------------------------------------------------- Elasticsearch

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ElasticsearchSpec {
    /// Base URL, `http://` or `https://`.
    #[x_kube(validation = Rule::new("self.startsWith('http://') || self.startsWith('https://')").message("must be an http:// or https:// URL"))]
    pub url: String,
    /// Which engine to expect; `Auto` detects it.
    #[serde(default)]
    pub flavour: EsFlavour,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<EsCredentials>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSpec>,
    #[serde(default)]
    pub streams: StreamsSpec,
    #[serde(default)]
    pub rollover: RolloverSpec,
    /// `index.number_of_replicas` of every index Panopticon creates.
    #[serde(default = "index_replicas")]
    #[schemars(range(min = 0, max = 10))]
    pub replicas: u32,
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum EsFlavour {
    #[default]
    Auto,
    Elasticsearch,
    OpenSearch,
}

/// Basic auth or an API key, never both.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.basic) != has(self.apiKey)").message("set exactly one of basic and apiKey"))]
pub struct EsCredentials {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic: Option<BasicAuth>,
    /// The Secret key holding the API key (`id:key` base64, as Elasticsearch issues it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<SecretKey>,
}

/// A Secret with a user name and a password.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BasicAuth {
    #[schemars(length(min = 1))]
    pub secret_name: String,
    #[serde(default = "username_key")]
    pub username_key: String,
    #[serde(default = "password_key")]
    pub password_key: String,
}

fn username_key() -> String {
    "username".to_owned()
}

fn password_key() -> String {
    "password".to_owned()
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TlsSpec {
    /// The PEM CA certificate that signed the server's certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret: Option<SecretKey>,
    /// Verify the server certificate. Turning it off is reported as a warning.
    #[serde(default = "yes")]
    pub verify: bool,
}

/// Data streams: their names (those the dashboard reads by default), and how long each keeps
/// its data.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct StreamsSpec {
    #[serde(default = "logs_stream")]
    pub logs: StreamSpec,
    #[serde(default = "traces_stream")]
    pub traces: StreamSpec,
    #[serde(default = "metrics_stream")]
    pub metrics: StreamSpec,
}

impl Default for StreamsSpec {
    fn default() -> Self {
        Self {
            logs: logs_stream(),
            traces: traces_stream(),
            metrics: metrics_stream(),
        }
    }
}

fn logs_stream() -> StreamSpec {
    StreamSpec::new(declared(&vars::ELASTICSEARCH_APM_LOG_STREAM), "14d")
}

fn traces_stream() -> StreamSpec {
    StreamSpec::new(declared(&vars::ELASTICSEARCH_APM_SPAN_STREAM), "7d")
}

fn metrics_stream() -> StreamSpec {
    StreamSpec::new(declared(&vars::ELASTICSEARCH_APM_ROLLUP_STREAM), "90d")
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct StreamSpec {
    /// Lower case, without spaces or `\/*?"<>|,#:`, not starting with `-_+.`.
    #[schemars(regex(pattern = r"^[a-z0-9][a-z0-9_.+-]{0,254}$"), length(max = 255))]
    pub name: String,
    /// How long data is kept, e.g. `14d`, `36h`.
    #[schemars(regex(pattern = r"^[1-9][0-9]*(d|h|m)$"))]
    pub retention: String,
}

impl StreamSpec {
    fn new(name: String, retention: &str) -> Self {
        Self {
            name,
            retention: retention.to_owned(),
        }
    }
}

/// When a data stream rolls over to a new backing index (whichever comes first).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloverSpec {
    #[serde(default = "max_shard_size")]
    #[schemars(regex(pattern = r"^[1-9][0-9]*(gb|mb|tb)$"))]
    pub max_primary_shard_size: String,
    #[serde(default = "max_age")]
    #[schemars(regex(pattern = r"^[1-9][0-9]*(d|h|m)$"))]
    pub max_age: String,
}

impl Default for RolloverSpec {
    fn default() -> Self {
        Self {
            max_primary_shard_size: max_shard_size(),
            max_age: max_age(),
        }
    }
}

fn max_shard_size() -> String {
    "50gb".to_owned()
}

fn max_age() -> String {
    "1d".to_owned()
}

// ---------------------------------------------------------------- Kafka

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KafkaSpec {
    /// `host:port[,host:port…]`.
    #[schemars(length(min = 1))]
    pub bootstrap_servers: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sasl: Option<SaslSpec>,
    #[serde(default)]
    pub topics: TopicsSpec,
    /// Create the topics, raise their partitions and set their retention. Off: they must
    /// exist, and the operator only checks them.
    #[serde(default = "yes")]
    pub manage_topics: bool,
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SaslSpec {
    pub mechanism: SaslMechanismSpec,
    /// A Secret with the user name and the password.
    #[schemars(length(min = 1))]
    pub secret_name: String,
    #[serde(default = "username_key")]
    pub username_key: String,
    #[serde(default = "password_key")]
    pub password_key: String,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum SaslMechanismSpec {
    #[serde(rename = "PLAIN")]
    Plain,
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TopicsSpec {
    #[serde(default = "logs_topic")]
    pub logs: TopicSpec,
    #[serde(default = "spans_topic")]
    pub spans: TopicSpec,
    /// ERROR logs that ingest forwards and alert pushes to browsers.
    #[serde(default = "errors_topic")]
    pub errors: TopicSpec,
    /// Records ingest could not index, with the reason.
    #[serde(default = "dead_letter_topic")]
    pub dead_letter: TopicSpec,
}

impl Default for TopicsSpec {
    fn default() -> Self {
        Self {
            logs: logs_topic(),
            spans: spans_topic(),
            errors: errors_topic(),
            dead_letter: dead_letter_topic(),
        }
    }
}

fn logs_topic() -> TopicSpec {
    TopicSpec::new(
        &vars::KAFKA_APM_LOG_TOPIC,
        &vars::KAFKA_APM_LOG_TOPIC_PARTITIONS,
        "3d",
    )
}

fn spans_topic() -> TopicSpec {
    TopicSpec::new(
        &vars::KAFKA_APM_SPAN_TOPIC,
        &vars::KAFKA_APM_SPAN_TOPIC_PARTITIONS,
        "3d",
    )
}

fn errors_topic() -> TopicSpec {
    TopicSpec::new(
        &vars::KAFKA_APM_LOG_ERROR_TOPIC,
        &vars::KAFKA_APM_LOG_ERROR_TOPIC_PARTITIONS,
        "1d",
    )
}

fn dead_letter_topic() -> TopicSpec {
    TopicSpec::new(
        &vars::KAFKA_APM_DLQ_TOPIC,
        &vars::KAFKA_APM_DLQ_TOPIC_PARTITIONS,
        "14d",
    )
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TopicSpec {
    #[schemars(regex(pattern = r"^[a-zA-Z0-9._-]{1,249}$"))]
    pub name: String,
    /// Raising it adds partitions; Kafka cannot remove them, so lowering it is refused.
    #[schemars(range(min = 1, max = 10000))]
    #[x_kube(validation = Rule::new("self >= oldSelf").message("partitions cannot be decreased (Kafka cannot remove partitions)"))]
    pub partitions: i32,
    /// Unset: the brokers' `default.replication.factor`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 32))]
    pub replication_factor: Option<i32>,
    /// `retention.ms` of the topic, e.g. `3d`, `12h`, `30m`.
    #[schemars(regex(pattern = r"^[1-9][0-9]*(d|h|m)$"))]
    pub retention: String,
}

impl TopicSpec {
    /// The topic the components read from `name` and create with `partitions` when they run
    /// without the operator (unset replication: the brokers' default, as theirs).
    fn new(name: &Var, partitions: &Var, retention: &str) -> Self {
        Self {
            name: declared(name),
            partitions: partitions.typed_default(),
            replication_factor: None,
            retention: retention.to_owned(),
        }
    }
}

// ---------------------------------------------------------------- Redis

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RedisSpec {
    /// `redis://host:port[/db]` or `rediss://…`, without credentials.
    #[x_kube(validation = Rule::new("self.startsWith('redis://') || self.startsWith('rediss://')").message("must be a redis:// or rediss:// URL"))]
    #[x_kube(validation = Rule::new("!self.contains('@')").message("must not carry credentials; use passwordSecret"))]
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret: Option<SecretKey>,
}

// ---------------------------------------------------------------- components

/// How a component's pods run: replicas, resources and scheduling.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodSpecOverrides {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topology_spread_constraints: Vec<TopologySpreadConstraint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,
    /// Replaces the restricted default (non-root, RuntimeDefault seccomp).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_context: Option<PodSecurityContext>,
}

/// A Service in front of a component.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    #[serde(default, rename = "type")]
    pub type_: ServiceType,
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum ServiceType {
    #[default]
    ClusterIP,
    NodePort,
    LoadBalancer,
}

impl ServiceType {
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceType::ClusterIP => "ClusterIP",
            ServiceType::NodePort => "NodePort",
            ServiceType::LoadBalancer => "LoadBalancer",
        }
    }
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct IngestSpec {
    /// Ignored while autoscaling is on.
    #[serde(default = "one_i32")]
    #[schemars(range(min = 0, max = 1000))]
    pub replicas: i32,
    #[serde(default, flatten)]
    pub pod: PodSpecOverrides,
    /// The Kafka consumer group; the autoscaler reads its lag.
    #[serde(default = "consumer_group")]
    #[schemars(length(min = 1))]
    pub consumer_group: String,
    /// Documents per `_bulk` request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100000))]
    pub bulk_batch_size: Option<u32>,
    /// Bytes per `_bulk` request, in MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub bulk_batch_mb: Option<u32>,
    /// Longest wait before a partial batch is sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 60000))]
    pub bulk_flush_interval_ms: Option<u32>,
    /// `_bulk` requests in flight per replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 64))]
    pub bulk_max_parallel_flushes: Option<u32>,
    #[serde(default)]
    pub autoscaling: AutoscalingSpec,
}

impl Default for IngestSpec {
    fn default() -> Self {
        Self {
            replicas: 1,
            pod: PodSpecOverrides::default(),
            consumer_group: consumer_group(),
            bulk_batch_size: None,
            bulk_batch_mb: None,
            bulk_flush_interval_ms: None,
            bulk_max_parallel_flushes: None,
            autoscaling: AutoscalingSpec::default(),
        }
    }
}

fn consumer_group() -> String {
    declared(&vars::KAFKA_CONSUMER_GROUP)
}

/// Ingest replicas from Kafka consumer lag (KEDA's formula; see the autoscaler).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.minReplicas <= self.maxReplicas").message("minReplicas must not exceed maxReplicas"))]
pub struct AutoscalingSpec {
    #[serde(default)]
    pub mode: AutoscalingMode,
    #[serde(default = "one_i32")]
    #[schemars(range(min = 0, max = 1000))]
    pub min_replicas: i32,
    #[serde(default = "ten")]
    #[schemars(range(min = 1, max = 1000))]
    pub max_replicas: i32,
    /// Target lag per replica.
    #[serde(default = "lag_threshold")]
    #[schemars(range(min = 1))]
    pub lag_threshold: i64,
    /// Lag above which a resource at zero replicas gets one.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub activation_lag_threshold: i64,
    #[serde(default = "poll_interval")]
    #[schemars(range(min = 1, max = 3600))]
    pub poll_interval_seconds: i32,
    /// A lower recommendation must hold this long before replicas go down.
    #[serde(default = "stabilization")]
    #[schemars(range(min = 0, max = 3600))]
    pub scale_down_stabilization_seconds: i32,
}

impl Default for AutoscalingSpec {
    fn default() -> Self {
        Self {
            mode: AutoscalingMode::default(),
            min_replicas: 1,
            max_replicas: ten(),
            lag_threshold: lag_threshold(),
            activation_lag_threshold: 0,
            poll_interval_seconds: poll_interval(),
            scale_down_stabilization_seconds: stabilization(),
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AutoscalingMode {
    /// Replicas come from `ingest.replicas`.
    #[default]
    None,
    /// The operator scales ingest itself.
    Builtin,
    /// The operator emits a KEDA ScaledObject.
    Keda,
}

fn ten() -> i32 {
    10
}

fn lag_threshold() -> i64 {
    10_000
}

fn poll_interval() -> i32 {
    10
}

fn stabilization() -> i32 {
    300
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RollupSpec {
    /// One replica works at a time (Lease election); more are warm standbys.
    #[serde(default = "one_i32")]
    #[schemars(range(min = 0, max = 10))]
    pub replicas: i32,
    #[serde(default, flatten)]
    pub pod: PodSpecOverrides,
    /// How long after a minute closes late spans are still counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 3600))]
    pub lateness_seconds: Option<u32>,
    /// How often closed windows are looked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 100, max = 600000))]
    pub poll_interval_ms: Option<u32>,
}

impl Default for RollupSpec {
    fn default() -> Self {
        Self {
            replicas: 1,
            pod: PodSpecOverrides::default(),
            lateness_seconds: None,
            poll_interval_ms: None,
        }
    }
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct QuerySpec {
    #[serde(default = "one_i32")]
    #[schemars(range(min = 0, max = 1000))]
    pub replicas: i32,
    #[serde(default, flatten)]
    pub pod: PodSpecOverrides,
    #[serde(default = "query_service")]
    pub service: ServiceSpec,
    /// Browser origins allowed to call the API (`*` for any).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(validation = Rule::new("self.all(o, o == '*' || o.startsWith('http://') || o.startsWith('https://'))").message("each origin must be * or an http(s):// origin"))]
    pub cors_origins: Vec<String>,
    /// A Secret key holding bearer tokens, one per line. Unset: no authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_token_secret: Option<SecretKey>,
    /// Lifetime of cached metric series answers; 0 turns their cache off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 86400))]
    pub metrics_cache_ttl_seconds: Option<u32>,
    /// Lifetime of the other cached answers; 0 turns their cache off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 86400))]
    pub query_cache_ttl_seconds: Option<u32>,
}

impl Default for QuerySpec {
    fn default() -> Self {
        Self {
            replicas: 1,
            pod: PodSpecOverrides::default(),
            service: query_service(),
            cors_origins: Vec::new(),
            auth_token_secret: None,
            metrics_cache_ttl_seconds: None,
            query_cache_ttl_seconds: None,
        }
    }
}

fn query_service() -> ServiceSpec {
    ServiceSpec {
        type_: ServiceType::ClusterIP,
        port: vars::PORT.typed_default(),
    }
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AlertSpec {
    #[serde(default = "one_i32")]
    #[schemars(range(min = 0, max = 1000))]
    pub replicas: i32,
    #[serde(default, flatten)]
    pub pod: PodSpecOverrides,
    #[serde(default = "alert_service")]
    pub service: ServiceSpec,
    /// Browser origins allowed to open the live feed (`*` for any). Empty: same origin only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(validation = Rule::new("self.all(o, o == '*' || o.startsWith('http://') || o.startsWith('https://'))").message("each origin must be * or an http(s):// origin"))]
    pub cors_origins: Vec<String>,
    /// A Secret key holding bearer tokens, one per line. Unset: no authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_token_secret: Option<SecretKey>,
    /// Recent errors kept for clients that ask for a replay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100000))]
    pub replay_size: Option<u32>,
    /// Events queued per client before it is told it missed some.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100000))]
    pub client_queue: Option<u32>,
}

impl Default for AlertSpec {
    fn default() -> Self {
        Self {
            replicas: 1,
            pod: PodSpecOverrides::default(),
            service: alert_service(),
            cors_origins: Vec::new(),
            auth_token_secret: None,
            replay_size: None,
            client_queue: None,
        }
    }
}

fn alert_service() -> ServiceSpec {
    ServiceSpec {
        type_: ServiceType::ClusterIP,
        port: vars::ERROR_STREAM_PORT.typed_default(),
    }
}

fn index_replicas() -> u32 {
    vars::ELASTICSEARCH_INDEX_REPLICAS.typed_default()
}

/// The default a component applies to `var`: where the schema and a component share a
/// default, it is the variable's declaration.
fn declared(var: &Var) -> String {
    var.typed_default()
}

fn one_i32() -> i32 {
    1
}

fn yes() -> bool {
    true
}

// ---------------------------------------------------------------- status

/// What the operator observed. Conditions follow `metav1.Condition`; `Ready` is the summary.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PanopticonStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default)]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    #[serde(default)]
    pub components: ComponentsStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elasticsearch: Option<ElasticsearchStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<AutoscalingStatus>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct ComponentsStatus {
    #[serde(default)]
    pub ingest: ComponentStatus,
    #[serde(default)]
    pub rollup: ComponentStatus,
    #[serde(default)]
    pub query: ComponentStatus,
    #[serde(default)]
    pub alert: ComponentStatus,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComponentStatus {
    pub desired_replicas: i32,
    pub ready_replicas: i32,
    pub updated_replicas: i32,
    /// `ready/desired`, for printer columns.
    pub replicas: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct ElasticsearchStatus {
    /// `Elasticsearch` or `OpenSearch`, as detected.
    pub flavour: String,
    pub version: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AutoscalingStatus {
    pub mode: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_lag: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitions: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_replicas: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_replicas: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scale_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scale_reason: Option<String>,
}

/// Pod fields whose schemas are Kubernetes' own (`Affinity`, `Toleration`, …).
const EMBEDDED_POD_FIELDS: [&str; 5] = [
    "affinity",
    "tolerations",
    "topologySpreadConstraints",
    "securityContext",
    "resources",
];

/// The CustomResourceDefinition. Kubernetes' own pod types keep their full structure (so the
/// API server validates them) but lose their descriptions: with them the CRD is 250 kB of
/// JSON, over the 256 kB annotation that client-side `kubectl apply` writes; without them it
/// is about 60 kB. `kubectl explain` documents those fields under `Pod` anyway.
pub fn definition()
-> k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition {
    use kube::CustomResourceExt as _;
    let mut crd = Panopticon::crd();
    for version in &mut crd.spec.versions {
        let Some(spec) = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
            .and_then(|s| s.properties.as_mut())
            .and_then(|p| p.get_mut("spec"))
            .and_then(|s| s.properties.as_mut())
        else {
            continue;
        };
        for component in ["ingest", "rollup", "query", "alert"] {
            let Some(fields) = spec.get_mut(component).and_then(|c| c.properties.as_mut()) else {
                continue;
            };
            for field in EMBEDDED_POD_FIELDS {
                if let Some(schema) = fields.get_mut(field) {
                    strip_nested_descriptions(schema);
                }
            }
        }
    }
    crd
}

/// Removes the descriptions below `schema` (its own stays).
fn strip_nested_descriptions(
    schema: &mut k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaProps,
) {
    fn strip(
        s: &mut k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaProps,
    ) {
        s.description = None;
        strip_children(s);
    }
    fn strip_children(
        s: &mut k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaProps,
    ) {
        use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
            JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
        };
        for p in s.properties.iter_mut().flat_map(|m| m.values_mut()) {
            strip(p);
        }
        match s.items.as_mut() {
            Some(JSONSchemaPropsOrArray::Schema(p)) => strip(p),
            Some(JSONSchemaPropsOrArray::Schemas(ps)) => ps.iter_mut().for_each(strip),
            None => {}
        }
        if let Some(JSONSchemaPropsOrBool::Schema(p)) = s.additional_properties.as_mut() {
            strip(p);
        }
        for list in [&mut s.all_of, &mut s.any_of, &mut s.one_of]
            .into_iter()
            .flatten()
        {
            list.iter_mut().for_each(strip);
        }
    }
    strip_children(schema);
}
