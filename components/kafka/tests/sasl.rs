//! SASL PLAIN and SCRAM through `client_config`, against the SASL listener of the stack's
//! broker: the right password produces and consumes, a wrong one is refused.

use std::time::Duration;

use futures::StreamExt as _;
use panopticon_kafka::{KafkaSecrets, client_config, ensure_topics};
use panopticon_model::config::{EnvSource, KafkaConfig};
use rdkafka::Message as _;
use rdkafka::consumer::{Consumer as _, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};

fn sasl_config(mechanism: &str) -> KafkaConfig {
    let brokers = panopticon_e2e::required_env("PANOPTICON_KAFKA_SASL_BROKERS");
    let user = panopticon_e2e::required_env("PANOPTICON_KAFKA_SASL_USER");
    let pairs = [
        ("KAFKA_BROKERS", brokers.as_str()),
        ("KAFKA_SASL_MECHANISM", mechanism),
        ("KAFKA_SASL_USERNAME", user.as_str()),
    ];
    KafkaConfig::from_env(&EnvSource::from_pairs(&pairs))
        .expect("the SASL test configuration is valid")
}

fn password(p: &str) -> KafkaSecrets {
    KafkaSecrets {
        sasl_password: Some(p.to_owned().into()),
    }
}

#[tokio::test]
async fn every_mechanism_authenticates_with_the_right_password() {
    let right = panopticon_e2e::required_env("PANOPTICON_KAFKA_SASL_PASSWORD");
    for mechanism in ["plain", "scram-sha-256", "scram-sha-512"] {
        let config = sasl_config(mechanism);
        let client = client_config(&config, &password(&right), "sasl-test").unwrap();
        assert_eq!(client.get("security.protocol"), Some("sasl_plaintext"));
        let topic = panopticon_e2e::unique_name(&format!("sasl-{mechanism}"));
        ensure_topics(&client, &[(&topic, 1)], None).await.unwrap();

        let producer: FutureProducer = client.clone().set("acks", "all").create().unwrap();
        producer
            .send(
                FutureRecord::to(&topic).key("k").payload("over sasl"),
                Duration::from_secs(20),
            )
            .await
            .map_err(|(e, _)| e)
            .unwrap();
        let consumer: StreamConsumer = client
            .clone()
            .set("group.id", panopticon_e2e::unique_name("sasl"))
            .set("auto.offset.reset", "earliest")
            .create()
            .unwrap();
        consumer.subscribe(&[&topic]).unwrap();
        let message = tokio::time::timeout(Duration::from_secs(30), consumer.stream().next())
            .await
            .expect("a message within 30 s")
            .unwrap()
            .unwrap();
        assert_eq!(message.payload(), Some(&b"over sasl"[..]), "{mechanism}");
    }
}

#[test]
fn a_wrong_password_is_refused() {
    let right = panopticon_e2e::required_env("PANOPTICON_KAFKA_SASL_PASSWORD");
    for mechanism in ["plain", "scram-sha-512"] {
        let metadata = |secret: &str| {
            let client =
                client_config(&sasl_config(mechanism), &password(secret), "sasl-test").unwrap();
            let producer: rdkafka::producer::BaseProducer = client.create().unwrap();
            use rdkafka::producer::Producer as _;
            producer
                .client()
                .fetch_metadata(None, Duration::from_secs(10))
                .map(|m| m.brokers().len())
        };
        // Metadata needs an authenticated connection: it answers with the right password only.
        assert_eq!(metadata(&right).unwrap(), 1, "{mechanism}");
        assert!(
            metadata("wrong").is_err(),
            "{mechanism}: metadata with a wrong password"
        );
    }
}
