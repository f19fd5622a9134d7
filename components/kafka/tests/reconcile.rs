//! `reconcile_topics` and `delete_topics` against the real broker of `e2e/stack` (one broker,
//! KRaft, automatic topic creation off). Every test uses its own topic names. What the broker
//! holds is checked with a separate admin client, not through the code under test.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use panopticon_kafka::{
    KafkaSecrets, TopicError, TopicPlan, TopicsReport, check_topics, client_config, delete_topics,
    reconcile_topics,
};
use panopticon_model::config::{EnvSource, KafkaConfig};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, AlterConfig, ConfigSource, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;

fn client_for(brokers: &str) -> ClientConfig {
    let pairs = [("KAFKA_BROKERS", brokers)];
    let config = KafkaConfig::from_env(&EnvSource::from_pairs(&pairs))
        .expect("a broker list alone is a valid Kafka configuration");
    client_config(&config, &KafkaSecrets::default(), "reconcile-test")
        .expect("no SASL, so no password is needed")
}

fn client() -> ClientConfig {
    client_for(&panopticon_e2e::kafka_brokers())
}

fn admin() -> AdminClient<DefaultClientContext> {
    client()
        .create()
        .expect("the test client configuration is valid")
}

fn plan(name: &str, partitions: i32, retention_ms: Option<i64>) -> TopicPlan {
    TopicPlan {
        name: name.to_owned(),
        partitions,
        replication_factor: None,
        retention_ms,
    }
}

/// The topic's partition count as the broker reports it; None when it does not exist.
fn partitions_of(topic: &str) -> Option<usize> {
    let metadata = admin()
        .inner()
        .fetch_metadata(None, Duration::from_secs(10))
        .expect("the stack's broker answers a metadata request");
    metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .map(|t| t.partitions().len())
}

/// The settings set on the topic itself (source DynamicTopic), as the broker reports them.
async fn dynamic_settings(topic: &str) -> HashMap<String, String> {
    let results = admin()
        .describe_configs(&[ResourceSpecifier::Topic(topic)], &AdminOptions::new())
        .await
        .expect("the stack's broker answers DescribeConfigs");
    let resource = results
        .into_iter()
        .next()
        .expect("one result per resource asked")
        .expect("the topic's configuration is readable");
    resource
        .entries
        .into_iter()
        .filter(|e| e.source == ConfigSource::DynamicTopic)
        .map(|e| (e.name, e.value.unwrap_or_default()))
        .collect()
}

fn quiet(report: &TopicsReport) -> bool {
    report.created.is_empty()
        && report.partitions_raised.is_empty()
        && report.retention_updated.is_empty()
}

async fn cleanup(names: &[&str]) {
    delete_topics(&client(), names)
        .await
        .expect("the test's topics can be deleted");
}

#[tokio::test]
async fn creates_missing_topics_with_partitions_and_retention_then_changes_nothing() {
    let logs = panopticon_e2e::unique_name("reconcile-logs");
    let spans = panopticon_e2e::unique_name("reconcile-spans");
    let hour = Some(3_600_000);
    let plans = [
        plan(&logs, 3, hour),
        TopicPlan {
            replication_factor: Some(1),
            ..plan(&spans, 3, hour)
        },
        // The errors topic pointing at the logs topic: the same plan twice.
        plan(&logs, 3, hour),
    ];

    let report = reconcile_topics(&client(), &plans).await.unwrap();
    let mut created = report.created.clone();
    created.sort();
    let mut expected = vec![logs.clone(), spans.clone()];
    expected.sort();
    assert_eq!(created, expected, "each topic created once: {report:?}");
    assert!(report.partitions_raised.is_empty(), "{report:?}");
    assert!(report.retention_updated.is_empty(), "{report:?}");
    assert!(report.more_partitions_than_asked.is_empty(), "{report:?}");
    assert_eq!(
        report.partitions,
        vec![(logs.clone(), 3), (spans.clone(), 3)]
    );
    for topic in [&logs, &spans] {
        assert_eq!(partitions_of(topic), Some(3), "{topic}");
        assert_eq!(
            dynamic_settings(topic)
                .await
                .get("retention.ms")
                .map(String::as_str),
            Some("3600000"),
            "{topic}"
        );
    }

    let again = reconcile_topics(&client(), &plans).await.unwrap();
    assert_eq!(
        again,
        TopicsReport {
            partitions: vec![(logs.clone(), 3), (spans.clone(), 3)],
            ..TopicsReport::default()
        },
        "a second identical call changes nothing"
    );
    cleanup(&[&logs, &spans]).await;
}

