//! Every environment variable the `panopticon` subcommands read, declared once (see
//! [`super::var`]), and which subcommand reads which ([`INGEST`], [`ROLLUP`], [`QUERY`],
//! [`ALERT`], [`SAMPLE`]). The names are a contract with existing deployments: they never
//! change, and neither do the defaults without a release note.

use super::var::{Group, Reads, Secrecy, Unset, Var, declare};

// ---------------------------------------------------------------- Kafka

declare! {
    /// Bootstrap servers, comma-separated `host:port`. Unset: `KAFKA_BROKER_FALLBACK`, then
    /// `localhost:9092`.
    KAFKA_BROKERS = Unset::Value("localhost:9092"), Plain;
    /// Bootstrap servers used when `KAFKA_BROKERS` is unset.
    KAFKA_BROKER_FALLBACK = Unset::Empty, Plain;
    /// TLS to the brokers.
    KAFKA_SSL = Unset::Value("false"), Plain;
    /// Verify the brokers' certificates. Turning it off is logged as a warning at every start.
    KAFKA_SSL_REJECT_UNAUTHORIZED = Unset::Value("true"), Plain;
    /// PEM file of the CA that signed the brokers' certificates; unset: the system's roots.
    KAFKA_SSL_CA_FILE = Unset::Empty, Plain;
    /// SASL mechanism: `plain`, `scram-sha-256` or `scram-sha-512`; unset: no SASL.
    KAFKA_SASL_MECHANISM = Unset::Empty, Plain;
    /// SASL user name, required with a mechanism.
    KAFKA_SASL_USERNAME = Unset::Empty, Credential;
    /// SASL password, required with a mechanism.
    KAFKA_SASL_PASSWORD = Unset::Empty, Secret;
    /// Most bytes one consumer fetch returns (at least 1024). Fetch buffers are memory outside
    /// ingest's in-flight cap: larger values raised ingest's peak memory for no throughput gain.
    KAFKA_FETCH_MAX_BYTES = Unset::Value("8388608"), Plain;
    /// Most bytes one fetch returns per partition (at least 1024).
    KAFKA_FETCH_MAX_BYTES_PER_PARTITION = Unset::Value("2097152"), Plain;
    /// Bytes a fetch waits for before it returns (at least 1).
    KAFKA_FETCH_MIN_BYTES = Unset::Value("1048576"), Plain;
    /// Longest a fetch waits for `KAFKA_FETCH_MIN_BYTES`, in milliseconds (at least 1).
    KAFKA_FETCH_MAX_WAIT_MS = Unset::Value("50"), Plain;
}

pub static KAFKA: Group = Group {
    title: "Kafka",
    vars: &[
        &KAFKA_BROKERS,
        &KAFKA_BROKER_FALLBACK,
        &KAFKA_SSL,
        &KAFKA_SSL_REJECT_UNAUTHORIZED,
        &KAFKA_SSL_CA_FILE,
        &KAFKA_SASL_MECHANISM,
        &KAFKA_SASL_USERNAME,
        &KAFKA_SASL_PASSWORD,
        &KAFKA_FETCH_MAX_BYTES,
        &KAFKA_FETCH_MAX_BYTES_PER_PARTITION,
        &KAFKA_FETCH_MIN_BYTES,
        &KAFKA_FETCH_MAX_WAIT_MS,
    ],
};

// ---------------------------------------------------------------- Kafka topics

