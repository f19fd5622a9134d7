//! External state of a `Panopticon`: Elasticsearch/OpenSearch (templates, lifecycle, data
//! streams, through `panopticon_es::provision`) and Kafka topics (through
//! `panopticon_kafka::reconcile_topics`). Credentials are read from the referenced Secrets for
//! the duration of one call and never logged, stored in status or put in Events.
//!
//! Every call is bounded (10 s per Elasticsearch request, 10 s Kafka metadata/admin timeouts),
//! so a reconcile never waits long on an unreachable cluster: it reports the cause and the
//! controller retries with backoff.

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use panopticon_es::provision::{Lifecycle, ProvisionPlan, ProvisionReport};
use panopticon_es::{EsClient, EsSecrets};
use panopticon_kafka::{KafkaSecrets, TopicPlan, TopicsReport};
use panopticon_model::config::{ElasticsearchConfig, EnvSource, KafkaConfig, SaslMechanism, vars};
use secrecy::SecretString;

use crate::crd::{PanopticonSpec, SaslMechanismSpec, SecretKey};
use crate::render::duration_ms;

/// Why provisioning failed: a condition reason and a message a person can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub reason: &'static str,
    pub message: String,
}

impl Failure {
    fn new(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
        }
    }
}

/// Reads Secret keys of one namespace.
pub struct Secrets {
    api: Api<Secret>,
    namespace: String,
}

impl Secrets {
    pub fn new(client: kube::Client, namespace: &str) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_owned(),
        }
    }

    /// The value of one key; a missing Secret or key is a `SecretNotFound` failure naming both.
    pub async fn value(&self, key: &SecretKey, field: &str) -> Result<SecretString, Failure> {
        let secret = self.api.get_opt(&key.name).await.map_err(|e| {
            Failure::new(
                "SecretUnreadable",
                format!(
                    "{field}: cannot read Secret {}/{}: {e}",
                    self.namespace, key.name
                ),
            )
        })?;
        let Some(secret) = secret else {
            return Err(Failure::new(
                "SecretNotFound",
                format!(
                    "{field}: Secret {}/{} does not exist",
                    self.namespace, key.name
                ),
            ));
        };
        let bytes = secret
            .data
            .as_ref()
            .and_then(|d| d.get(&key.key))
            .map(|b| b.0.clone())
            .or_else(|| {
                secret
                    .string_data
                    .as_ref()
                    .and_then(|d| d.get(&key.key))
                    .map(|s| s.clone().into_bytes())
            })
            .ok_or_else(|| {
                Failure::new(
                    "SecretNotFound",
                    format!(
                        "{field}: Secret {}/{} has no key {:?}",
                        self.namespace, key.name, key.key
                    ),
                )
            })?;
        let text = String::from_utf8(bytes).map_err(|_| {
            Failure::new(
                "SecretUnreadable",
                format!(
                    "{field}: key {:?} of Secret {}/{} is not UTF-8 text",
                    key.key, self.namespace, key.name
                ),
            )
        })?;
        Ok(SecretString::from(
            text.trim_end_matches(['\n', '\r']).to_owned(),
        ))
    }
}

/// What the resource asks of Elasticsearch.
pub fn es_plan(spec: &PanopticonSpec) -> ProvisionPlan {
    let es = &spec.elasticsearch;
    let s = &es.streams;
    ProvisionPlan {
        streams: panopticon_model::config::StreamNames {
            logs_template: format!("{}-template", s.logs.name),
            spans_template: format!("{}-template", s.traces.name),
            metrics_template: format!("{}-template", s.metrics.name),
            logs: s.logs.name.clone(),
            spans: s.traces.name.clone(),
            metrics: s.metrics.name.clone(),
        },
        logs_retention: s.logs.retention.clone(),
        traces_retention: s.traces.retention.clone(),
        metrics_retention: s.metrics.retention.clone(),
        rollover_max_primary_shard_size: es.rollover.max_primary_shard_size.clone(),
        rollover_max_age: es.rollover.max_age.clone(),
        replicas: es.replicas,
    }
}

