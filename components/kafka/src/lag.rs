//! How far a consumer group is behind: for every partition of some topics, the partition's end
//! offset and the offset the group committed for it. The operator's ingest autoscaler turns
//! these into lag; this module only reads them.
//!
//! # Contract
//! - **Read-only.** The group is never joined. The reading consumer carries the group's
//!   `group.id` (the committed offsets are fetched from the group's coordinator with
//!   `OffsetFetch`) but never subscribes and is never assigned partitions, so the group's
//!   members see no rebalance. `enable.auto.commit` is off: nothing is ever committed. Topics
//!   are never created, even by a broker with automatic topic creation on: the probe reads the
//!   metadata of all topics (not of named ones), and the reading consumer has
//!   `allow.auto.create.topics` off.
//! - **Bounded.** A call takes at most about [`GROUP_OFFSETS_TIMEOUT`] in total: the metadata
//!   fetch, then the committed offsets, then the end offsets, each with what is left of it. An
//!   unreachable broker is [`LagError::Unreachable`], naming the brokers and librdkafka's cause,
//!   after about ten seconds instead of librdkafka retrying forever.
//! - **Current partitions.** The topics' partitions are read from fresh metadata on every call,
//!   so partitions added to a topic appear at the next call.
//! - **`end`** is the high watermark, the offset the next message produced to the partition
//!   will get (read with `isolation.level=read_uncommitted`, like KEDA's Kafka scaler and the
//!   `LOG-END-OFFSET` of `kafka-consumer-groups.sh`).
//! - **`committed: None`** means the group has no committed offset for the partition: it never
//!   committed one (a new group, a partition added since), or its offsets expired or were
//!   deleted. How such a partition counts towards lag (KEDA's `offsetResetPolicy`) is the
//!   caller's decision.
//! - The committed offsets are read before the end offsets, so for a group that commits only
//!   offsets it has read, `end - committed` is not negative (unless the topic was deleted and
//!   recreated since the commit). The two reads are not one snapshot: a partition's `end` may
//!   include messages produced after its `committed` was read.
//!
//! # Steps
//! 1. **observe** (IO): one metadata fetch, through a probe client whose context keeps
//!    librdkafka's last error (the reason a broker is unreachable);
//! 2. **pure** ([`partitions_to_query`]): which partitions to ask about, or which topics are
//!    missing;
//! 3. **read** (IO): `OffsetFetch` for the committed offsets, then `ListOffsets` (latest) for the
//!    end offsets, one request per partition leader rather than one per partition;
//! 4. **pure** ([`assemble`]): the answers, checked partition by partition, into
//!    [`GroupOffsets`].

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use crate::topics::{
    METADATA_TIMEOUT, ProbeFailure, Unreachable, bootstrap_servers, invalid_topic_name,
    probe_metadata, topics_phrase,
};

/// How long one [`group_offsets`] call may take in total (metadata, committed offsets, end
/// offsets).
pub const GROUP_OFFSETS_TIMEOUT: Duration = Duration::from_secs(10);

/// One partition's end offset and the group's committed offset for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionOffsets {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The high watermark: the offset the next message produced to the partition will get
    /// (0 for a partition that never held a message).
    pub end: i64,
    /// The offset the group committed, i.e. the next offset it will read. None: the group has
    /// no committed offset for the partition (it never committed one, or it expired).
    pub committed: Option<i64>,
}

/// A consumer group's position on some topics, as read by [`group_offsets`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupOffsets {
    /// The consumer group.
    pub group: String,
    /// Every partition of every asked topic, sorted by topic, then partition.
    pub partitions: Vec<PartitionOffsets>,
}

