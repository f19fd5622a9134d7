//! `panopticon ingest` run without the operator creates its missing topics and index templates
//! with the partitions, replication and replicas its variables give (the values the operator
//! renders), not the brokers' or the engine's defaults. Real Kafka and OpenSearch from
//! `e2e/stack`.

use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use panopticon_e2e::ingest::{IngestFixture, http_get, wait_until};
use panopticon_e2e::kafka::partition_count;
use panopticon_e2e::process::Component;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_topics_and_templates_are_created_as_configured() -> Result<()> {
    let mut fixture = IngestFixture::named("standalone");
    fixture
        .set("KAFKA_APM_LOG_TOPIC_PARTITIONS", "4")
        .set("KAFKA_APM_SPAN_TOPIC_PARTITIONS", "3")
        .set("KAFKA_APM_LOG_ERROR_TOPIC_PARTITIONS", "2")
        .set("KAFKA_APM_DLQ_TOPIC_PARTITIONS", "1")
        .set("KAFKA_TOPIC_REPLICATION_FACTOR", "1")
        .set("ELASTICSEARCH_INDEX_REPLICAS", "0");
    let binary = Path::new(env!("CARGO_BIN_EXE_panopticon"));
    let mut ingest =
        Component::start(binary, &["ingest"], &fixture.env(), "ingest-standalone").await?;
    let base = panopticon_e2e::elasticsearch_url();
    let stream_url = format!("{base}/_data_stream/{}", fixture.spans_stream);
    // The data streams are prepared after the topics.
    wait_until("the span data stream", Duration::from_secs(120), || async {
        Ok(http_get(&stream_url).await?.0 == 200)
    })
    .await?;
    for (topic, partitions) in [
        (&fixture.logs_topic, 4),
        (&fixture.spans_topic, 3),
        (&fixture.error_topic, 2),
        (&fixture.dlq_topic, 1),
    ] {
        assert_eq!(partition_count(topic)?, partitions, "{topic}");
    }
    for stream in [&fixture.logs_stream, &fixture.spans_stream] {
        let (status, body) = http_get(&format!("{base}/_index_template/{stream}-template")).await?;
        assert_eq!(status, 200, "{body}");
        let answer: serde_json::Value = serde_json::from_str(&body)?;
        let replicas = &answer["index_templates"][0]["index_template"]["template"]["settings"]["index"]
            ["number_of_replicas"];
        assert_eq!(replicas.as_str(), Some("0"), "{stream}: {answer}");
    }
    ingest.stop(Duration::from_secs(30)).await
}