/// A client for the resource's cluster, with its credentials.
pub async fn es_client(spec: &PanopticonSpec, secrets: &Secrets) -> Result<EsClient, Failure> {
    let es = &spec.elasticsearch;
    let verify = es.tls.as_ref().is_none_or(|t| t.verify);
    let vars = [
        (vars::ELASTICSEARCH_NODE.name, es.url.clone()),
        (
            vars::OPENSEARCH_REJECT_UNAUTHORIZED.name,
            verify.to_string(),
        ),
        (
            vars::ELASTICSEARCH_REQUEST_TIMEOUT_MS.name,
            "10000".to_owned(),
        ),
    ];
    let mut config = ElasticsearchConfig::from_env(&EnvSource::from_rendered(&vars))
        .map_err(|e| Failure::new("InvalidSpec", format!("spec.elasticsearch.url: {e}")))?;
    let mut es_secrets = EsSecrets::default();
    if let Some(credentials) = &es.credentials {
        if let Some(basic) = &credentials.basic {
            let user = SecretKey {
                name: basic.secret_name.clone(),
                key: basic.username_key.clone(),
            };
            let password = SecretKey {
                name: basic.secret_name.clone(),
                key: basic.password_key.clone(),
            };
            let field = "spec.elasticsearch.credentials.basic";
            config.username = Some(
                secrecy::ExposeSecret::expose_secret(&secrets.value(&user, field).await?)
                    .to_owned(),
            );
            es_secrets.password = Some(secrets.value(&password, field).await?);
        }
        if let Some(key) = &credentials.api_key {
            es_secrets.api_key = Some(
                secrets
                    .value(key, "spec.elasticsearch.credentials.apiKey")
                    .await?,
            );
        }
    }
    if let Some(ca) = es.tls.as_ref().and_then(|t| t.ca_secret.as_ref()) {
        let pem = secrets.value(ca, "spec.elasticsearch.tls.caSecret").await?;
        es_secrets.ca_pem = Some(
            secrecy::ExposeSecret::expose_secret(&pem)
                .as_bytes()
                .to_vec(),
        );
    }
    EsClient::new(&config, &es_secrets)
        .map_err(|e| Failure::new("ElasticsearchConfigInvalid", e.to_string()))
}

/// Provisions Elasticsearch; the outcome for the `ElasticsearchReady` condition.
pub async fn elasticsearch(
    spec: &PanopticonSpec,
    secrets: &Secrets,
) -> Result<ProvisionReport, Failure> {
    let client = es_client(spec, secrets).await?;
    let report = panopticon_es::provision::provision(&client, &es_plan(spec))
        .await
        .map_err(es_failure)?;
    let expected = spec.elasticsearch.flavour;
    let found = match report.flavour {
        panopticon_es::Flavour::Elasticsearch => crate::crd::EsFlavour::Elasticsearch,
        panopticon_es::Flavour::OpenSearch => crate::crd::EsFlavour::OpenSearch,
    };
    if expected != crate::crd::EsFlavour::Auto && expected != found {
        return Err(Failure::new(
            "FlavourMismatch",
            format!(
                "spec.elasticsearch.flavour is {expected:?} but {} answers as {found:?} {}",
                spec.elasticsearch.url, report.version
            ),
        ));
    }
    Ok(report)
}

/// Why lifecycle policies are not enforced, if they are not.
pub fn retention_gap(report: &ProvisionReport) -> Option<String> {
    match &report.lifecycle {
        Lifecycle::Ilm | Lifecycle::Ism => None,
        Lifecycle::Unavailable { reason } => Some(reason.clone()),
    }
}

fn es_failure(e: panopticon_es::EsError) -> Failure {
    use panopticon_es::EsError;
    let reason = match &e {
        EsError::Transport(_) | EsError::Timeout(_) => "ElasticsearchUnreachable",
        EsError::Status {
            status: 401 | 403, ..
        } => "ElasticsearchUnauthorized",
        EsError::Status { .. } => "ElasticsearchRefused",
        EsError::Config(_) => "ElasticsearchConfigInvalid",
        EsError::Decode { .. } => "ElasticsearchUnexpectedAnswer",
    };
    Failure::new(reason, e.to_string())
}

/// The topics the resource asks for.
pub fn topic_plans(spec: &PanopticonSpec) -> Vec<TopicPlan> {
    let t = &spec.kafka.topics;
    [&t.logs, &t.spans, &t.errors, &t.dead_letter]
        .into_iter()
        .map(|topic| TopicPlan {
            name: topic.name.clone(),
            partitions: topic.partitions,
            replication_factor: topic.replication_factor,
            retention_ms: duration_ms(&topic.retention),
        })
        .collect()
}

