//! Ingest against the real Kafka and OpenSearch of `e2e/stack`: exactly-once results from an
//! at-least-once pipeline, error forwarding, dead letters.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Result;
use panopticon_e2e::ingest::{
    IngestFixture, count_docs, free_port, http, http_get, metric, search_all, wait_exact_docs,
    wait_until,
};
use panopticon_e2e::{kafka, workload};
use panopticon_model::config::{EnvSource, IngestConfig};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(90);

/// A running in-process ingest.
struct Running {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    admin: SocketAddr,
}

impl Running {
    /// Starts ingest and waits until its admin server answers.
    async fn start(fixture: &IngestFixture) -> Result<Self> {
        let vars = fixture.env();
        let config = IngestConfig::from_env(&EnvSource::from_fn(|name| {
            vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        }))?;
        let admin: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
        let stop = CancellationToken::new();
        let task = tokio::spawn(panopticon_ingest::run(
            config,
            panopticon_ingest::RunOptions { admin_addr: admin },
            stop.clone(),
        ));
        wait_until("the admin server", WAIT, || async move {
            Ok(http_get(&format!("http://{admin}/health")).await.is_ok())
        })
        .await?;
        Ok(Self { stop, task, admin })
    }

    async fn metrics(&self) -> Result<String> {
        Ok(http_get(&format!("http://{}/metrics", self.admin)).await?.1)
    }

    async fn stop(self) -> Result<()> {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(30), self.task).await???;
        Ok(())
    }
}