declare! {
    /// Topic of the log events ingest consumes.
    KAFKA_APM_LOG_TOPIC = Unset::Value("apm.logs"), Plain;
    /// Topic of the span events ingest consumes.
    KAFKA_APM_SPAN_TOPIC = Unset::Value("apm.spans"), Plain;
    /// Topic ingest forwards ERROR logs to and alert pushes to browsers.
    KAFKA_APM_LOG_ERROR_TOPIC = Unset::Value("apm.logs.error"), Plain;
    /// Topic of the events ingest could not index (dead letters), with the reason.
    KAFKA_APM_DLQ_TOPIC = Unset::Value("apm.dlq"), Plain;
    /// Partitions of the log topic when a component creates it (`KAFKA_CREATE_TOPICS`); an
    /// existing topic is left as it is. The operator's default.
    KAFKA_APM_LOG_TOPIC_PARTITIONS = Unset::Value("6"), Plain;
    /// Partitions of the span topic when a component creates it.
    KAFKA_APM_SPAN_TOPIC_PARTITIONS = Unset::Value("6"), Plain;
    /// Partitions of the error topic when a component creates it.
    KAFKA_APM_LOG_ERROR_TOPIC_PARTITIONS = Unset::Value("3"), Plain;
    /// Partitions of the dead-letter topic when a component creates it.
    KAFKA_APM_DLQ_TOPIC_PARTITIONS = Unset::Value("3"), Plain;
    /// Replicas of each partition of the topics a component creates (at least 1).
    KAFKA_TOPIC_REPLICATION_FACTOR = Unset::Rule("the brokers' default.replication.factor"), Plain;
    /// Create the topics at start when they are missing, with the `..._PARTITIONS` and
    /// `KAFKA_TOPIC_REPLICATION_FACTOR` given. The operator sets it to false: it creates the
    /// topics itself, with retention.
    KAFKA_CREATE_TOPICS = Unset::Value("true"), Plain;
}

// ---------------------------------------------------------------- Elasticsearch

declare! {
    /// Base URL of Elasticsearch or OpenSearch, `http://` or `https://`.
    ELASTICSEARCH_NODE = Unset::Value("http://localhost:9200"), Plain;
    /// Basic-auth user; the password is `OPENSEARCH_PASSWORD` (or `ELASTICSEARCH_PASSWORD`).
    OPENSEARCH_USERNAME = Unset::Rule("ELASTICSEARCH_USERNAME"), Credential;
    /// Basic-auth user when `OPENSEARCH_USERNAME` is unset.
    ELASTICSEARCH_USERNAME = Unset::Empty, Credential;
    /// Basic-auth password.
    OPENSEARCH_PASSWORD = Unset::Rule("ELASTICSEARCH_PASSWORD"), Secret;
    /// Basic-auth password when `OPENSEARCH_PASSWORD` is unset.
    ELASTICSEARCH_PASSWORD = Unset::Empty, Secret;
    /// API key (base64 `id:key`, as Elasticsearch issues it); takes precedence over basic auth.
    ELASTICSEARCH_API_KEY = Unset::Empty, Secret;
    /// PEM file of the CA that signed the server certificate; unset: the system's roots.
    ELASTICSEARCH_CA_FILE = Unset::Empty, Plain;
    /// Verify the server certificate. Turning it off is logged as a warning at every start.
    OPENSEARCH_REJECT_UNAUTHORIZED = Unset::Value("true"), Plain;
    /// Timeout of one request, in milliseconds (at least 100).
    ELASTICSEARCH_REQUEST_TIMEOUT_MS = Unset::Value("30000"), Plain;
    /// Create the index templates and data streams at start. The operator sets it to false:
    /// it provisions them itself with lifecycle settings, and the components only wait for them.
    ELASTICSEARCH_MANAGE_TEMPLATES = Unset::Value("true"), Plain;
    /// `index.number_of_replicas` of the index templates a component creates
    /// (`ELASTICSEARCH_MANAGE_TEMPLATES`), as the operator's default. On a one-node cluster
    /// set 0, or the indices stay yellow.
    ELASTICSEARCH_INDEX_REPLICAS = Unset::Value("1"), Plain;
    /// Data stream of the logs.
    ELASTICSEARCH_APM_LOG_STREAM = Unset::Value("logs-apm"), Plain;
    /// Data stream of the spans.
    ELASTICSEARCH_APM_SPAN_STREAM = Unset::Value("traces-apm"), Plain;
    /// Prefix of the rollup indices (per-service and per-endpoint metrics).
    ELASTICSEARCH_APM_ROLLUP_STREAM = Unset::Value("metrics-apm"), Plain;
    /// Index template of the log data stream.
    ELASTICSEARCH_APM_LOG_TEMPLATE = Unset::Rule("<ELASTICSEARCH_APM_LOG_STREAM>-template"), Plain;
    /// Index template of the span data stream.
    ELASTICSEARCH_APM_SPAN_TEMPLATE = Unset::Rule("<ELASTICSEARCH_APM_SPAN_STREAM>-template"), Plain;
    /// Index template of the per-service rollup indices.
    ELASTICSEARCH_APM_ROLLUP_TEMPLATE = Unset::Rule("<ELASTICSEARCH_APM_ROLLUP_STREAM>-template"), Plain;
}

