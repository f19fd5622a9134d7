//! `group_offsets` against the real broker of `e2e/stack` (one broker, KRaft, automatic topic
//! creation off). Every test uses its own topic and group names. Messages are produced to
//! explicit partitions and offsets committed by separate clients, so every expected offset is
//! exact.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use panopticon_kafka::{
    GroupOffsets, KafkaSecrets, LagError, PartitionOffsets, client_config, delete_topics,
    group_offsets,
};
use panopticon_model::config::{EnvSource, KafkaConfig};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer as _, ConsumerContext, Rebalance};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};

fn client_for(brokers: &str) -> ClientConfig {
    let pairs = [("KAFKA_BROKERS", brokers)];
    let config = KafkaConfig::from_env(&EnvSource::from_pairs(&pairs))
        .expect("a broker list alone is a valid Kafka configuration");
    client_config(&config, &KafkaSecrets::default(), "lag-test")
        .expect("no SASL, so no password is needed")
}

fn client() -> ClientConfig {
    client_for(&panopticon_e2e::kafka_brokers())
}

async fn create_topic(prefix: &str, partitions: i32) -> String {
    let topic = panopticon_e2e::unique_name(prefix);
    panopticon_e2e::kafka::create_topics(&[&topic], partitions)
        .await
        .expect("the stack's broker creates the test topic");
    topic
}

/// Produces `count` messages to one partition and waits until all are acknowledged.
async fn produce(topic: &str, partition: i32, count: usize) {
    let producer: FutureProducer = client()
        .set("acks", "all")
        .create()
        .expect("the test producer configuration is valid");
    let payloads: Vec<String> = (0..count).map(|i| format!("message {i}")).collect();
    let deliveries: Vec<_> = payloads
        .iter()
        .map(|payload| {
            let record = FutureRecord::<(), _>::to(topic)
                .partition(partition)
                .payload(payload);
            producer.send(record, Duration::from_secs(10))
        })
        .collect();
    for delivery in futures::future::join_all(deliveries).await {
        delivery.expect("the stack's broker acknowledges every message");
    }
}

/// Commits offsets for `group` the way a simple (non-member) consumer does: assign, commit,
/// never subscribe.
fn commit(group: &str, topic: &str, offsets: &[(i32, i64)]) {
    let consumer: BaseConsumer = client()
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("the test consumer configuration is valid");
    let mut list = TopicPartitionList::new();
    for &(partition, offset) in offsets {
        list.add_partition_offset(topic, partition, Offset::Offset(offset))
            .expect("a real offset");
    }
    consumer.assign(&list).expect("manual assignment works");
    consumer
        .commit(&list, CommitMode::Sync)
        .expect("the stack's broker accepts the commit");
}

fn at(topic: &str, partition: i32, end: i64, committed: Option<i64>) -> PartitionOffsets {
    PartitionOffsets {
        topic: topic.to_owned(),
        partition,
        end,
        committed,
    }
}

async fn cleanup(topics: &[&str]) {
    delete_topics(&client(), topics)
        .await
        .expect("the test's topics can be deleted");
}

#[tokio::test]
async fn reads_exact_end_and_committed_offsets_and_none_where_the_group_never_committed() {
    let logs = create_topic("lag-logs", 3).await;
    let spans = create_topic("lag-spans", 1).await;
    produce(&logs, 0, 10).await;
    produce(&logs, 1, 20).await;
    produce(&logs, 2, 30).await;
    produce(&spans, 0, 7).await;
    let group = panopticon_e2e::unique_name("lag-group");
    commit(&group, &logs, &[(0, 4), (1, 20)]);

    // Topics out of order and repeated: each read once, the answer sorted.
    let offsets = group_offsets(&client(), &group, &[&spans, &logs, &spans])
        .await
        .unwrap();
    let mut expected = vec![
        at(&logs, 0, 10, Some(4)),
        at(&logs, 1, 20, Some(20)),
        at(&logs, 2, 30, None),
        at(&spans, 0, 7, None),
    ];
    expected.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    assert_eq!(
        offsets,
        GroupOffsets {
            group: group.clone(),
            partitions: expected,
        }
    );

    // Reading committed nothing: another group reading the same topics still has no commits,
    // and the first group's offsets are unchanged by having been read.
    let stranger = panopticon_e2e::unique_name("lag-stranger");
    let untouched = group_offsets(&client(), &stranger, &[&logs]).await.unwrap();
    assert!(
        untouched.partitions.iter().all(|p| p.committed.is_none()),
        "{untouched:?}"
    );
    let again = group_offsets(&client(), &group, &[&logs]).await.unwrap();
    assert_eq!(
        again
            .partitions
            .iter()
            .map(|p| p.committed)
            .collect::<Vec<_>>(),
        vec![Some(4), Some(20), None]
    );
    cleanup(&[&logs, &spans]).await;
}

