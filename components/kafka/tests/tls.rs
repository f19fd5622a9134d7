//! TLS through `client_config`, against the SASL_SSL listener of the stack's broker (its
//! certificate signed by a CA the stack made): the CA file verifies it, the system trust store
//! does not, and turning verification off connects anyway.

use std::time::Duration;

use panopticon_kafka::{KafkaSecrets, client_config, ensure_topics};
use panopticon_model::config::{EnvSource, KafkaConfig};
use rdkafka::producer::{BaseProducer, FutureProducer, FutureRecord, Producer as _};

fn tls_config(extra: &[(&str, &str)]) -> (KafkaConfig, KafkaSecrets) {
    let brokers = panopticon_e2e::required_env("PANOPTICON_KAFKA_TLS_BROKERS");
    let user = panopticon_e2e::required_env("PANOPTICON_KAFKA_SASL_USER");
    let mut pairs = vec![
        ("KAFKA_BROKERS", brokers.as_str()),
        ("KAFKA_SSL", "true"),
        ("KAFKA_SASL_MECHANISM", "scram-sha-512"),
        ("KAFKA_SASL_USERNAME", user.as_str()),
    ];
    pairs.extend_from_slice(extra);
    let config = KafkaConfig::from_env(&EnvSource::from_pairs(&pairs))
        .expect("the TLS test configuration is valid");
    let password = panopticon_e2e::required_env("PANOPTICON_KAFKA_SASL_PASSWORD");
    (
        config,
        KafkaSecrets {
            sasl_password: Some(password.into()),
        },
    )
}

fn brokers_seen(config: &KafkaConfig, secrets: &KafkaSecrets) -> Result<usize, String> {
    let client = client_config(config, secrets, "tls-test").map_err(|e| e.to_string())?;
    let producer: BaseProducer = client.create().map_err(|e| e.to_string())?;
    producer
        .client()
        .fetch_metadata(None, Duration::from_secs(10))
        .map(|m| m.brokers().len())
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn the_ca_file_verifies_the_broker_and_data_flows_over_tls() {
    let ca = panopticon_e2e::required_env("PANOPTICON_KAFKA_TLS_CA");
    let (config, secrets) = tls_config(&[("KAFKA_SSL_CA_FILE", &ca)]);
    let mut client = client_config(&config, &secrets, "tls-test").unwrap();
    assert_eq!(client.get("security.protocol"), Some("sasl_ssl"));
    let topic = panopticon_e2e::unique_name("tls");
    ensure_topics(&client, &[(&topic, 1)], None).await.unwrap();
    let producer: FutureProducer = client.set("acks", "all").create().unwrap();
    producer
        .send(
            FutureRecord::to(&topic).key("k").payload("over tls"),
            Duration::from_secs(20),
        )
        .await
        .map_err(|(e, _)| e)
        .unwrap();
}

#[test]
fn an_unknown_ca_is_refused_unless_verification_is_off() {
    let (verified, secrets) = tls_config(&[]);
    assert!(
        brokers_seen(&verified, &secrets).is_err(),
        "the system trust store must not accept the test CA"
    );
    let (unverified, secrets) = tls_config(&[("KAFKA_SSL_REJECT_UNAUTHORIZED", "false")]);
    assert_eq!(brokers_seen(&unverified, &secrets), Ok(1));
}