pub static ELASTICSEARCH: Group = Group {
    title: "Elasticsearch / OpenSearch",
    vars: &[
        &ELASTICSEARCH_NODE,
        &OPENSEARCH_USERNAME,
        &ELASTICSEARCH_USERNAME,
        &OPENSEARCH_PASSWORD,
        &ELASTICSEARCH_PASSWORD,
        &ELASTICSEARCH_API_KEY,
        &ELASTICSEARCH_CA_FILE,
        &OPENSEARCH_REJECT_UNAUTHORIZED,
        &ELASTICSEARCH_REQUEST_TIMEOUT_MS,
        &ELASTICSEARCH_MANAGE_TEMPLATES,
        &ELASTICSEARCH_INDEX_REPLICAS,
        &ELASTICSEARCH_APM_LOG_STREAM,
        &ELASTICSEARCH_APM_SPAN_STREAM,
        &ELASTICSEARCH_APM_ROLLUP_STREAM,
        &ELASTICSEARCH_APM_LOG_TEMPLATE,
        &ELASTICSEARCH_APM_SPAN_TEMPLATE,
        &ELASTICSEARCH_APM_ROLLUP_TEMPLATE,
    ],
};

// ---------------------------------------------------------------- ingest

declare! {
    /// Consumer group of all ingest replicas.
    KAFKA_CONSUMER_GROUP = Unset::Value("panopticon-ingest"), Plain;
    /// Kafka client id of ingest.
    INGEST_CLIENT_ID as "KAFKA_CLIENT_ID" = Unset::Value("panopticon-ingest"), Plain;
    /// How often settled offsets are committed, in milliseconds (at least 10).
    KAFKA_COMMIT_INTERVAL_MS = Unset::Value("1000"), Plain;
    /// Documents per `_bulk` request (at least 1).
    BULK_BATCH_SIZE = Unset::Value("5000"), Plain;
    /// Bytes per `_bulk` request, in MiB, may be fractional (0.001 to 512).
    BULK_BATCH_BYTES_MB = Unset::Value("8"), Plain;
    /// Longest a document waits for its batch to fill, in milliseconds (at least 1).
    BULK_FLUSH_INTERVAL_MS = Unset::Value("1000"), Plain;
    /// `_bulk` requests in flight at once (at least 1).
    BULK_MAX_PARALLEL_FLUSHES = Unset::Value("4"), Plain;
    /// Most events read from Kafka and not yet settled; past it, consumption pauses.
    INGEST_MAX_INFLIGHT_EVENTS = Unset::Value("100000"), Plain;
    /// Most MiB of such events; past it, consumption pauses. Must hold one full batch.
    INGEST_MAX_INFLIGHT_MB = Unset::Value("64"), Plain;
    /// How long a SIGTERM may take to flush and commit, in milliseconds (at least 100), inside
    /// Kubernetes' default 30 s grace period.
    INGEST_SHUTDOWN_TIMEOUT_MS = Unset::Value("25000"), Plain;
    /// Interval of the throughput log line, in milliseconds (at least 100).
    STREAM_THROUGHPUT_MIN_INTERVAL_MS = Unset::Value("10000"), Plain;
    /// Longest `message` of an event, in bytes; a longer one is dead-lettered.
    INGEST_MAX_MESSAGE_BYTES = Unset::Value("65536"), Plain;
    /// Longest keyword field (service, environment, ids, name, method, path), in bytes.
    INGEST_MAX_KEYWORD_BYTES = Unset::Value("1024"), Plain;
    /// Most labels per event.
    INGEST_MAX_LABELS = Unset::Value("64"), Plain;
    /// Longest label key, in bytes.
    INGEST_MAX_LABEL_KEY_BYTES = Unset::Value("128"), Plain;
    /// Longest label value, in bytes.
    INGEST_MAX_LABEL_VALUE_BYTES = Unset::Value("4096"), Plain;
    /// How far in the future a timestamp may lie, in seconds, before the event is refused.
    INGEST_MAX_FUTURE_SKEW_SECS = Unset::Value("86400"), Plain;
}

