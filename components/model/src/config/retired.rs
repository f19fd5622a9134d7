//! Variables the NestJS backend read that Panopticon does not, each with what replaces it.
//! Components warn at start about every one that is set, so a carried-over environment file
//! never changes behaviour silently; the configuration reference lists them.

use super::env::EnvSource;

/// A variable that is no longer read.
#[derive(Debug, PartialEq, Eq)]
pub struct Retired {
    pub name: &'static str,
    /// What to use instead, or why nothing is needed.
    pub instead: &'static str,
}

const fn retired(name: &'static str, instead: &'static str) -> Retired {
    Retired { name, instead }
}

const LIFECYCLE: &str = "lifecycle (rollover, retention) is written by the operator from \
                         spec.elasticsearch.rollover and spec.elasticsearch.streams.*.retention";
const BROKERS_AS_GIVEN: &str = "KAFKA_BROKERS is used exactly as given";
const ONE_GROUP: &str = "one client id (KAFKA_CLIENT_ID) and one consumer group \
                         (KAFKA_CONSUMER_GROUP) per component";
const METRICS: &str = "Prometheus metrics on /metrics";
const ONE_CACHE: &str = "one response cache: METRICS_CACHE_* and QUERY_CACHE_*";

/// Every retired variable.
pub static RETIRED: &[Retired] = &[
    retired(
        "USE_ISM",
        "the engine is detected from the cluster; ILM or ISM follows",
    ),
    retired("OPENSEARCH_ISM_POLICY", LIFECYCLE),
    retired("ELASTICSEARCH_APM_LOG_ILM_POLICY", LIFECYCLE),
    retired("ELASTICSEARCH_APM_SPAN_ILM_POLICY", LIFECYCLE),
    retired("ELASTICSEARCH_APM_ROLLUP_ILM_POLICY", LIFECYCLE),
    retired("ELASTICSEARCH_APM_LOG_ROLLOVER_SIZE", LIFECYCLE),
    retired("ELASTICSEARCH_APM_SPAN_ROLLOVER_SIZE", LIFECYCLE),
    retired("ELASTICSEARCH_APM_LOG_ROLLOVER_AGE", LIFECYCLE),
    retired("ELASTICSEARCH_APM_SPAN_ROLLOVER_AGE", LIFECYCLE),
    retired("KAFKA_BROKERS_LOCAL", BROKERS_AS_GIVEN),
    retired("KAFKA_IN_DOCKER", BROKERS_AS_GIVEN),
    retired("DEBUG_KAFKA_BROKERS", BROKERS_AS_GIVEN),
    retired(
        "KAFKA_AWS_REGION",
        "AWS MSK IAM authentication is not supported",
    ),
    retired(
        "KAFKA_CONCURRENT_PARTITIONS",
        "nothing: partitions are consumed concurrently",
    ),
    retired(
        "KAFKA_ALLOW_AUTO_TOPIC_CREATION",
        "KAFKA_CREATE_TOPICS (ingest creates its missing topics)",
    ),
    retired("KAFKA_SPAN_CLIENT_ID", ONE_GROUP),
    retired("KAFKA_SPAN_CONSUMER_GROUP", ONE_GROUP),
    retired("KAFKA_APM_LOG_ERROR_CLIENT_ID", ONE_GROUP),
    retired("ERROR_STREAM_KAFKA_CLIENT_ID", "KAFKA_CLIENT_ID"),
    retired(
        "ERROR_STREAM_KAFKA_GROUP_ID",
        "nothing: every alert replica reads every partition, without a consumer group",
    ),
    retired("STREAM_THROUGHPUT_BATCH_SIZE", METRICS),
    retired("STREAM_THROUGHPUT_TARGET_COUNT", METRICS),
    retired("SERVICE_METRICS_PROFILE", METRICS),
    retired(
        "ROLLUP_THRESHOLD_MINUTES",
        "nothing: query uses a rollup wherever it covers a window",
    ),
    retired("ROLLUP_BUCKET_MINUTES", "ROLLUP_BUCKET_SECONDS"),
    retired(
        "ROLLUP_MAX_QUERY_BUCKETS",
        "nothing: query uses a rollup wherever it covers a window",
    ),
    retired("ROLLUP_CACHE_TTL_SECONDS", ONE_CACHE),
    retired("ROLLUP_CACHE_PREFIX", ONE_CACHE),
    retired("ROLLUP_INDEX_PREFIX", "ELASTICSEARCH_APM_ROLLUP_STREAM"),
];

/// The retired variables set (non-blank) in `env`.
pub fn set_in(env: &EnvSource<'_>) -> Vec<&'static Retired> {
    RETIRED.iter().filter(|r| env.is_set(r.name)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::vars;

    #[test]
    fn finds_the_set_ones_and_ignores_blank_and_current_variables() {
        let env = EnvSource::from_pairs(&[
            ("USE_ISM", "true"),
            ("ROLLUP_BUCKET_MINUTES", " "),
            ("ERROR_STREAM_KAFKA_GROUP_ID", "g"),
            ("KAFKA_BROKERS", "b:9092"),
        ]);
        let names: Vec<_> = set_in(&env).iter().map(|r| r.name).collect();
        assert_eq!(names, ["USE_ISM", "ERROR_STREAM_KAFKA_GROUP_ID"]);
    }

    #[test]
    fn no_retired_variable_is_also_declared() {
        for reads in vars::ALL {
            for group in reads.groups {
                for var in group.vars {
                    assert!(
                        RETIRED.iter().all(|r| r.name != var.name),
                        "{} is declared and retired",
                        var.name
                    );
                }
            }
        }
    }
}