/// Why a consumer group's offsets could not be read.
///
/// Each message is complete on its own and names the group, topic or brokers concerned,
/// because the operator shows it as is in a status condition. That is why the underlying
/// rdkafka error is part of the message and deliberately not repeated as
/// [`std::error::Error::source`].
#[derive(Debug, thiserror::Error)]
pub enum LagError {
    /// The group or a topic name is unusable; found before any request is sent.
    #[error("invalid request for the offsets of consumer group {group:?}: {reason}")]
    InvalidRequest {
        /// The group asked about.
        group: String,
        /// What is wrong.
        reason: String,
    },
    /// The client configuration is unusable (an unknown property, for example).
    #[error("cannot create a Kafka client to read consumer group offsets: {cause}")]
    Client {
        /// What librdkafka said.
        cause: KafkaError,
    },
    /// The metadata fetch failed: no broker answered within [`GROUP_OFFSETS_TIMEOUT`], or
    /// authentication failed.
    #[error(transparent)]
    Unreachable(Unreachable),
    /// Asked topics do not exist.
    #[error(
        "cannot read the lag of consumer group {group}: {} {} not exist",
        topics_phrase(.topics),
        if .topics.len() == 1 { "does" } else { "do" }
    )]
    MissingTopics {
        /// The group asked about.
        group: String,
        /// The absent topics, sorted.
        topics: Vec<String>,
    },
    /// The metadata carries an error for a topic and none of its partitions (typically a
    /// missing permission to describe it).
    #[error("cannot describe topic {topic}: {code}")]
    Topic {
        /// The topic.
        topic: String,
        /// The broker's error code.
        code: RDKafkaErrorCode,
    },
    /// The request for the group's committed offsets failed as a whole (no coordinator
    /// answered in time, the group is not readable).
    #[error("cannot read the committed offsets of consumer group {group}: {cause}")]
    CommittedOffsets {
        /// The group.
        group: String,
        /// What librdkafka said.
        cause: KafkaError,
    },
    /// The request for the end offsets failed as a whole (no leader answered in time).
    #[error("cannot read the end offsets of {}: {cause}", topics_phrase(.topics))]
    EndOffsets {
        /// The topics asked about.
        topics: Vec<String>,
        /// What librdkafka said.
        cause: KafkaError,
    },
    /// The group's committed offset for one partition could not be read.
    #[error(
        "cannot read the committed offset of consumer group {group} for topic {topic} partition \
         {partition}: {}",
        partition_problem(*.code)
    )]
    PartitionCommitted {
        /// The group.
        group: String,
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The broker's (or librdkafka's) error code; None = the answer has no offset for it.
        code: Option<RDKafkaErrorCode>,
    },
    /// One partition's end offset could not be read (for example while its leader moves).
    #[error(
        "cannot read the end offset of topic {topic} partition {partition}: {}",
        partition_problem(*.code)
    )]
    PartitionEnd {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The broker's (or librdkafka's) error code; None = the answer has no offset for it.
        code: Option<RDKafkaErrorCode>,
    },
}

impl LagError {
    /// A short, fixed label for metrics (`error="unreachable"`).
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::InvalidRequest { .. } => "invalid_request",
            Self::Client { .. } => "client",
            Self::Unreachable { .. } => "unreachable",
            Self::MissingTopics { .. } => "missing_topic",
            Self::Topic { .. } => "topic",
            Self::CommittedOffsets { .. } => "committed_offsets",
            Self::EndOffsets { .. } => "end_offsets",
            Self::PartitionCommitted { .. } => "partition_committed_offset",
            Self::PartitionEnd { .. } => "partition_end_offset",
        }
    }
}

fn partition_problem(code: Option<RDKafkaErrorCode>) -> String {
    code.map_or_else(
        || "Kafka's answer has no offset for it".to_owned(),
        |code| code.to_string(),
    )
}