pub static INGEST_TOPICS: Group = Group {
    title: "Kafka topics",
    vars: &[
        &KAFKA_APM_LOG_TOPIC,
        &KAFKA_APM_SPAN_TOPIC,
        &KAFKA_APM_LOG_ERROR_TOPIC,
        &KAFKA_APM_DLQ_TOPIC,
        &KAFKA_CREATE_TOPICS,
        &KAFKA_APM_LOG_TOPIC_PARTITIONS,
        &KAFKA_APM_SPAN_TOPIC_PARTITIONS,
        &KAFKA_APM_LOG_ERROR_TOPIC_PARTITIONS,
        &KAFKA_APM_DLQ_TOPIC_PARTITIONS,
        &KAFKA_TOPIC_REPLICATION_FACTOR,
    ],
};

pub static INGEST_OWN: Group = Group {
    title: "Ingest",
    vars: &[
        &KAFKA_CONSUMER_GROUP,
        &INGEST_CLIENT_ID,
        &KAFKA_COMMIT_INTERVAL_MS,
        &BULK_BATCH_SIZE,
        &BULK_BATCH_BYTES_MB,
        &BULK_FLUSH_INTERVAL_MS,
        &BULK_MAX_PARALLEL_FLUSHES,
        &INGEST_MAX_INFLIGHT_EVENTS,
        &INGEST_MAX_INFLIGHT_MB,
        &INGEST_SHUTDOWN_TIMEOUT_MS,
        &STREAM_THROUGHPUT_MIN_INTERVAL_MS,
        &INGEST_MAX_MESSAGE_BYTES,
        &INGEST_MAX_KEYWORD_BYTES,
        &INGEST_MAX_LABELS,
        &INGEST_MAX_LABEL_KEY_BYTES,
        &INGEST_MAX_LABEL_VALUE_BYTES,
        &INGEST_MAX_FUTURE_SKEW_SECS,
    ],
};

pub static INGEST: Reads = Reads {
    command: "ingest",
    groups: &[&KAFKA, &INGEST_TOPICS, &ELASTICSEARCH, &INGEST_OWN],
};

// ---------------------------------------------------------------- rollup

declare! {
    /// Roll up at all; when false the process stays up, idle.
    ROLLUP_AGGREGATOR_ENABLED = Unset::Value("true"), Plain;
    /// Window length in seconds; must divide a day. Query reads the same variable.
    ROLLUP_BUCKET_SECONDS = Unset::Value("60"), Plain;
    /// Cycle period, in milliseconds (at least 100).
    ROLLUP_POLL_INTERVAL_MS = Unset::Value("15000"), Plain;
    /// How long after its end a window is first rolled up, in seconds: spans reach
    /// Elasticsearch after Kafka lag, a bulk flush and a refresh.
    ROLLUP_LATENESS_SECONDS = Unset::Value("120"), Plain;
    /// How long after its first roll-up a window is watched for late spans, in minutes.
    ROLLUP_LATE_HORIZON_MINUTES = Unset::Value("30"), Plain;
    /// Catch-up depth when there is no checkpoint, in minutes.
    ROLLUP_INITIAL_LOOKBACK_MINUTES = Unset::Value("5"), Plain;
    /// Most windows rolled up per cycle (at least 1), so a catch-up makes steady progress.
    ROLLUP_MAX_WINDOWS_PER_CYCLE = Unset::Value("20"), Plain;
    /// Services kept per window; the rest fold into the overflow series. Its product with
    /// `ROLLUP_MAX_ENV_BUCKETS` is at most 10000.
    ROLLUP_MAX_SERVICE_BUCKETS = Unset::Value("200"), Plain;
    /// Environments kept per service and window.
    ROLLUP_MAX_ENV_BUCKETS = Unset::Value("10"), Plain;
    /// Endpoints kept per service, environment and window (at most 10000).
    ROLLUP_MAX_ENDPOINT_BUCKETS = Unset::Value("100"), Plain;
    /// Index holding the checkpoint.
    ROLLUP_CHECKPOINT_INDEX = Unset::Value(".metrics-rollup-state"), Plain;
    /// `auto` (a Lease when running in Kubernetes), `lease`, or `off` (this process always
    /// rolls up).
    ROLLUP_LEADER_ELECTION = Unset::Value("auto"), Plain;
    /// Name of the Lease.
    ROLLUP_LEASE_NAME = Unset::Value("panopticon-rollup"), Plain;
    /// Namespace of the Lease.
    ROLLUP_LEASE_NAMESPACE = Unset::Rule("POD_NAMESPACE, then the service account's namespace"), Plain;
    /// The pod's namespace (Kubernetes' downward API).
    POD_NAMESPACE = Unset::Empty, Plain;
    /// How long a silent leader keeps the Lease, in seconds (at least 3); it renews every
    /// third of it.
    ROLLUP_LEASE_DURATION_SECONDS = Unset::Value("15"), Plain;
}

