//! From a `Panopticon` spec to each component's configuration: the environment variables its
//! `panopticon_model::config` type reads (rendered into a ConfigMap), the Secret keys it reads
//! as `secretKeyRef` variables, and the Secret keys it reads as mounted files.
//!
//! The spec is turned into variables, read back through the component's own `from_env` (so the
//! operator and the component can never disagree about what is valid), and rendered in full by
//! `ToEnv`, defaults included. A value the component would refuse comes back as a
//! [`SpecError`] naming the spec field. Secret values never pass through here: only names.

use std::collections::BTreeMap;

use panopticon_model::config::var::{Reads, Secrecy, Var};
use panopticon_model::config::{
    AlertConfig, ConfigError, EnvSource, IngestConfig, QueryConfig, RollupConfig, ToEnv, vars,
};
use sha2::{Digest as _, Sha256};

use crate::crd::{Panopticon, PanopticonSpec, SaslMechanismSpec, SecretKey};

/// The four components.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Component {
    Ingest,
    Rollup,
    Query,
    Alert,
}

impl Component {
    pub const ALL: [Component; 4] = [
        Component::Ingest,
        Component::Rollup,
        Component::Query,
        Component::Alert,
    ];

    /// The `panopticon` subcommand, label value and name suffix.
    pub fn as_str(self) -> &'static str {
        match self {
            Component::Ingest => "ingest",
            Component::Rollup => "rollup",
            Component::Query => "query",
            Component::Alert => "alert",
        }
    }

    /// The variables the component reads, as declared.
    pub fn reads(self) -> &'static Reads {
        match self {
            Component::Ingest => &vars::INGEST,
            Component::Rollup => &vars::ROLLUP,
            Component::Query => &vars::QUERY,
            Component::Alert => &vars::ALERT,
        }
    }

    /// The port the component serves clients on (query's API, alert's live feed).
    pub fn serving_port(self) -> Option<i32> {
        match self {
            Component::Query => Some(QUERY_PORT),
            Component::Alert => Some(ALERT_PORT),
            Component::Ingest | Component::Rollup => None,
        }
    }
}

/// Container ports. The Service's port is the user's; these are fixed.
pub const QUERY_PORT: i32 = 3001;
pub const ALERT_PORT: i32 = 3010;
pub const ADMIN_PORT: i32 = 9464;

/// A spec value the component would refuse.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct SpecError {
    /// The field, as `spec.ingest.bulkBatchSize`.
    pub field: String,
    pub message: String,
}

/// A variable read from a Secret key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretEnv {
    pub var: &'static str,
    pub secret: SecretKey,
}

/// A Secret key mounted as a file; `var` holds its path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretFile {
    /// Volume name, unique in the pod.
    pub volume: &'static str,
    pub secret: SecretKey,
    /// Directory the key is mounted in (as a file named after the key).
    pub dir: &'static str,
    pub var: &'static str,
}

impl SecretFile {
    pub fn path(&self) -> String {
        format!("{}/{}", self.dir, self.secret.key)
    }
}

/// One component's configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    /// ConfigMap data: every variable the component reads, defaults included.
    pub config: BTreeMap<String, String>,
    pub secret_env: Vec<SecretEnv>,
    pub secret_files: Vec<SecretFile>,
}