async fn wait_docs(stream: &str, n: u64) -> Result<()> {
    wait_exact_docs(stream, n, WAIT).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_events_become_exactly_one_document_each_and_errors_are_forwarded() -> Result<()> {
    let fixture = IngestFixture::create("mixed", 3).await?;
    let events = workload::generate(3000, 7, chrono::Utc::now());
    let (logs, spans) = workload::split(&events);
    let errors = events.iter().filter(|e| e.is_error_log).count();
    let producer = kafka::producer()?;
    kafka::produce(&producer, &fixture.logs_topic, &logs).await?;
    kafka::produce(&producer, &fixture.spans_topic, &spans).await?;

    let ingest = Running::start(&fixture).await?;
    wait_docs(&fixture.logs_stream, logs.len() as u64).await?;
    wait_docs(&fixture.spans_stream, spans.len() as u64).await?;

    // Every ERROR log reached the error topic, once, keyed by service, timestamp normalised.
    let forwarded =
        kafka::read_all(&fixture.error_topic, errors, WAIT, Duration::from_secs(2)).await?;
    assert_eq!(forwarded.len(), errors);
    for record in &forwarded {
        let v: Value = serde_json::from_slice(&record.value)?;
        assert_eq!(v["level"], "ERROR");
        assert_eq!(
            record.key.as_deref(),
            v["service_name"].as_str().map(str::as_bytes)
        );
        assert!(v["timestamp"].as_str().unwrap().ends_with('Z'), "{v}");
    }
    // Stored documents carry the normalised environment and keep extra fields as labels.
    let docs = search_all(&fixture.logs_stream).await?;
    let envs: HashSet<&str> = docs
        .iter()
        .filter_map(|d| d["_source"]["environment"].as_str())
        .collect();
    assert!(
        envs.is_subset(&HashSet::from(["production", "development", "staging"])),
        "{envs:?}"
    );
    assert!(
        docs.iter()
            .all(|d| d["_source"]["labels"]["client_ip"].is_string())
    );

    let m = ingest.metrics().await?;
    assert_eq!(
        metric(&m, "panopticon_ingest_documents_indexed_total") as usize,
        events.len()
    );
    assert_eq!(
        metric(&m, "panopticon_ingest_errors_forwarded_total") as usize,
        errors
    );
    ingest.stop().await?;

    // The same offsets consumed again by a new group: still exactly one document per event.
    let mut replay = fixture.clone();
    replay.set("KAFKA_CONSUMER_GROUP", &format!("{}-replay", fixture.group));
    let ingest = Running::start(&replay).await?;
    wait_until(
        "every replayed document to be recognised as a duplicate",
        WAIT,
        || async {
            Ok(metric(
                &ingest.metrics().await?,
                "panopticon_ingest_documents_duplicate_total",
            ) as usize
                == events.len())
        },
    )
    .await?;
    assert_eq!(count_docs(&fixture.logs_stream).await?, logs.len() as u64);
    assert_eq!(count_docs(&fixture.spans_stream).await?, spans.len() as u64);
    assert_eq!(
        metric(
            &ingest.metrics().await?,
            "panopticon_ingest_documents_indexed_total"
        ),
        0.0
    );
    ingest.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_input_goes_to_the_dead_letter_topic_with_its_reason_and_the_stream_goes_on()
-> Result<()> {
    let mut fixture = IngestFixture::create("poison", 1).await?;
    fixture.set("INGEST_MAX_MESSAGE_BYTES", "64");
    let valid = |n: u32| {
        json!({"service_name":"svc","environment":"prod","level":"INFO","message":format!("ok {n}")})
            .to_string()
            .into_bytes()
    };
    let poison: Vec<(&[u8], &str, &str)> = vec![
        (b"not json at all", "invalid_json", "payload: not valid JSON"),
        (b"null", "wrong_type", "payload: must be a JSON object or an array of objects, got null"),
        (b"", "empty", "payload: must not be empty"),
        (br#"{"service_name":7,"environment":"e","level":"INFO","message":"m"}"#, "wrong_type", "service_name: must be a string, got a number"),
        (br#"{"environment":"e","level":"INFO","message":"m"}"#, "missing", "service_name: is required"),
        (br#"{"service_name":"s","environment":"e","level":"INFO","message":"m","http_status_code":"abc"}"#, "out_of_range", "http_status_code: must be an integer between 100 and 599"),
        (br#"{"service_name":"s","environment":"e","level":"LOUD","message":"m"}"#, "not_allowed", "level: must be one of"),
        (br#"{"service_name":"s","environment":"e","level":"INFO","message":"this message is far longer than the sixty-four bytes allowed here"}"#, "too_long", "message: is 65 bytes long, the limit is 64 bytes"),
        (br#"{"service_name":"s","environment":"e","level":"INFO","message":"m","timestamp":"yesterday"}"#, "invalid_timestamp", "timestamp: \"yesterday\" is not an ISO 8601 timestamp"),
    ];
    let mut records = Vec::new();
    for (i, (bytes, _, _)) in poison.iter().enumerate() {
        records.push(valid(i as u32));
        records.push(bytes.to_vec());
    }
    records.push(valid(99));
    // An array whose middle event is bad: the two good ones are indexed.
    records.push(
        format!(
            "[{},{},{}]",
            String::from_utf8(valid(100))?,
            r#"{"service_name":"s","environment":"e","level":"INFO"}"#,
            String::from_utf8(valid(101))?
        )
        .into_bytes(),
    );
    let producer = kafka::producer()?;
    // One partition and sequential sends keep the order, so each DLQ record can be matched.
    for r in &records {
        kafka::produce(&producer, &fixture.logs_topic, std::slice::from_ref(r)).await?;
    }

    let ingest = Running::start(&fixture).await?;
    let valid_count = poison.len() as u64 + 1 + 2;
    wait_docs(&fixture.logs_stream, valid_count).await?;
    let dead = kafka::read_all(
        &fixture.dlq_topic,
        poison.len() + 1,
        WAIT,
        Duration::from_secs(2),
    )
    .await?;
    assert_eq!(dead.len(), poison.len() + 1);
    // Dead letters are produced concurrently: put them back in source order.
    let mut dead = dead;
    dead.sort_by_key(|r| {
        r.header("panopticon.source.offset")
            .and_then(|o| o.parse::<i64>().ok())
            .unwrap_or(i64::MAX)
    });
    for ((bytes, code, reason), record) in poison.iter().zip(&dead) {
        assert_eq!(record.value, *bytes, "the original bytes are kept");
        assert_eq!(record.header("panopticon.reason.code"), Some(*code));
        let got = record.header("panopticon.reason").unwrap_or_default();
        assert!(
            got.starts_with(reason),
            "reason {got:?} should start with {reason:?}"
        );
        assert_eq!(
            record.header("panopticon.source.topic"),
            Some(fixture.logs_topic.as_str())
        );
        assert_eq!(record.header("panopticon.stage"), Some("decode"));
        assert!(record.header("panopticon.source.offset").is_some());
    }
    let array_dead = dead.last().unwrap();
    assert_eq!(
        array_dead.header("panopticon.source.event_index"),
        Some("1")
    );
    assert_eq!(
        array_dead.header("panopticon.reason"),
        Some("message: is required")
    );
    let m = ingest.metrics().await?;
    assert_eq!(
        metric(&m, "panopticon_ingest_dead_lettered_total") as usize,
        poison.len() + 1
    );
    ingest.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_elasticsearch_refuses_is_dead_lettered_with_the_engine_reason() -> Result<()> {
    // A stream whose template maps `labels.n` as an integer: a string there is refused for
    // good (400 mapper_parsing_exception), while its neighbours are indexed.
    let fixture = IngestFixture::create("refused", 1).await?;
    let base = panopticon_e2e::elasticsearch_url();
    let template = json!({"index_patterns": [fixture.logs_stream], "data_stream": {}, "priority": 900,
        "template": {"mappings": {"properties": {"@timestamp": {"type": "date"},
            "level": {"type": "keyword"}, "labels": {"properties": {"n": {"type": "integer"}}}}}}});
    put_json(
        &format!("{base}/_index_template/strict-{}", fixture.logs_stream),
        &template,
    )
    .await?;
    put_json(
        &format!("{base}/_data_stream/{}", fixture.logs_stream),
        &Value::Null,
    )
    .await?;
    let event = |n: &str| json!({"service_name":"s","environment":"e","level":"INFO","message":"m","labels":{"n":n}});
    let records: Vec<Vec<u8>> = ["1", "not a number", "3"]
        .iter()
        .map(|n| event(n).to_string().into_bytes())
        .collect();
    kafka::produce(&kafka::producer()?, &fixture.logs_topic, &records).await?;
    let ingest = Running::start(&fixture).await?;
    let dead = kafka::read_all(&fixture.dlq_topic, 1, WAIT, Duration::from_secs(2)).await?;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].header("panopticon.stage"), Some("index"));
    assert_eq!(
        dead[0].header("panopticon.reason.code"),
        Some("mapper_parsing_exception")
    );
    wait_docs(&fixture.logs_stream, 2).await?;
    ingest.stop().await
}

async fn put_json(url: &str, body: &Value) -> Result<()> {
    let body = if body.is_null() {
        None
    } else {
        Some(body.to_string())
    };
    let (status, answer) = http("PUT", url, body.as_deref()).await?;
    anyhow::ensure!(status == 200, "PUT {url}: {status} {answer}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_operator_provisioning_ingest_waits_for_the_streams_and_leaves_templates_and_topics()
-> Result<()> {
    use panopticon_es::provision::{ProvisionPlan, provision, remove};
    use rdkafka::consumer::{BaseConsumer, Consumer as _};

    let mut fixture = IngestFixture::create("provisioned", 1).await?;
    // A dead-letter topic nobody created: with KAFKA_CREATE_TOPICS=false it must stay absent.
    let dlq = panopticon_e2e::unique_name("provisioned-dlq");
    fixture
        .set("KAFKA_APM_DLQ_TOPIC", &dlq)
        .set("KAFKA_CREATE_TOPICS", "false")
        .set("ELASTICSEARCH_MANAGE_TEMPLATES", "false");
    let vars = fixture.env();
    let config = IngestConfig::from_env(&EnvSource::from_fn(|name| {
        vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }))?;
    let es =
        panopticon_es::EsClient::new(&config.elasticsearch, &panopticon_es::EsSecrets::default())?;
    let base = panopticon_e2e::elasticsearch_url();
    let template_url = format!("{base}/_index_template/{}-template", fixture.logs_stream);

    let ingest = Running::start(&fixture).await?;
    let ready_url = format!("http://{}/ready", ingest.admin);
    wait_until("/ready to name the missing streams", WAIT, || {
        let ready_url = ready_url.clone();
        let stream = fixture.logs_stream.clone();
        async move {
            let (status, body) = http_get(&ready_url).await?;
            Ok(status == 503 && body.contains(&stream))
        }
    })
    .await?;
    // Ingest wrote neither a template nor a data stream of its own.
    assert_eq!(http_get(&template_url).await?.0, 404);
    assert_eq!(
        http_get(&format!("{base}/_data_stream/{}", fixture.logs_stream))
            .await?
            .0,
        404
    );

    let plan = ProvisionPlan {
        streams: config.elasticsearch.streams.clone(),
        logs_retention: "14d".to_owned(),
        traces_retention: "7d".to_owned(),
        metrics_retention: "90d".to_owned(),
        rollover_max_primary_shard_size: "50gb".to_owned(),
        rollover_max_age: "1d".to_owned(),
        replicas: 0,
    };
    provision(&es, &plan).await?;
    let provisioned: Value = serde_json::from_str(&http_get(&template_url).await?.1)?;
    wait_until("/ready once the streams exist", WAIT, || {
        let ready_url = ready_url.clone();
        async move { Ok(http_get(&ready_url).await?.0 == 200) }
    })
    .await?;

    let events = workload::generate(200, 11, chrono::Utc::now());
    let (logs, spans) = workload::split(&events);
    let producer = kafka::producer()?;
    kafka::produce(&producer, &fixture.logs_topic, &logs).await?;
    kafka::produce(&producer, &fixture.spans_topic, &spans).await?;
    wait_docs(&fixture.logs_stream, logs.len() as u64).await?;
    wait_docs(&fixture.spans_stream, spans.len() as u64).await?;
    ingest.stop().await?;

    // The operator's template is untouched, and provisioning again finds nothing to change.
    let after: Value = serde_json::from_str(&http_get(&template_url).await?.1)?;
    assert_eq!(after, provisioned);
    assert_eq!(provision(&es, &plan).await?.changed, Vec::<String>::new());
    let metadata_client: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", panopticon_e2e::kafka_brokers())
        .create()?;
    let metadata = metadata_client.fetch_metadata(None, Duration::from_secs(10))?;
    assert!(
        metadata.topics().iter().all(|t| t.name() != dlq),
        "ingest created {dlq} although KAFKA_CREATE_TOPICS=false"
    );
    remove(&es, &plan).await?;
    Ok(())
}