pub static ROLLUP_OWN: Group = Group {
    title: "Rollup",
    vars: &[
        &ROLLUP_AGGREGATOR_ENABLED,
        &ROLLUP_BUCKET_SECONDS,
        &ROLLUP_POLL_INTERVAL_MS,
        &ROLLUP_LATENESS_SECONDS,
        &ROLLUP_LATE_HORIZON_MINUTES,
        &ROLLUP_INITIAL_LOOKBACK_MINUTES,
        &ROLLUP_MAX_WINDOWS_PER_CYCLE,
        &ROLLUP_MAX_SERVICE_BUCKETS,
        &ROLLUP_MAX_ENV_BUCKETS,
        &ROLLUP_MAX_ENDPOINT_BUCKETS,
        &ROLLUP_CHECKPOINT_INDEX,
        &ROLLUP_LEADER_ELECTION,
        &ROLLUP_LEASE_NAME,
        &ROLLUP_LEASE_NAMESPACE,
        &POD_NAMESPACE,
        &ROLLUP_LEASE_DURATION_SECONDS,
    ],
};

pub static ROLLUP: Reads = Reads {
    command: "rollup",
    groups: &[&ELASTICSEARCH, &ROLLUP_OWN],
};

// ---------------------------------------------------------------- query

declare! {
    /// Listen port of the API.
    PORT = Unset::Value("3001"), Plain;
    /// Origins allowed to read the API from a browser, comma-separated; `*` allows any, and
    /// only then. Unset allows none.
    CORS_ALLOWED_ORIGINS = Unset::Empty, Plain;
    /// Accepted bearer tokens, comma-separated. Auth is on when this or
    /// `QUERY_AUTH_TOKENS_FILE` is set, off otherwise.
    QUERY_AUTH_TOKENS = Unset::Empty, Secret;
    /// File with one accepted bearer token per line (`#` comments).
    QUERY_AUTH_TOKENS_FILE = Unset::Empty, Plain;
    /// Timeout of one request to Elasticsearch, in milliseconds (at least 100); a request
    /// that runs out answers 504.
    QUERY_TIMEOUT_MS = Unset::Value("10000"), Plain;
    /// Redis of the response cache, `redis://` or `rediss://`, without credentials. Unset:
    /// built from `REDIS_HOST`; the cache is off when neither is set.
    REDIS_URL = Unset::Empty, Plain;
    /// Redis host, when `REDIS_URL` is unset.
    REDIS_HOST = Unset::Empty, Plain;
    /// Redis port, with `REDIS_HOST`.
    REDIS_PORT = Unset::Value("6379"), Plain;
    /// TLS to Redis, with `REDIS_HOST`.
    REDIS_USE_TLS = Unset::Value("false"), Plain;
    /// TLS to Redis, with `REDIS_HOST` (same as `REDIS_USE_TLS`).
    REDIS_TLS = Unset::Value("false"), Plain;
    /// Redis user (ACL); the password is `REDIS_PASSWORD`.
    REDIS_USERNAME = Unset::Empty, Credential;
    /// Redis password.
    REDIS_PASSWORD = Unset::Empty, Secret;
    /// Verify Redis' certificate on TLS.
    REDIS_REJECT_UNAUTHORIZED = Unset::Value("true"), Plain;
    /// Verify Redis' certificate on TLS (false turns verification off too).
    REDIS_CHECK_SERVER_IDENTITY = Unset::Value("true"), Plain;
    /// Key prefix of the metrics route's cache entries.
    METRICS_CACHE_PREFIX = Unset::Value("apm:metrics:v1"), Plain;
    /// Key prefix of the other routes' cache entries.
    QUERY_CACHE_PREFIX = Unset::Value("apm:query"), Plain;
    /// Lifetime of a cached metrics answer, in seconds; 0 turns caching of the route off.
    METRICS_CACHE_TTL_SECONDS = Unset::Value("20"), Plain;
    /// Lifetime of a cached answer of the other search routes, in seconds; 0 turns it off.
    QUERY_CACHE_TTL_SECONDS = Unset::Value("10"), Plain;
    /// Live time ranges are rounded down to this many seconds (at least 1), so clients
    /// polling a sliding window share cache entries.
    METRICS_QUANTIZATION_SECONDS = Unset::Value("10"), Plain;
    /// Read rollup documents where they cover the range; false computes every point from
    /// raw spans.
    ROLLUP_ENABLED = Unset::Value("true"), Plain;
    /// Range of a metrics request without `from` and `to`, in minutes.
    SERVICE_METRICS_DEFAULT_WINDOW_MINUTES = Unset::Value("15"), Plain;
}