impl Rendered {
    /// Changes whenever what the pods read changes (config, or which Secret keys they read),
    /// so a new value rolls them. Secret *values* are not hashed: rotating a Secret in place
    /// is picked up by restarting the pods.
    ///
    /// Variables the components act on only when they create topics or templates themselves
    /// ([`CREATION_ONLY`]) are not hashed either: the operator renders them for the record but
    /// creates topics and templates itself, so a change of partitions or replicas restarts no
    /// pod.
    pub fn hash(&self) -> String {
        let mut h = Sha256::new();
        let hashed = self
            .config
            .iter()
            .filter(|(k, _)| !CREATION_ONLY.iter().any(|v| v.name == k.as_str()));
        for (k, v) in hashed {
            h.update(k.as_bytes());
            h.update([0]);
            h.update(v.as_bytes());
            h.update([0]);
        }
        for s in &self.secret_env {
            h.update(format!("env:{}={}/{}", s.var, s.secret.name, s.secret.key).as_bytes());
            h.update([0]);
        }
        for f in &self.secret_files {
            h.update(format!("file:{}={}/{}", f.var, f.secret.name, f.secret.key).as_bytes());
            h.update([0]);
        }
        h.finalize()
            .iter()
            .take(8)
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// Read by the components only when `KAFKA_CREATE_TOPICS` or `ELASTICSEARCH_MANAGE_TEMPLATES`
/// is true, which the operator never renders.
const CREATION_ONLY: [&Var; 6] = [
    &vars::KAFKA_APM_LOG_TOPIC_PARTITIONS,
    &vars::KAFKA_APM_SPAN_TOPIC_PARTITIONS,
    &vars::KAFKA_APM_LOG_ERROR_TOPIC_PARTITIONS,
    &vars::KAFKA_APM_DLQ_TOPIC_PARTITIONS,
    &vars::KAFKA_TOPIC_REPLICATION_FACTOR,
    &vars::ELASTICSEARCH_INDEX_REPLICAS,
];

/// Whether `var` comes from a Secret (a secret or the user name next to it): never in a
/// ConfigMap.
fn from_secret(component: Component, var: &str) -> bool {
    component
        .reads()
        .find(var)
        .is_some_and(|v| v.secrecy != Secrecy::Plain)
}

/// What the spec sets: variable, value, and the spec field it came from.
struct Overrides {
    vars: Vec<(&'static str, String, String)>,
    secret_env: Vec<SecretEnv>,
    secret_files: Vec<SecretFile>,
}

impl Overrides {
    fn set(&mut self, var: &Var, value: impl ToString, field: impl Into<String>) {
        self.vars.push((var.name, value.to_string(), field.into()));
    }

    fn set_opt<T: ToString>(&mut self, var: &Var, value: Option<T>, field: &str) {
        if let Some(v) = value {
            self.set(var, v, field);
        }
    }

    fn field_of(&self, var: &str) -> String {
        self.vars
            .iter()
            .find(|(v, _, _)| var.split('/').any(|part| part == *v))
            .map(|(_, _, f)| f.clone())
            .unwrap_or_else(|| format!("spec (variable {var})"))
    }
}

/// Renders one component's configuration.
pub fn render(pano: &Panopticon, component: Component) -> Result<Rendered, SpecError> {
    let name = pano.metadata.name.as_deref().unwrap_or_default();
    let namespace = pano.metadata.namespace.as_deref().unwrap_or_default();
    let o = overrides(&pano.spec, component, name, namespace);
    // Secret-sourced variables are present while validating (a SASL mechanism needs a user
    // name) but never rendered.
    let placeholders: Vec<(&'static str, String)> = o
        .secret_env
        .iter()
        .map(|s| (s.var, "from-secret".to_owned()))
        .collect();
    let lookup = |var: &str| {
        o.vars
            .iter()
            .find(|(v, _, _)| *v == var)
            .map(|(_, value, _)| value.clone())
            .or_else(|| {
                placeholders
                    .iter()
                    .find(|(v, _)| *v == var)
                    .map(|(_, value)| value.clone())
            })
    };
    let env = EnvSource::from_fn(lookup);
    let refused = |e: ConfigError| SpecError {
        field: o.field_of(&e.var),
        message: format!("{} ({})", e.reason, e.var),
    };
    let rendered = match component {
        Component::Ingest => IngestConfig::from_env(&env).map_err(refused)?.to_env(),
        Component::Rollup => RollupConfig::from_env(&env).map_err(refused)?.to_env(),
        Component::Query => QueryConfig::from_env(&env).map_err(refused)?.to_env(),
        Component::Alert => AlertConfig::from_env(&env).map_err(refused)?.to_env(),
    };
    let mut config: BTreeMap<String, String> = rendered
        .into_iter()
        .filter(|(var, _)| !from_secret(component, var))
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    // Variables a component reads outside its config type (paths of mounted files).
    for f in &o.secret_files {
        config.insert(f.var.to_owned(), f.path());
    }
    Ok(Rendered {
        config,
        secret_env: o.secret_env,
        secret_files: o.secret_files,
    })
}

/// Where the operator takes each variable it sets from, for the configuration reference:
/// variable → the spec field (or the kind of Secret reference). Variables it does not set are
/// rendered with the component's default.
pub fn sources(pano: &Panopticon, component: Component) -> BTreeMap<&'static str, String> {
    let name = pano.metadata.name.as_deref().unwrap_or_default();
    let namespace = pano.metadata.namespace.as_deref().unwrap_or_default();
    let o = overrides(&pano.spec, component, name, namespace);
    let mut sources: BTreeMap<&'static str, String> = BTreeMap::new();
    for (var, _, field) in o.vars {
        sources.entry(var).or_insert(format!("`{field}`"));
    }
    for s in o.secret_env {
        sources.insert(s.var, "a Secret key (`secretKeyRef`)".to_owned());
    }
    for f in o.secret_files {
        sources.insert(
            f.var,
            format!("the path of a mounted Secret key (`{}`)", f.dir),
        );
    }
    sources
}

fn overrides(spec: &PanopticonSpec, component: Component, name: &str, ns: &str) -> Overrides {
    let mut o = Overrides {
        vars: Vec::new(),
        secret_env: Vec::new(),
        secret_files: Vec::new(),
    };
    let uses_es = component != Component::Alert;
    let uses_kafka = matches!(component, Component::Ingest | Component::Alert);
    if uses_es {
        elasticsearch(spec, &mut o);
    }
    if uses_kafka {
        kafka(spec, &mut o);
    }
    let topics = &spec.kafka.topics;
    match component {
        Component::Ingest => {
            let i = &spec.ingest;
            o.set(
                &vars::KAFKA_APM_LOG_TOPIC,
                &topics.logs.name,
                "spec.kafka.topics.logs.name",
            );
            o.set(
                &vars::KAFKA_APM_SPAN_TOPIC,
                &topics.spans.name,
                "spec.kafka.topics.spans.name",
            );
            o.set(
                &vars::KAFKA_APM_LOG_ERROR_TOPIC,
                &topics.errors.name,
                "spec.kafka.topics.errors.name",
            );
            o.set(
                &vars::KAFKA_APM_DLQ_TOPIC,
                &topics.dead_letter.name,
                "spec.kafka.topics.deadLetter.name",
            );
            o.set(
                &vars::KAFKA_CONSUMER_GROUP,
                &i.consumer_group,
                "spec.ingest.consumerGroup",
            );
            // The operator owns the topics (or the user does, with manageTopics off). The
            // partitions and replication are rendered all the same, so the ConfigMap says what
            // a standalone ingest would create.
            o.set(&vars::KAFKA_CREATE_TOPICS, false, "spec.kafka.manageTopics");
            for (var, topic, field) in [
                (&vars::KAFKA_APM_LOG_TOPIC_PARTITIONS, &topics.logs, "logs"),
                (
                    &vars::KAFKA_APM_SPAN_TOPIC_PARTITIONS,
                    &topics.spans,
                    "spans",
                ),
                (
                    &vars::KAFKA_APM_LOG_ERROR_TOPIC_PARTITIONS,
                    &topics.errors,
                    "errors",
                ),
                (
                    &vars::KAFKA_APM_DLQ_TOPIC_PARTITIONS,
                    &topics.dead_letter,
                    "deadLetter",
                ),
            ] {
                o.set(
                    var,
                    topic.partitions,
                    format!("spec.kafka.topics.{field}.partitions"),
                );
            }
            // One variable for the four topics: rendered when they agree.
            let factors = [
                &topics.logs,
                &topics.spans,
                &topics.errors,
                &topics.dead_letter,
            ]
            .map(|t| t.replication_factor);
            if factors.iter().all(|f| *f == factors[0]) {
                o.set_opt(
                    &vars::KAFKA_TOPIC_REPLICATION_FACTOR,
                    factors[0],
                    "spec.kafka.topics.logs.replicationFactor",
                );
            }
            o.set_opt(
                &vars::BULK_BATCH_SIZE,
                i.bulk_batch_size,
                "spec.ingest.bulkBatchSize",
            );
            o.set_opt(
                &vars::BULK_BATCH_BYTES_MB,
                i.bulk_batch_mb,
                "spec.ingest.bulkBatchMb",
            );
            o.set_opt(
                &vars::BULK_FLUSH_INTERVAL_MS,
                i.bulk_flush_interval_ms,
                "spec.ingest.bulkFlushIntervalMs",
            );
            o.set_opt(
                &vars::BULK_MAX_PARALLEL_FLUSHES,
                i.bulk_max_parallel_flushes,
                "spec.ingest.bulkMaxParallelFlushes",
            );
        }
        Component::Rollup => {
            let r = &spec.rollup;
            o.set(
                &vars::ROLLUP_LEADER_ELECTION,
                "lease",
                "spec.rollup.replicas",
            );
            o.set(
                &vars::ROLLUP_LEASE_NAME,
                format!("{name}-rollup"),
                "metadata.name",
            );
            o.set(&vars::ROLLUP_LEASE_NAMESPACE, ns, "metadata.namespace");
            o.set_opt(
                &vars::ROLLUP_LATENESS_SECONDS,
                r.lateness_seconds,
                "spec.rollup.latenessSeconds",
            );
            o.set_opt(
                &vars::ROLLUP_POLL_INTERVAL_MS,
                r.poll_interval_ms,
                "spec.rollup.pollIntervalMs",
            );
        }
        Component::Query => {
            let q = &spec.query;
            o.set(&vars::PORT, QUERY_PORT, "spec.query.service.port");
            // Resources sharing one Redis must not answer from each other's cache.
            o.set(
                &vars::QUERY_CACHE_PREFIX,
                format!("apm:{ns}:{name}:query"),
                "metadata.name",
            );
            o.set(
                &vars::METRICS_CACHE_PREFIX,
                format!("apm:{ns}:{name}:metrics:v1"),
                "metadata.name",
            );
            if !q.cors_origins.is_empty() {
                o.set(
                    &vars::CORS_ALLOWED_ORIGINS,
                    q.cors_origins.join(","),
                    "spec.query.corsOrigins",
                );
            }
            o.set_opt(
                &vars::METRICS_CACHE_TTL_SECONDS,
                q.metrics_cache_ttl_seconds,
                "spec.query.metricsCacheTtlSeconds",
            );
            o.set_opt(
                &vars::QUERY_CACHE_TTL_SECONDS,
                q.query_cache_ttl_seconds,
                "spec.query.queryCacheTtlSeconds",
            );
            if let Some(redis) = &spec.redis {
                o.set(&vars::REDIS_URL, &redis.url, "spec.redis.url");
                if let Some(secret) = &redis.password_secret {
                    o.secret_env.push(SecretEnv {
                        var: vars::REDIS_PASSWORD.name,
                        secret: secret.clone(),
                    });
                }
            }
            if let Some(secret) = &q.auth_token_secret {
                o.secret_files.push(SecretFile {
                    volume: "auth-tokens",
                    secret: secret.clone(),
                    dir: "/etc/panopticon/auth-tokens",
                    var: vars::QUERY_AUTH_TOKENS_FILE.name,
                });
            }
        }
        Component::Alert => {
            let a = &spec.alert;
            o.set(
                &vars::ERROR_STREAM_PORT,
                ALERT_PORT,
                "spec.alert.service.port",
            );
            o.set(
                &vars::KAFKA_APM_LOG_ERROR_TOPIC,
                &topics.errors.name,
                "spec.kafka.topics.errors.name",
            );
            if !a.cors_origins.is_empty() {
                o.set(
                    &vars::ERROR_STREAM_WS_ORIGINS,
                    a.cors_origins.join(","),
                    "spec.alert.corsOrigins",
                );
            }
            o.set_opt(
                &vars::ERROR_STREAM_REPLAY_SIZE,
                a.replay_size,
                "spec.alert.replaySize",
            );
            o.set_opt(
                &vars::ERROR_STREAM_CLIENT_QUEUE,
                a.client_queue,
                "spec.alert.clientQueue",
            );
            if let Some(secret) = &a.auth_token_secret {
                o.secret_files.push(SecretFile {
                    volume: "auth-tokens",
                    secret: secret.clone(),
                    dir: "/etc/panopticon/auth-tokens",
                    var: vars::ERROR_STREAM_AUTH_TOKENS_FILE.name,
                });
            }
        }
    }
    o
}

fn elasticsearch(spec: &PanopticonSpec, o: &mut Overrides) {
    let es = &spec.elasticsearch;
    o.set(&vars::ELASTICSEARCH_NODE, &es.url, "spec.elasticsearch.url");
    o.set(
        &vars::ELASTICSEARCH_INDEX_REPLICAS,
        es.replicas,
        "spec.elasticsearch.replicas",
    );
    // The operator owns templates, lifecycle and data streams.
    o.set(
        &vars::ELASTICSEARCH_MANAGE_TEMPLATES,
        false,
        "spec.elasticsearch",
    );
    let streams = &es.streams;
    for (var, value, field) in [
        (
            &vars::ELASTICSEARCH_APM_LOG_STREAM,
            &streams.logs.name,
            "spec.elasticsearch.streams.logs.name",
        ),
        (
            &vars::ELASTICSEARCH_APM_SPAN_STREAM,
            &streams.traces.name,
            "spec.elasticsearch.streams.traces.name",
        ),
        (
            &vars::ELASTICSEARCH_APM_ROLLUP_STREAM,
            &streams.metrics.name,
            "spec.elasticsearch.streams.metrics.name",
        ),
    ] {
        o.set(var, value, field);
    }
    if let Some(tls) = &es.tls {
        o.set(
            &vars::OPENSEARCH_REJECT_UNAUTHORIZED,
            tls.verify,
            "spec.elasticsearch.tls.verify",
        );
        if let Some(ca) = &tls.ca_secret {
            o.secret_files.push(SecretFile {
                volume: "elasticsearch-ca",
                secret: ca.clone(),
                dir: "/etc/panopticon/elasticsearch-ca",
                var: vars::ELASTICSEARCH_CA_FILE.name,
            });
        }
    }
    if let Some(credentials) = &es.credentials {
        if let Some(basic) = &credentials.basic {
            o.secret_env.push(SecretEnv {
                var: vars::ELASTICSEARCH_USERNAME.name,
                secret: SecretKey {
                    name: basic.secret_name.clone(),
                    key: basic.username_key.clone(),
                },
            });
            o.secret_env.push(SecretEnv {
                var: vars::ELASTICSEARCH_PASSWORD.name,
                secret: SecretKey {
                    name: basic.secret_name.clone(),
                    key: basic.password_key.clone(),
                },
            });
        }
        if let Some(key) = &credentials.api_key {
            o.secret_env.push(SecretEnv {
                var: vars::ELASTICSEARCH_API_KEY.name,
                secret: key.clone(),
            });
        }
    }
}

fn kafka(spec: &PanopticonSpec, o: &mut Overrides) {
    let k = &spec.kafka;
    o.set(
        &vars::KAFKA_BROKERS,
        &k.bootstrap_servers,
        "spec.kafka.bootstrapServers",
    );
    if let Some(tls) = &k.tls {
        o.set(&vars::KAFKA_SSL, true, "spec.kafka.tls");
        o.set(
            &vars::KAFKA_SSL_REJECT_UNAUTHORIZED,
            tls.verify,
            "spec.kafka.tls.verify",
        );
        if let Some(ca) = &tls.ca_secret {
            o.secret_files.push(SecretFile {
                volume: "kafka-ca",
                secret: ca.clone(),
                dir: "/etc/panopticon/kafka-ca",
                var: vars::KAFKA_SSL_CA_FILE.name,
            });
        }
    }
    if let Some(sasl) = &k.sasl {
        let mechanism = match sasl.mechanism {
            SaslMechanismSpec::Plain => "plain",
            SaslMechanismSpec::ScramSha256 => "scram-sha-256",
            SaslMechanismSpec::ScramSha512 => "scram-sha-512",
        };
        o.set(
            &vars::KAFKA_SASL_MECHANISM,
            mechanism,
            "spec.kafka.sasl.mechanism",
        );
        for (var, key) in [
            (&vars::KAFKA_SASL_USERNAME, &sasl.username_key),
            (&vars::KAFKA_SASL_PASSWORD, &sasl.password_key),
        ] {
            o.secret_env.push(SecretEnv {
                var: var.name,
                secret: SecretKey {
                    name: sasl.secret_name.clone(),
                    key: key.clone(),
                },
            });
        }
    }
}

/// `14d` / `36h` / `30m` (the schema's pattern) in milliseconds.
pub fn duration_ms(value: &str) -> Option<i64> {
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    let n: i64 = digits.parse().ok()?;
    let unit_ms = match unit {
        "d" => 86_400_000,
        "h" => 3_600_000,
        "m" => 60_000,
        _ => return None,
    };
    n.checked_mul(unit_ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{BasicAuth, EsCredentials, SaslSpec, SecretKey};

    fn pano(spec: serde_json::Value) -> Panopticon {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "panopticon.io/v1alpha1", "kind": "Panopticon",
            "metadata": {"name": "apm", "namespace": "obs"},
            "spec": spec
        }))
        .unwrap()
    }

    fn minimal() -> Panopticon {
        pano(serde_json::json!({
            "elasticsearch": {"url": "http://es:9200"},
            "kafka": {"bootstrapServers": "k:9092"}
        }))
    }

    #[test]
    fn every_component_gets_its_full_configuration() {
        let p = minimal();
        let ingest = render(&p, Component::Ingest).unwrap();
        let c = &ingest.config;
        assert_eq!(c["ELASTICSEARCH_NODE"], "http://es:9200");
        assert_eq!(c["KAFKA_BROKERS"], "k:9092");
        assert_eq!(c["KAFKA_APM_LOG_TOPIC"], "apm.logs");
        assert_eq!(c["KAFKA_APM_DLQ_TOPIC"], "apm.dlq");
        assert_eq!(c["KAFKA_CONSUMER_GROUP"], "panopticon-ingest");
        assert_eq!(c["ELASTICSEARCH_MANAGE_TEMPLATES"], "false");
        assert_eq!(c["KAFKA_CREATE_TOPICS"], "false");
        // Defaults are rendered too, so the ConfigMap says everything the pod will use.
        assert!(c.contains_key("BULK_BATCH_SIZE"));
        let rollup = render(&p, Component::Rollup).unwrap();
        assert_eq!(rollup.config["ROLLUP_LEASE_NAME"], "apm-rollup");
        assert_eq!(rollup.config["ROLLUP_LEASE_NAMESPACE"], "obs");
        assert!(
            !rollup.config.contains_key("KAFKA_BROKERS"),
            "rollup reads no Kafka"
        );
        let alert = render(&p, Component::Alert).unwrap();
        assert_eq!(alert.config["KAFKA_APM_LOG_ERROR_TOPIC"], "apm.logs.error");
        assert!(!alert.config.contains_key("ELASTICSEARCH_NODE"));
        let query = render(&p, Component::Query).unwrap();
        assert_eq!(query.config["PORT"], QUERY_PORT.to_string());
        assert_eq!(query.config["QUERY_CACHE_PREFIX"], "apm:obs:apm:query");
        assert_eq!(
            query.config["METRICS_CACHE_PREFIX"],
            "apm:obs:apm:metrics:v1"
        );
    }

    #[test]
    fn credentials_are_references_never_values() {
        let mut p = minimal();
        p.spec.elasticsearch.credentials = Some(EsCredentials {
            basic: Some(BasicAuth {
                secret_name: "es".to_owned(),
                username_key: "user".to_owned(),
                password_key: "pass".to_owned(),
            }),
            api_key: None,
        });
        p.spec.kafka.sasl = Some(SaslSpec {
            mechanism: crate::crd::SaslMechanismSpec::ScramSha512,
            secret_name: "kafka".to_owned(),
            username_key: "username".to_owned(),
            password_key: "password".to_owned(),
        });
        let r = render(&p, Component::Ingest).unwrap();
        let vars: Vec<&str> = r.secret_env.iter().map(|s| s.var).collect();
        assert_eq!(
            vars,
            [
                "ELASTICSEARCH_USERNAME",
                "ELASTICSEARCH_PASSWORD",
                "KAFKA_SASL_USERNAME",
                "KAFKA_SASL_PASSWORD"
            ]
        );
        for var in Component::Ingest.reads().vars() {
            if var.secrecy != Secrecy::Plain {
                assert!(
                    !r.config.contains_key(var.name),
                    "{} in the ConfigMap",
                    var.name
                );
            }
        }
        assert!(r.config.values().all(|v| v != "from-secret"));
        assert_eq!(r.config["KAFKA_SASL_MECHANISM"], "scram-sha-512");
    }

    #[test]
    fn token_and_ca_files_are_mounted_and_their_paths_rendered() {
        let mut p = minimal();
        p.spec.query.auth_token_secret = Some(SecretKey {
            name: "tokens".to_owned(),
            key: "list".to_owned(),
        });
        p.spec.elasticsearch.tls = Some(crate::crd::TlsSpec {
            ca_secret: Some(SecretKey {
                name: "es-ca".to_owned(),
                key: "ca.crt".to_owned(),
            }),
            verify: true,
        });
        let r = render(&p, Component::Query).unwrap();
        assert_eq!(
            r.config["QUERY_AUTH_TOKENS_FILE"],
            "/etc/panopticon/auth-tokens/list"
        );
        assert_eq!(
            r.config["ELASTICSEARCH_CA_FILE"],
            "/etc/panopticon/elasticsearch-ca/ca.crt"
        );
        assert_eq!(r.secret_files.len(), 2);
    }

    #[test]
    fn a_value_the_component_refuses_names_the_spec_field() {
        let mut p = minimal();
        p.spec.kafka.topics.errors.name = "apm.logs".to_owned();
        let e = render(&p, Component::Ingest).unwrap_err();
        assert_eq!(e.field, "spec.kafka.topics.errors.name");
        assert!(e.message.contains("input topic"), "{e}");
        let mut p = minimal();
        p.spec.ingest.bulk_batch_mb = Some(100);
        let e = render(&p, Component::Ingest).unwrap_err();
        assert_eq!(e.field, "spec.ingest.bulkBatchMb", "{e}");
    }

    #[test]
    fn the_hash_follows_the_configuration() {
        let p = minimal();
        let a = render(&p, Component::Query).unwrap();
        assert_eq!(a.hash(), render(&p, Component::Query).unwrap().hash());
        let mut q = p.clone();
        q.spec.query.query_cache_ttl_seconds = Some(42);
        assert_ne!(a.hash(), render(&q, Component::Query).unwrap().hash());
        // A change elsewhere leaves query's pods alone.
        let mut i = p.clone();
        i.spec.ingest.bulk_batch_size = Some(10);
        assert_eq!(a.hash(), render(&i, Component::Query).unwrap().hash());
        // Partitions and replicas are the operator's to apply: the pods are left alone.
        let before = render(&p, Component::Ingest).unwrap();
        let mut t = p.clone();
        t.spec.kafka.topics.logs.partitions = 12;
        t.spec.elasticsearch.replicas = 2;
        let after = render(&t, Component::Ingest).unwrap();
        assert_ne!(before.config, after.config);
        assert_eq!(before.hash(), after.hash());
    }

    #[test]
    fn durations_in_milliseconds() {
        assert_eq!(duration_ms("3d"), Some(259_200_000));
        assert_eq!(duration_ms("12h"), Some(43_200_000));
        assert_eq!(duration_ms("30m"), Some(1_800_000));
        assert_eq!(duration_ms("3w"), None);
        assert_eq!(duration_ms(""), None);
    }

    fn full() -> Panopticon {
        crate::reference::every_option()
    }

    #[test]
    fn every_rendered_variable_is_declared_for_its_component() {
        for p in [minimal(), full()] {
            for c in Component::ALL {
                let r = render(&p, c).unwrap();
                let reads = c.reads();
                let names = r
                    .config
                    .keys()
                    .map(String::as_str)
                    .chain(r.secret_env.iter().map(|s| s.var))
                    .chain(r.secret_files.iter().map(|f| f.var));
                for name in names {
                    let var = reads
                        .find(name)
                        .unwrap_or_else(|| panic!("{c:?} renders {name}, which it does not read"));
                    if r.config.contains_key(name) {
                        assert_eq!(var.secrecy, Secrecy::Plain, "{name} in a ConfigMap");
                    }
                }
            }
        }
    }

    #[test]
    fn the_rendered_configuration_reads_back_as_what_was_rendered() {
        for p in [minimal(), full()] {
            for c in Component::ALL {
                let r = render(&p, c).unwrap();
                // Secret-sourced variables are present in the pod, with some value.
                let lookup = |name: &str| {
                    r.config.get(name).cloned().or_else(|| {
                        r.secret_env
                            .iter()
                            .any(|s| s.var == name)
                            .then(|| "from-secret".to_owned())
                    })
                };
                let env = EnvSource::from_fn(lookup);
                let again: BTreeMap<String, String> = match c {
                    Component::Ingest => IngestConfig::from_env(&env).unwrap().to_env(),
                    Component::Rollup => RollupConfig::from_env(&env).unwrap().to_env(),
                    Component::Query => QueryConfig::from_env(&env).unwrap().to_env(),
                    Component::Alert => AlertConfig::from_env(&env).unwrap().to_env(),
                }
                .into_iter()
                .filter(|(var, _)| !from_secret(c, var))
                .map(|(k, v)| (k.to_owned(), v))
                .collect();
                assert_eq!(again, r.config, "{c:?}");
            }
        }
    }

    #[test]
    fn topic_partitions_and_replicas_are_the_specs() {
        let r = render(&full(), Component::Ingest).unwrap();
        let c = &r.config;
        assert_eq!(c["KAFKA_APM_LOG_TOPIC_PARTITIONS"], "12");
        assert_eq!(c["KAFKA_APM_SPAN_TOPIC_PARTITIONS"], "9");
        assert_eq!(c["KAFKA_APM_LOG_ERROR_TOPIC_PARTITIONS"], "2");
        assert_eq!(c["KAFKA_APM_DLQ_TOPIC_PARTITIONS"], "1");
        assert_eq!(c["KAFKA_TOPIC_REPLICATION_FACTOR"], "3");
        assert_eq!(c["ELASTICSEARCH_INDEX_REPLICAS"], "2");
        // Topics that disagree on replication: the one variable is left to the brokers.
        let mut p = full();
        p.spec.kafka.topics.dead_letter.replication_factor = Some(1);
        let r = render(&p, Component::Ingest).unwrap();
        assert!(!r.config.contains_key("KAFKA_TOPIC_REPLICATION_FACTOR"));
        // The defaults are the components' own, so a standalone ingest creates the same.
        let r = render(&minimal(), Component::Ingest).unwrap();
        let standalone = IngestConfig::from_env(&EnvSource::from_pairs(&[])).unwrap();
        assert_eq!(
            r.config["KAFKA_APM_LOG_TOPIC_PARTITIONS"],
            standalone.new_topics.log_partitions.to_string()
        );
        assert_eq!(
            r.config["ELASTICSEARCH_INDEX_REPLICAS"],
            standalone.elasticsearch.index_replicas.to_string()
        );
    }
}
