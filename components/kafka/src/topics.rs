//! Making sure the topics a component reads and writes exist.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;

/// Creates whichever of `names` do not exist, with the broker's default partition count and
/// replication factor. Idempotent and safe when several replicas race (an existing topic is
/// success). Returns the topics it created. Not being allowed to create topics is reported as
/// a warning, not an error: an administrator may have created them.
pub async fn ensure_topics(config: &ClientConfig, names: &[&str]) -> Result<Vec<String>, String> {
    let admin: AdminClient<DefaultClientContext> = config
        .create()
        .map_err(|e| format!("cannot create a Kafka admin client: {e}"))?;
    let topics: Vec<NewTopic<'_>> = names
        .iter()
        .map(|n| NewTopic::new(n, -1, TopicReplication::Fixed(-1)))
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin
        .create_topics(&topics, &opts)
        .await
        .map_err(|e| format!("cannot create topics {names:?}: {e}"))?;
    let mut created = Vec::new();
    for result in results {
        match result {
            Ok(topic) => created.push(topic),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((
                topic,
                code @ (RDKafkaErrorCode::TopicAuthorizationFailed
                | RDKafkaErrorCode::ClusterAuthorizationFailed),
            )) => {
                tracing::warn!(topic, error = %code, "not allowed to create the topic; it must exist already");
            }
            Err((topic, code)) => return Err(format!("cannot create topic {topic}: {code}")),
        }
    }
    Ok(created)
}