/// Reads, without joining the group or committing anything, the end offset of every partition
/// of `topics` and the offset `group` committed for it. `config` carries the brokers, TLS and
/// SASL settings (see [`client_config`](crate::client_config)); its `group.id`, if any, is
/// replaced by `group`. Duplicate topics are read once; no topics is an empty answer without
/// any request.
///
/// Bounded by [`GROUP_OFFSETS_TIMEOUT`] in total. A missing topic is
/// [`LagError::MissingTopics`] naming it; an unreachable broker is [`LagError::Unreachable`]
/// naming the brokers and librdkafka's cause. The module documentation states the whole
/// contract.
///
/// ```no_run
/// # async fn example(config: rdkafka::ClientConfig) -> Result<(), panopticon_kafka::LagError> {
/// let offsets = panopticon_kafka::group_offsets(&config, "ingest", &["apm.logs"]).await?;
/// for p in &offsets.partitions {
///     let lag = p.committed.map(|committed| p.end - committed);
///     tracing::info!(topic = p.topic, partition = p.partition, ?lag, "lag");
/// }
/// # Ok(()) }
/// ```
///
/// # Panics
/// Outside a Tokio runtime (the reads run on Tokio's blocking pool).
pub async fn group_offsets(
    config: &ClientConfig,
    group: &str,
    topics: &[&str],
) -> Result<GroupOffsets, LagError> {
    let topics = validated_topics(group, topics)?;
    if topics.is_empty() {
        return Ok(GroupOffsets {
            group: group.to_owned(),
            partitions: Vec::new(),
        });
    }
    let brokers = bootstrap_servers(config);
    let config = config.clone();
    let owned_group = group.to_owned();
    // Every librdkafka call below blocks the calling thread until its answer or its timeout.
    let read = tokio::task::spawn_blocking(move || read_offsets(&config, &owned_group, &topics));
    match read.await {
        Ok(offsets) => offsets,
        Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
        Err(_) => Err(LagError::Unreachable(Unreachable::shutting_down(brokers))),
    }
}

// ---------------------------------------------------------------------------------------------
// Pure: validation, what to ask, assembling the answers.
// ---------------------------------------------------------------------------------------------

/// The asked topics, checked, deduplicated and sorted.
fn validated_topics(group: &str, topics: &[&str]) -> Result<Vec<String>, LagError> {
    let invalid = |reason: String| LagError::InvalidRequest {
        group: group.to_owned(),
        reason,
    };
    if group.is_empty() {
        return Err(invalid("the group name is empty".to_owned()));
    }
    let mut unique = BTreeSet::new();
    for topic in topics {
        if let Some(reason) = invalid_topic_name(topic) {
            return Err(invalid(format!("topic {topic:?}: {reason}")));
        }
        unique.insert((*topic).to_owned());
    }
    Ok(unique.into_iter().collect())
}

/// One topic as the cluster's metadata describes it.
#[derive(Debug, Clone, PartialEq)]
struct TopicMetadata {
    name: String,
    /// The error the metadata carries for the topic, if any.
    error: Option<RDKafkaErrorCode>,
    /// The partition ids.
    partitions: Vec<i32>,
}

/// The (topic, partition) pairs to ask about, sorted: every partition of every asked topic.
/// Absent topics (or those the metadata reports as unknown) are [`LagError::MissingTopics`],
/// all of them at once.
fn partitions_to_query(
    group: &str,
    topics: &[String],
    metadata: &[TopicMetadata],
) -> Result<Vec<(String, i32)>, LagError> {
    let by_name: HashMap<&str, &TopicMetadata> =
        metadata.iter().map(|t| (t.name.as_str(), t)).collect();
    let mut missing = Vec::new();
    let mut partitions = Vec::new();
    for topic in topics {
        let Some(described) = by_name.get(topic.as_str()) else {
            missing.push(topic.clone());
            continue;
        };
        match described.error {
            Some(RDKafkaErrorCode::UnknownTopicOrPartition) => {
                missing.push(topic.clone());
                continue;
            }
            // A partition-level problem (a leader election, say) still lists the partitions;
            // it surfaces, if it lasts, as that partition's offset error.
            Some(code) if described.partitions.is_empty() => {
                return Err(LagError::Topic {
                    topic: topic.clone(),
                    code,
                });
            }
            _ => {}
        }
        partitions.extend(described.partitions.iter().map(|&p| (topic.clone(), p)));
    }
    if !missing.is_empty() {
        missing.sort();
        return Err(LagError::MissingTopics {
            group: group.to_owned(),
            topics: missing,
        });
    }
    partitions.sort();
    Ok(partitions)
}