#[tokio::test]
async fn partitions_added_to_a_topic_appear_at_the_next_read() {
    let topic = create_topic("lag-grow", 1).await;
    produce(&topic, 0, 3).await;
    let group = panopticon_e2e::unique_name("lag-grow-group");
    commit(&group, &topic, &[(0, 3)]);
    let before = group_offsets(&client(), &group, &[&topic]).await.unwrap();
    assert_eq!(before.partitions, vec![at(&topic, 0, 3, Some(3))]);

    panopticon_e2e::kafka::add_partitions(&topic, 3)
        .await
        .expect("the stack's broker adds partitions");
    produce(&topic, 2, 5).await;
    let after = group_offsets(&client(), &group, &[&topic]).await.unwrap();
    assert_eq!(
        after.partitions,
        vec![
            at(&topic, 0, 3, Some(3)),
            at(&topic, 1, 0, None),
            at(&topic, 2, 5, None),
        ]
    );
    cleanup(&[&topic]).await;
}

/// Counts a group member's rebalances.
#[derive(Default)]
struct MemberContext {
    assigned: AtomicUsize,
    revoked: AtomicUsize,
}

impl ClientContext for MemberContext {}

impl ConsumerContext for MemberContext {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(_) => self.assigned.fetch_add(1, Ordering::SeqCst),
            Rebalance::Revoke(_) | Rebalance::Error(_) => {
                self.revoked.fetch_add(1, Ordering::SeqCst)
            }
        };
    }
}