pub static QUERY_OWN: Group = Group {
    title: "Query",
    vars: &[
        &PORT,
        &CORS_ALLOWED_ORIGINS,
        &QUERY_AUTH_TOKENS,
        &QUERY_AUTH_TOKENS_FILE,
        &QUERY_TIMEOUT_MS,
        &ROLLUP_ENABLED,
        &ROLLUP_BUCKET_SECONDS,
        &SERVICE_METRICS_DEFAULT_WINDOW_MINUTES,
    ],
};

pub static QUERY_CACHE: Group = Group {
    title: "Query cache (Redis)",
    vars: &[
        &REDIS_URL,
        &REDIS_HOST,
        &REDIS_PORT,
        &REDIS_USE_TLS,
        &REDIS_TLS,
        &REDIS_USERNAME,
        &REDIS_PASSWORD,
        &REDIS_REJECT_UNAUTHORIZED,
        &REDIS_CHECK_SERVER_IDENTITY,
        &METRICS_CACHE_PREFIX,
        &QUERY_CACHE_PREFIX,
        &METRICS_CACHE_TTL_SECONDS,
        &QUERY_CACHE_TTL_SECONDS,
        &METRICS_QUANTIZATION_SECONDS,
    ],
};

pub static QUERY: Reads = Reads {
    command: "query",
    groups: &[&ELASTICSEARCH, &QUERY_OWN, &QUERY_CACHE],
};

// ---------------------------------------------------------------- alert