/// What an offsets request answered for one partition.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Answer {
    offset: Offset,
    error: Option<RDKafkaErrorCode>,
}

type Answers = HashMap<(String, i32), Answer>;

/// Pairs each partition with its answers. A committed offset that is not a real offset (the
/// "invalid" offset Kafka answers when the group committed nothing) is `None`; an end offset
/// must be real.
fn assemble(
    group: &str,
    partitions: &[(String, i32)],
    committed: &Answers,
    ends: &Answers,
) -> Result<GroupOffsets, LagError> {
    let mut offsets = Vec::with_capacity(partitions.len());
    for (topic, partition) in partitions {
        let key = (topic.clone(), *partition);
        let committed = match committed.get(&key) {
            Some(Answer {
                error: None,
                offset,
            }) => match offset {
                Offset::Offset(offset) if *offset >= 0 => Some(*offset),
                _ => None,
            },
            answer => {
                return Err(LagError::PartitionCommitted {
                    group: group.to_owned(),
                    topic: topic.clone(),
                    partition: *partition,
                    code: answer.and_then(|a| a.error),
                });
            }
        };
        let end = match ends.get(&key) {
            Some(Answer {
                error: None,
                offset: Offset::Offset(end),
            }) if *end >= 0 => *end,
            answer => {
                return Err(LagError::PartitionEnd {
                    topic: topic.clone(),
                    partition: *partition,
                    code: answer.and_then(|a| a.error),
                });
            }
        };
        offsets.push(PartitionOffsets {
            topic: topic.clone(),
            partition: *partition,
            end,
            committed,
        });
    }
    offsets.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    Ok(GroupOffsets {
        group: group.to_owned(),
        partitions: offsets,
    })
}

// ---------------------------------------------------------------------------------------------
// IO (blocking; runs on Tokio's blocking pool).
// ---------------------------------------------------------------------------------------------

/// The blocking body of [`group_offsets`], for validated, non-empty `topics`.
fn read_offsets(
    config: &ClientConfig,
    group: &str,
    topics: &[String],
) -> Result<GroupOffsets, LagError> {
    let deadline = Instant::now() + GROUP_OFFSETS_TIMEOUT;
    let metadata = observe_topics(config, topics, remaining(deadline).min(METADATA_TIMEOUT))?;
    let partitions = partitions_to_query(group, topics, &metadata)?;

    let consumer = reading_consumer(config, group)?;
    let committed = partition_list(&partitions, Offset::Invalid)
        .and_then(|asked| consumer.committed_offsets(asked, remaining(deadline)))
        .map_err(|cause| LagError::CommittedOffsets {
            group: group.to_owned(),
            cause,
        })?;
    // ListOffsets with the timestamp -1 ("latest") answers each partition's end offset: one
    // request per leader, where `fetch_watermarks` would make one per partition.
    let ends = partition_list(&partitions, Offset::End)
        .and_then(|asked| consumer.offsets_for_times(asked, remaining(deadline)))
        .map_err(|cause| LagError::EndOffsets {
            topics: topics.to_vec(),
            cause,
        })?;
    assemble(group, &partitions, &answers(&committed), &answers(&ends))
}

impl From<ProbeFailure> for LagError {
    fn from(failure: ProbeFailure) -> Self {
        match failure {
            ProbeFailure::Client(cause) => LagError::Client { cause },
            ProbeFailure::Unreachable(unreachable) => LagError::Unreachable(unreachable),
        }
    }
}