/// An admin client configuration for the resource's Kafka, with its credentials.
pub async fn kafka_client(
    spec: &PanopticonSpec,
    secrets: &Secrets,
) -> Result<rdkafka::ClientConfig, Failure> {
    let k = &spec.kafka;
    let mut kafka_secrets = KafkaSecrets::default();
    let (mechanism, username) = match &k.sasl {
        None => (None, None),
        Some(sasl) => {
            let field = "spec.kafka.sasl";
            let user = secrets
                .value(
                    &SecretKey {
                        name: sasl.secret_name.clone(),
                        key: sasl.username_key.clone(),
                    },
                    field,
                )
                .await?;
            kafka_secrets.sasl_password = Some(
                secrets
                    .value(
                        &SecretKey {
                            name: sasl.secret_name.clone(),
                            key: sasl.password_key.clone(),
                        },
                        field,
                    )
                    .await?,
            );
            let mechanism = match sasl.mechanism {
                SaslMechanismSpec::Plain => SaslMechanism::Plain,
                SaslMechanismSpec::ScramSha256 => SaslMechanism::ScramSha256,
                SaslMechanismSpec::ScramSha512 => SaslMechanism::ScramSha512,
            };
            (
                Some(mechanism),
                Some(secrecy::ExposeSecret::expose_secret(&user).to_owned()),
            )
        }
    };
    let mut config = KafkaConfig::from_env(&EnvSource::from_rendered(&[(
        vars::KAFKA_BROKERS.name,
        k.bootstrap_servers.clone(),
    )]))
    .map_err(|e| Failure::new("InvalidSpec", format!("spec.kafka.bootstrapServers: {e}")))?;
    config.tls = k.tls.is_some();
    config.tls_verify = k.tls.as_ref().is_none_or(|t| t.verify);
    config.sasl_mechanism = mechanism;
    config.sasl_username = username;
    let mut client =
        panopticon_kafka::client_config(&config, &kafka_secrets, "panopticon-operator")
            .map_err(|e| Failure::new("KafkaConfigInvalid", e))?;
    if let Some(ca) = k.tls.as_ref().and_then(|t| t.ca_secret.as_ref()) {
        let pem = secrets.value(ca, "spec.kafka.tls.caSecret").await?;
        client.set("ssl.ca.pem", secrecy::ExposeSecret::expose_secret(&pem));
    }
    Ok(client)
}

/// Reconciles the topics (or, with `manageTopics: false`, only checks them).
pub async fn kafka(spec: &PanopticonSpec, secrets: &Secrets) -> Result<TopicsReport, Failure> {
    let client = kafka_client(spec, secrets).await?;
    let plans = topic_plans(spec);
    let result = if spec.kafka.manage_topics {
        panopticon_kafka::reconcile_topics(&client, &plans).await
    } else {
        panopticon_kafka::check_topics(&client, &plans).await
    };
    result.map_err(|e| Failure::new(kafka_reason(&e), e.to_string()))
}

/// The condition reason of a Kafka failure.
fn kafka_reason(e: &panopticon_kafka::TopicError) -> &'static str {
    use panopticon_kafka::TopicError as E;
    match e {
        E::Unreachable { .. } | E::Request { .. } | E::TimedOut { .. } => "KafkaUnreachable",
        E::Unauthorized { .. } => "KafkaUnauthorized",
        E::InvalidReplicationFactor { .. } => "InvalidReplicationFactor",
        E::InvalidPlan { .. } | E::ConflictingPlans { .. } => "InvalidTopics",
        E::Client { .. } => "KafkaConfigInvalid",
        E::Missing { .. } => "TopicsMissing",
        _ => "TopicRejected",
    }
}

/// deletionPolicy Delete: removes what `elasticsearch` created. Returns the actions taken.
pub async fn remove_elasticsearch(
    spec: &PanopticonSpec,
    secrets: &Secrets,
) -> Result<Vec<String>, Failure> {
    let client = es_client(spec, secrets).await?;
    panopticon_es::provision::remove(&client, &es_plan(spec))
        .await
        .map_err(es_failure)
}

/// deletionPolicy Delete: deletes the topics. Returns the deleted ones.
pub async fn remove_topics(
    spec: &PanopticonSpec,
    secrets: &Secrets,
) -> Result<Vec<String>, Failure> {
    let client = kafka_client(spec, secrets).await?;
    let names: Vec<String> = topic_plans(spec).into_iter().map(|p| p.name).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    panopticon_kafka::delete_topics(&client, &names)
        .await
        .map_err(|e| Failure::new(kafka_reason(&e), e.to_string()))
}