#[tokio::test]
async fn raises_partitions_but_never_lowers_them() {
    let topic = panopticon_e2e::unique_name("reconcile-raise");
    let created = reconcile_topics(&client(), &[plan(&topic, 3, None)])
        .await
        .unwrap();
    assert_eq!(created.created, vec![topic.clone()]);

    let raised = reconcile_topics(&client(), &[plan(&topic, 5, None)])
        .await
        .unwrap();
    assert_eq!(raised.partitions_raised, vec![(topic.clone(), 3, 5)]);
    assert!(raised.created.is_empty(), "{raised:?}");
    assert_eq!(raised.partitions, vec![(topic.clone(), 5)]);
    assert_eq!(partitions_of(&topic), Some(5));

    let fewer = reconcile_topics(&client(), &[plan(&topic, 2, None)])
        .await
        .unwrap();
    assert!(quiet(&fewer), "{fewer:?}");
    assert_eq!(
        fewer.more_partitions_than_asked,
        vec![(topic.clone(), 5, 2)]
    );
    assert_eq!(fewer.partitions, vec![(topic.clone(), 5)]);
    assert_eq!(partitions_of(&topic), Some(5), "never lowered");

    let same = reconcile_topics(&client(), &[plan(&topic, 5, None)])
        .await
        .unwrap();
    assert!(quiet(&same), "{same:?}");
    assert!(same.more_partitions_than_asked.is_empty(), "{same:?}");
    cleanup(&[&topic]).await;
}

#[tokio::test]
async fn changing_the_retention_keeps_the_topics_other_settings() {
    let topic = panopticon_e2e::unique_name("reconcile-retention");
    reconcile_topics(&client(), &[plan(&topic, 1, Some(3_600_000))])
        .await
        .unwrap();
    // An administrator's own settings, set with the same (whole-set) AlterConfigs.
    let admin_settings = AlterConfig::new(ResourceSpecifier::Topic(&topic))
        .set("retention.ms", "3600000")
        .set("cleanup.policy", "compact,delete")
        .set("max.message.bytes", "2097152");
    for result in admin()
        .alter_configs(&[admin_settings], &AdminOptions::new())
        .await
        .unwrap()
    {
        result.unwrap();
    }
    assert_eq!(
        dynamic_settings(&topic)
            .await
            .get("max.message.bytes")
            .map(String::as_str),
        Some("2097152"),
        "the test's own setting is in place"
    );

    let report = reconcile_topics(&client(), &[plan(&topic, 1, Some(7_200_000))])
        .await
        .unwrap();
    assert_eq!(report.retention_updated, vec![topic.clone()]);
    assert!(report.created.is_empty() && report.partitions_raised.is_empty());
    let settings = dynamic_settings(&topic).await;
    assert_eq!(
        settings.get("retention.ms").map(String::as_str),
        Some("7200000")
    );
    assert_eq!(
        settings.get("cleanup.policy").map(String::as_str),
        Some("compact,delete"),
        "{settings:?}"
    );
    assert_eq!(
        settings.get("max.message.bytes").map(String::as_str),
        Some("2097152"),
        "{settings:?}"
    );

    let again = reconcile_topics(&client(), &[plan(&topic, 1, Some(7_200_000))])
        .await
        .unwrap();
    assert!(quiet(&again), "{again:?}");
    cleanup(&[&topic]).await;
}

#[tokio::test]
async fn a_replication_factor_above_the_broker_count_is_an_error_naming_the_topic() {
    let fine = panopticon_e2e::unique_name("reconcile-fine");
    let topic = panopticon_e2e::unique_name("reconcile-rf3");
    let plans = [
        plan(&fine, 1, None),
        TopicPlan {
            replication_factor: Some(3),
            ..plan(&topic, 1, None)
        },
    ];
    let error = reconcile_topics(&client(), &plans).await.unwrap_err();
    assert!(
        matches!(error, TopicError::InvalidReplicationFactor { .. }),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        format!(
            "cannot create topic {topic}: replication factor 3 is larger than the 1 available broker"
        )
    );
    assert_eq!(partitions_of(&topic), None, "not created");
    assert_eq!(
        partitions_of(&fine),
        None,
        "nothing is done when a plan cannot work"
    );
}

