//! `ensure_topics` against the real broker of `e2e/stack`.

use panopticon_kafka::{KafkaSecrets, client_config, ensure_topics};
use panopticon_model::config::{EnvSource, KafkaConfig};

#[tokio::test]
async fn creates_missing_topics_once_and_accepts_existing_ones() {
    let brokers = panopticon_e2e::kafka_brokers();
    let pairs = [("KAFKA_BROKERS", brokers.as_str())];
    let config = KafkaConfig::from_env(&EnvSource::from_pairs(&pairs)).unwrap();
    let client = client_config(&config, &KafkaSecrets::default(), "topics-test").unwrap();
    let a = panopticon_e2e::unique_name("ensure-a");
    let b = panopticon_e2e::unique_name("ensure-b");
    panopticon_e2e::kafka::create_topics(&[&a], 2)
        .await
        .unwrap();

    let created = ensure_topics(&client, &[(&a, 5), (&b, 5)], Some(1))
        .await
        .unwrap();
    assert_eq!(
        created,
        vec![b.clone()],
        "only the missing topic is created"
    );
    assert_eq!(
        panopticon_e2e::kafka::partition_count(&b).unwrap(),
        5,
        "the created topic has the partitions asked"
    );
    assert_eq!(
        panopticon_e2e::kafka::partition_count(&a).unwrap(),
        2,
        "an existing topic is left as it is"
    );
    let again = ensure_topics(&client, &[(&a, 5), (&b, 5)], Some(1))
        .await
        .unwrap();
    assert!(again.is_empty(), "a second call creates nothing");
}