/// A member of the group, consuming on its own thread and committing each message it reads
/// (synchronously, before counting it).
struct Member {
    consumer: Arc<BaseConsumer<MemberContext>>,
    consumed: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Member {
    fn join(group: &str, topic: &str) -> Self {
        let consumer: BaseConsumer<MemberContext> = client()
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            // A rebalance would reach this member within a heartbeat.
            .set("heartbeat.interval.ms", "500")
            .set("session.timeout.ms", "6000")
            .create_with_context(MemberContext::default())
            .expect("the member configuration is valid");
        consumer
            .subscribe(&[topic])
            .expect("the member subscribes to the topic");
        let consumer = Arc::new(consumer);
        let consumed = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::spawn({
            let (consumer, consumed, stop) = (consumer.clone(), consumed.clone(), stop.clone());
            move || {
                while !stop.load(Ordering::SeqCst) {
                    match consumer.poll(Duration::from_millis(100)) {
                        Some(Ok(message)) => {
                            consumer
                                .commit_message(&message, CommitMode::Sync)
                                .expect("the member's commit is accepted");
                            consumed.fetch_add(1, Ordering::SeqCst);
                        }
                        Some(Err(error)) => panic!("the member failed to consume: {error}"),
                        None => {}
                    }
                }
            }
        });
        Self {
            consumer,
            consumed,
            stop,
            thread,
        }
    }

    async fn wait_until_consumed(&self, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.consumed.load(Ordering::SeqCst) < count {
            assert!(
                Instant::now() < deadline,
                "the member consumed {} of {count} messages in 30 s",
                self.consumed.load(Ordering::SeqCst)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn rebalances(&self) -> (usize, usize) {
        let context = self.consumer.context();
        (
            context.assigned.load(Ordering::SeqCst),
            context.revoked.load(Ordering::SeqCst),
        )
    }

    fn leave(self) {
        self.stop.store(true, Ordering::SeqCst);
        self.thread
            .join()
            .expect("the member's thread ends cleanly");
    }
}

/// The group's state and member count, as the broker describes it.
fn group_state(group: &str) -> (String, usize) {
    let probe: BaseConsumer = client().create().expect("the probe configuration is valid");
    let groups = probe
        .fetch_group_list(Some(group), Duration::from_secs(10))
        .expect("the stack's broker describes the group");
    let described = groups
        .groups()
        .iter()
        .find(|g| g.name() == group)
        .expect("the group is described");
    (described.state().to_owned(), described.members().len())
}

#[tokio::test]
async fn reading_offsets_does_not_disturb_an_active_member_of_the_group() {
    let topic = create_topic("lag-member", 3).await;
    produce(&topic, 0, 10).await;
    produce(&topic, 1, 20).await;
    produce(&topic, 2, 30).await;
    let group = panopticon_e2e::unique_name("lag-member-group");
    let member = Member::join(&group, &topic);
    member.wait_until_consumed(60).await;
    assert_eq!(member.rebalances(), (1, 0), "one assignment to start with");
    assert_eq!(group_state(&group), ("Stable".to_owned(), 1));

    // Read while the member is in the group: its commits, exactly.
    let offsets = group_offsets(&client(), &group, &[&topic]).await.unwrap();
    assert_eq!(
        offsets.partitions,
        vec![
            at(&topic, 0, 10, Some(10)),
            at(&topic, 1, 20, Some(20)),
            at(&topic, 2, 30, Some(30)),
        ]
    );

    // The member keeps consuming (and committing), and the next read sees it.
    produce(&topic, 1, 5).await;
    member.wait_until_consumed(65).await;
    let offsets = group_offsets(&client(), &group, &[&topic]).await.unwrap();
    assert_eq!(offsets.partitions[1], at(&topic, 1, 25, Some(25)));

    // Had a read joined the group, the coordinator would have started a rebalance, which the
    // member learns of at its next heartbeat (every 500 ms): give it several.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        member.rebalances(),
        (1, 0),
        "no rebalance: the member kept its assignment"
    );
    assert_eq!(group_state(&group), ("Stable".to_owned(), 1));
    member.leave();
    cleanup(&[&topic]).await;
}

#[tokio::test]
async fn a_missing_topic_is_an_error_naming_it() {
    let present = create_topic("lag-present", 1).await;
    let absent = panopticon_e2e::unique_name("lag-absent");
    let group = panopticon_e2e::unique_name("lag-missing-group");
    let error = group_offsets(&client(), &group, &[&present, &absent])
        .await
        .unwrap_err();
    assert!(
        matches!(&error, LagError::MissingTopics { topics, .. } if topics == &vec![absent.clone()]),
        "{error:?}"
    );
    assert_eq!(error.metric_label(), "missing_topic");
    assert_eq!(
        error.to_string(),
        format!("cannot read the lag of consumer group {group}: topic {absent} does not exist")
    );
    cleanup(&[&present]).await;
}

#[tokio::test]
async fn an_unreachable_broker_is_an_error_within_twenty_seconds() {
    let started = Instant::now();
    let error = group_offsets(&client_for("127.0.0.1:1"), "lag-unreachable", &["apm.logs"])
        .await
        .unwrap_err();
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(20), "took {waited:?}");
    assert!(matches!(error, LagError::Unreachable { .. }), "{error:?}");
    assert_eq!(error.metric_label(), "unreachable");
    let message = error.to_string();
    assert!(
        message.starts_with("cannot reach Kafka at 127.0.0.1:1: "),
        "{message}"
    );
    assert!(
        message.contains("Connection refused"),
        "the message says why: {message}"
    );
}