#[tokio::test]
async fn deletes_topics_and_absent_topics_are_success() {
    let a = panopticon_e2e::unique_name("reconcile-del-a");
    let b = panopticon_e2e::unique_name("reconcile-del-b");
    let never = panopticon_e2e::unique_name("reconcile-del-never");
    reconcile_topics(&client(), &[plan(&a, 2, None), plan(&b, 1, Some(60_000))])
        .await
        .unwrap();
    assert_eq!(partitions_of(&a), Some(2));

    let mut deleted = delete_topics(&client(), &[&a, &never, &b, &a])
        .await
        .unwrap();
    deleted.sort();
    let mut expected = vec![a.clone(), b.clone()];
    expected.sort();
    assert_eq!(deleted, expected);
    let deadline = Instant::now() + Duration::from_secs(10);
    while partitions_of(&a).is_some() || partitions_of(&b).is_some() {
        assert!(
            Instant::now() < deadline,
            "the topics are still listed after 10 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let again = delete_topics(&client(), &[&a, &b]).await.unwrap();
    assert!(again.is_empty(), "{again:?}");
}

#[tokio::test]
async fn an_unreachable_broker_is_an_error_within_twenty_seconds() {
    let unreachable = client_for("127.0.0.1:1");
    let started = Instant::now();
    let error = reconcile_topics(&unreachable, &[plan("reconcile-unreachable", 1, None)])
        .await
        .unwrap_err();
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(20), "took {waited:?}");
    assert!(matches!(error, TopicError::Unreachable { .. }), "{error:?}");
    assert!(error.is_retryable());
    let message = error.to_string();
    assert!(
        message.starts_with("cannot reach Kafka at 127.0.0.1:1: "),
        "{message}"
    );
    assert!(
        message.contains("Connection refused"),
        "the message says why: {message}"
    );

    let started = Instant::now();
    let error = delete_topics(&unreachable, &["reconcile-unreachable"])
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(matches!(error, TopicError::Unreachable { .. }), "{error:?}");
}

#[tokio::test]
async fn a_refused_sasl_login_is_an_error_saying_so() {
    let brokers = panopticon_e2e::required_env("PANOPTICON_KAFKA_SASL_BROKERS");
    let user = panopticon_e2e::required_env("PANOPTICON_KAFKA_SASL_USER");
    let pairs = [
        ("KAFKA_BROKERS", brokers.as_str()),
        ("KAFKA_SASL_MECHANISM", "scram-sha-256"),
        ("KAFKA_SASL_USERNAME", user.as_str()),
    ];
    let config = KafkaConfig::from_env(&EnvSource::from_pairs(&pairs)).unwrap();
    let secrets = KafkaSecrets {
        sasl_password: Some("not-the-password".to_owned().into()),
    };
    let client = client_config(&config, &secrets, "reconcile-test").unwrap();
    let started = Instant::now();
    let error = reconcile_topics(&client, &[plan("reconcile-sasl", 1, None)])
        .await
        .unwrap_err();
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(20), "took {waited:?}");
    assert!(matches!(error, TopicError::Unreachable { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.starts_with(&format!("cannot reach Kafka at {brokers}: ")),
        "{message}"
    );
    assert!(
        message.contains("SASL authentication error"),
        "the message says why: {message}"
    );
}

#[tokio::test]
async fn checking_unmanaged_topics_changes_nothing_and_names_the_missing() {
    let present = panopticon_e2e::unique_name("check-present");
    let absent = panopticon_e2e::unique_name("check-absent");
    reconcile_topics(&client(), &[plan(&present, 2, None)])
        .await
        .unwrap();
    // Asking for more partitions than exist is the owner's business: reported, not raised.
    let report = check_topics(&client(), &[plan(&present, 4, Some(60_000))])
        .await
        .unwrap();
    assert_eq!(report.partitions, vec![(present.clone(), 2)]);
    assert!(quiet(&report));
    assert_eq!(partitions_of(&present), Some(2));
    let e = check_topics(
        &client(),
        &[plan(&present, 2, None), plan(&absent, 1, None)],
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&e, TopicError::Missing { topics } if topics == &vec![absent.clone()]),
        "{e}"
    );
    assert!(e.to_string().contains(&absent), "{e}");
    assert_eq!(partitions_of(&absent), None, "checking never creates");
    cleanup(&[&present]).await;
}
