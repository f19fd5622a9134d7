//! Where the real servers of the test stack are. `e2e/stack up` starts them and
//! `e2e/stack env` prints their addresses as environment variables; integration tests across
//! the workspace read them through this crate.
//!
//! A missing variable is a test failure with instructions, never a skip: a test that silently
//! skipped because its server was absent would prove nothing.

use std::path::PathBuf;

pub mod ingest;
pub mod kafka;
pub mod live;
pub mod process;
pub mod workload;

/// Reads a stack address from the environment, or panics with how to start the stack.
///
/// # Panics
/// When the variable is not set: the test cannot run without its server.
pub fn required_env(name: &str) -> String {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v,
        _ => panic!(
            "{name} is not set: this test needs the real server. Start the stack and export its \
             addresses first: `e2e/stack up && eval \"$(e2e/stack env)\"` (or run `e2e/test`)"
        ),
    }
}

/// Kafka bootstrap servers (`PANOPTICON_KAFKA_BROKERS`).
pub fn kafka_brokers() -> String {
    required_env("PANOPTICON_KAFKA_BROKERS")
}

/// Elasticsearch/OpenSearch base URL (`PANOPTICON_ELASTICSEARCH_URL`).
pub fn elasticsearch_url() -> String {
    required_env("PANOPTICON_ELASTICSEARCH_URL")
}

/// Redis URL (`PANOPTICON_REDIS_URL`).
pub fn redis_url() -> String {
    required_env("PANOPTICON_REDIS_URL")
}

/// Kubeconfig of the stack's API server (`KUBECONFIG`).
pub fn kubeconfig() -> PathBuf {
    PathBuf::from(required_env("KUBECONFIG"))
}

/// A name no other test run uses, for topics, indices, namespaces: `<prefix>-<pid>-<nanos>`.
pub fn unique_name(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() ^ (d.as_secs() as u32))
        .unwrap_or_default();
    format!("{prefix}-{}-{nanos:x}", std::process::id())
}