fn remaining(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

/// The metadata of the asked topics that exist. This is also the reachability check.
fn observe_topics(
    config: &ClientConfig,
    topics: &[String],
    timeout: Duration,
) -> Result<Vec<TopicMetadata>, LagError> {
    let metadata = probe_metadata(config, timeout)?;
    Ok(metadata
        .topics()
        .iter()
        .filter(|t| topics.iter().any(|asked| asked == t.name()))
        .map(|t| TopicMetadata {
            name: t.name().to_owned(),
            error: t.error().map(RDKafkaErrorCode::from),
            partitions: t.partitions().iter().map(|p| p.id()).collect(),
        })
        .collect())
}

/// A consumer in `group` that only reads: it never subscribes (so never joins the group),
/// never commits, and sees end offsets as the high watermark.
fn reading_consumer(config: &ClientConfig, group: &str) -> Result<BaseConsumer, LagError> {
    let mut config = config.clone();
    config
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("allow.auto.create.topics", "false")
        .set("isolation.level", "read_uncommitted");
    config.create().map_err(|cause| LagError::Client { cause })
}

fn partition_list(partitions: &[(String, i32)], offset: Offset) -> KafkaResult<TopicPartitionList> {
    let mut list = TopicPartitionList::with_capacity(partitions.len());
    for (topic, partition) in partitions {
        list.add_partition_offset(topic, *partition, offset)?;
    }
    Ok(list)
}

fn answers(list: &TopicPartitionList) -> Answers {
    list.elements()
        .iter()
        .map(|element| {
            let error = match element.error() {
                Ok(()) => None,
                Err(error) => Some(error.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail)),
            };
            (
                (element.topic().to_owned(), element.partition()),
                Answer {
                    offset: element.offset(),
                    error,
                },
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn described(name: &str, partitions: &[i32]) -> TopicMetadata {
        TopicMetadata {
            name: name.to_owned(),
            error: None,
            partitions: partitions.to_vec(),
        }
    }

    fn answered(entries: &[(&str, i32, Offset)]) -> Answers {
        entries
            .iter()
            .map(|&(topic, partition, offset)| {
                (
                    (topic.to_owned(), partition),
                    Answer {
                        offset,
                        error: None,
                    },
                )
            })
            .collect()
    }

    fn pairs(entries: &[(&str, i32)]) -> Vec<(String, i32)> {
        entries.iter().map(|&(t, p)| (t.to_owned(), p)).collect()
    }

    fn offsets(topic: &str, partition: i32, end: i64, committed: Option<i64>) -> PartitionOffsets {
        PartitionOffsets {
            topic: topic.to_owned(),
            partition,
            end,
            committed,
        }
    }

    #[test]
    fn topics_are_deduplicated_and_sorted() {
        assert_eq!(
            validated_topics("ingest", &["b", "a", "b"]).unwrap(),
            vec!["a".to_owned(), "b".to_owned()]
        );
        assert!(validated_topics("ingest", &[]).unwrap().is_empty());
    }

    #[test]
    fn an_empty_group_or_an_invalid_topic_name_is_refused_before_any_request() {
        let error = validated_topics("", &["apm.logs"]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid request for the offsets of consumer group \"\": the group name is empty"
        );
        let error = validated_topics("ingest", &["apm.logs", "apm logs"]).unwrap_err();
        let message = error.to_string();
        assert!(
            message.starts_with(
                "invalid request for the offsets of consumer group \"ingest\": topic \"apm logs\": "
            ),
            "{message}"
        );
        assert!(message.contains("contains ' '"), "{message}");
        assert_eq!(error.metric_label(), "invalid_request");
    }

    #[test]
    fn every_partition_of_every_asked_topic_is_queried_in_order() {
        let metadata = [
            described("other", &[0]),
            described("b", &[1, 0]),
            // Partition ids are taken from the metadata, not assumed to be 0..n.
            described("a", &[2, 0, 5]),
        ];
        let asked = ["a".to_owned(), "b".to_owned()];
        assert_eq!(
            partitions_to_query("g", &asked, &metadata).unwrap(),
            pairs(&[("a", 0), ("a", 2), ("a", 5), ("b", 0), ("b", 1)])
        );
    }

    #[test]
    fn all_missing_topics_are_named_at_once() {
        let metadata = [
            described("present", &[0]),
            TopicMetadata {
                error: Some(RDKafkaErrorCode::UnknownTopicOrPartition),
                ..described("unknown", &[])
            },
        ];
        let asked = [
            "absent".to_owned(),
            "present".to_owned(),
            "unknown".to_owned(),
        ];
        let error = partitions_to_query("ingest", &asked, &metadata).unwrap_err();
        assert!(
            matches!(&error, LagError::MissingTopics { group, topics }
                if group == "ingest" && topics == &["absent".to_owned(), "unknown".to_owned()]),
            "{error:?}"
        );
        assert_eq!(
            error.to_string(),
            "cannot read the lag of consumer group ingest: topics absent, unknown do not exist"
        );
        let one = partitions_to_query("ingest", &["absent".to_owned()], &metadata).unwrap_err();
        assert_eq!(
            one.to_string(),
            "cannot read the lag of consumer group ingest: topic absent does not exist"
        );
    }

    #[test]
    fn a_topic_error_without_partitions_fails_and_with_partitions_does_not() {
        let unauthorized = TopicMetadata {
            error: Some(RDKafkaErrorCode::TopicAuthorizationFailed),
            ..described("secret", &[])
        };
        let error = partitions_to_query("g", &["secret".to_owned()], &[unauthorized]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "cannot describe topic secret: TopicAuthorizationFailed (Broker: Topic authorization \
             failed)"
        );
        assert_eq!(error.metric_label(), "topic");

        let electing = TopicMetadata {
            error: Some(RDKafkaErrorCode::LeaderNotAvailable),
            ..described("busy", &[0, 1])
        };
        assert_eq!(
            partitions_to_query("g", &["busy".to_owned()], &[electing]).unwrap(),
            pairs(&[("busy", 0), ("busy", 1)])
        );
    }

    #[test]
    fn offsets_are_paired_per_partition_and_no_commit_is_none() {
        let partitions = pairs(&[("a", 0), ("a", 1), ("a", 2), ("b", 0)]);
        let committed = answered(&[
            ("a", 0, Offset::Offset(4)),
            ("a", 1, Offset::Offset(20)),
            ("a", 2, Offset::Invalid),
            ("b", 0, Offset::Offset(0)),
        ]);
        let ends = answered(&[
            ("b", 0, Offset::Offset(0)),
            ("a", 2, Offset::Offset(30)),
            ("a", 1, Offset::Offset(20)),
            ("a", 0, Offset::Offset(10)),
        ]);
        assert_eq!(
            assemble("g", &partitions, &committed, &ends).unwrap(),
            GroupOffsets {
                group: "g".to_owned(),
                partitions: vec![
                    offsets("a", 0, 10, Some(4)),
                    offsets("a", 1, 20, Some(20)),
                    offsets("a", 2, 30, None),
                    offsets("b", 0, 0, Some(0)),
                ],
            }
        );
    }

    #[test]
    fn a_partition_error_names_the_partition_and_the_code() {
        let partitions = pairs(&[("a", 0), ("a", 1)]);
        let mut committed = answered(&[("a", 0, Offset::Offset(1)), ("a", 1, Offset::Invalid)]);
        let ends = answered(&[("a", 0, Offset::Offset(5)), ("a", 1, Offset::Offset(5))]);
        committed.insert(
            ("a".to_owned(), 1),
            Answer {
                offset: Offset::Invalid,
                error: Some(RDKafkaErrorCode::UnstableOffsetCommit),
            },
        );
        let error = assemble("ingest", &partitions, &committed, &ends).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "cannot read the committed offset of consumer group ingest for topic a partition \
                 1: {}",
                RDKafkaErrorCode::UnstableOffsetCommit
            )
        );
        assert_eq!(error.metric_label(), "partition_committed_offset");

        let committed = answered(&[("a", 0, Offset::Offset(1)), ("a", 1, Offset::Invalid)]);
        let mut ends = ends;
        ends.insert(
            ("a".to_owned(), 0),
            Answer {
                offset: Offset::End,
                error: Some(RDKafkaErrorCode::NotLeaderForPartition),
            },
        );
        let error = assemble("ingest", &partitions, &committed, &ends).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "cannot read the end offset of topic a partition 0: {}",
                RDKafkaErrorCode::NotLeaderForPartition
            )
        );
        assert_eq!(error.metric_label(), "partition_end_offset");
    }

    #[test]
    fn an_answer_without_a_real_end_offset_is_an_error_not_a_zero() {
        let partitions = pairs(&[("a", 0)]);
        let committed = answered(&[("a", 0, Offset::Invalid)]);
        // ListOffsets left the asked "latest" (-1) in place: no answer for the partition.
        let ends = answered(&[("a", 0, Offset::End)]);
        let error = assemble("g", &partitions, &committed, &ends).unwrap_err();
        assert_eq!(
            error.to_string(),
            "cannot read the end offset of topic a partition 0: Kafka's answer has no offset for it"
        );
        let error = assemble("g", &partitions, &committed, &Answers::new()).unwrap_err();
        assert!(
            matches!(error, LagError::PartitionEnd { code: None, .. }),
            "{error:?}"
        );
        let error = assemble("g", &partitions, &Answers::new(), &ends).unwrap_err();
        assert!(
            matches!(error, LagError::PartitionCommitted { code: None, .. }),
            "{error:?}"
        );
    }

    #[test]
    fn the_asked_offsets_are_what_the_requests_expect() {
        // `offsets_for_times` reads each offset as a timestamp: -1 asks for the latest offset.
        let list = partition_list(&pairs(&[("a", 0), ("b", 3)]), Offset::End).unwrap();
        let asked = answers(&list);
        assert_eq!(asked.len(), 2);
        for answer in asked.values() {
            assert_eq!(answer.offset.to_raw(), Some(-1));
            assert_eq!(answer.error, None);
        }
        assert!(asked.contains_key(&("b".to_owned(), 3)));
    }

    #[test]
    fn request_failures_name_the_group_or_topics_and_the_cause() {
        let cases = [
            (
                LagError::CommittedOffsets {
                    group: "ingest".into(),
                    cause: KafkaError::OffsetFetch(RDKafkaErrorCode::OperationTimedOut),
                },
                "cannot read the committed offsets of consumer group ingest: Offset fetch error: \
                 OperationTimedOut (Local: Timed out)",
            ),
            (
                LagError::EndOffsets {
                    topics: vec!["apm.logs".into(), "apm.spans".into()],
                    cause: KafkaError::OffsetFetch(RDKafkaErrorCode::OperationTimedOut),
                },
                "cannot read the end offsets of topics apm.logs, apm.spans: Offset fetch error: \
                 OperationTimedOut (Local: Timed out)",
            ),
            (
                LagError::Unreachable(Unreachable {
                    brokers: "kafka:9092".into(),
                    cause: KafkaError::MetadataFetch(RDKafkaErrorCode::BrokerTransportFailure),
                    detail: Some("Connect to ipv4#10.0.0.1:9092 failed: Connection refused".into()),
                }),
                "cannot reach Kafka at kafka:9092: Connect to ipv4#10.0.0.1:9092 failed: \
                 Connection refused (Meta data fetch error: BrokerTransportFailure (Local: Broker \
                 transport failure))",
            ),
        ];
        for (error, expected) in cases {
            assert_eq!(error.to_string(), expected);
        }
    }
}