declare! {
    /// Kafka client id of alert.
    ALERT_CLIENT_ID as "KAFKA_CLIENT_ID" = Unset::Value("panopticon-alert"), Plain;
    /// Listen port of Socket.IO, the plain WebSocket and the probes.
    ERROR_STREAM_PORT = Unset::Value("3010"), Plain;
    /// The Socket.IO request path.
    ERROR_STREAM_WS_PATH = Unset::Value("/ws/error-logs"), Plain;
    /// The plain WebSocket path.
    ERROR_STREAM_PLAIN_WS_PATH = Unset::Value("/ws/errors"), Plain;
    /// Web origins allowed to connect, comma-separated; `*` allows any, and only then. Unset
    /// allows same-origin pages and clients that send no `Origin`.
    ERROR_STREAM_WS_ORIGINS = Unset::Empty, Plain;
    /// Accepted bearer tokens, comma-separated. Auth is on when this or
    /// `ERROR_STREAM_AUTH_TOKENS_FILE` is set, off otherwise.
    ERROR_STREAM_AUTH_TOKENS = Unset::Empty, Secret;
    /// File with one accepted bearer token per line (`#` comments).
    ERROR_STREAM_AUTH_TOKENS_FILE = Unset::Empty, Plain;
    /// Errors kept in memory for clients that ask for a replay (at most 10000; 0 keeps none).
    ERROR_STREAM_REPLAY_SIZE = Unset::Value("100"), Plain;
    /// Replay a client gets when it does not ask (`?replay=<n>`); at most
    /// `ERROR_STREAM_REPLAY_SIZE`.
    ERROR_STREAM_REPLAY_ON_CONNECT = Unset::Value("0"), Plain;
    /// Messages queued for one client before it starts missing events (at least 8).
    ERROR_STREAM_CLIENT_QUEUE = Unset::Value("256"), Plain;
    /// How often the topic's partition count is re-read, in seconds (at least 1).
    ERROR_STREAM_TOPIC_REFRESH_SECONDS = Unset::Value("30"), Plain;
    /// Most clients connected at once (at least 1); more are refused until some leave.
    ERROR_STREAM_MAX_CLIENTS = Unset::Value("10000"), Plain;
}

pub static ALERT_OWN: Group = Group {
    title: "Alert",
    vars: &[
        &KAFKA_APM_LOG_ERROR_TOPIC,
        &ALERT_CLIENT_ID,
        &ERROR_STREAM_PORT,
        &ERROR_STREAM_WS_PATH,
        &ERROR_STREAM_PLAIN_WS_PATH,
        &ERROR_STREAM_WS_ORIGINS,
        &ERROR_STREAM_AUTH_TOKENS,
        &ERROR_STREAM_AUTH_TOKENS_FILE,
        &ERROR_STREAM_REPLAY_SIZE,
        &ERROR_STREAM_REPLAY_ON_CONNECT,
        &ERROR_STREAM_CLIENT_QUEUE,
        &ERROR_STREAM_TOPIC_REFRESH_SECONDS,
        &ERROR_STREAM_MAX_CLIENTS,
    ],
};

pub static ALERT: Reads = Reads {
    command: "alert",
    groups: &[&KAFKA, &ALERT_OWN],
};

// ---------------------------------------------------------------- sample

pub static SAMPLE_TOPICS: Group = Group {
    title: "Kafka topics",
    vars: &[
        &KAFKA_APM_LOG_TOPIC,
        &KAFKA_APM_SPAN_TOPIC,
        &KAFKA_CREATE_TOPICS,
        &KAFKA_APM_LOG_TOPIC_PARTITIONS,
        &KAFKA_APM_SPAN_TOPIC_PARTITIONS,
        &KAFKA_TOPIC_REPLICATION_FACTOR,
    ],
};

pub static SAMPLE: Reads = Reads {
    command: "sample",
    groups: &[&KAFKA, &SAMPLE_TOPICS],
};

/// Every subcommand that reads variables.
pub static ALL: [&Reads; 5] = [&INGEST, &ROLLUP, &QUERY, &ALERT, &SAMPLE];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_within_a_subcommand() {
        for reads in ALL {
            let mut names: Vec<&str> = reads.vars().map(|v| v.name).collect();
            let all = names.len();
            names.sort_unstable();
            names.dedup();
            assert_eq!(names.len(), all, "{} declares a name twice", reads.command);
        }
    }

    #[test]
    fn meanings_are_sentences() {
        for var in ALL.iter().flat_map(|r| r.vars()) {
            let meaning = var.meaning();
            assert!(meaning.ends_with('.'), "{}: {meaning:?}", var.name);
            assert!(!meaning.is_empty(), "{}", var.name);
        }
    }

    #[test]
    fn secrets_have_no_default_value() {
        for var in ALL.iter().flat_map(|r| r.vars()) {
            if var.secrecy != Secrecy::Plain {
                assert_eq!(var.default_value(), None, "{}", var.name);
            }
        }
    }
}
