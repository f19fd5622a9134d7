//! The pure bodies and decisions, then the request flows against an in-process fake cluster
//! (the stack's OpenSearch has no ISM plugin, and there is no local Elasticsearch): ILM on
//! Elasticsearch, ISM with sequence numbers on OpenSearch, quiet second runs, removal.
//! `components/es/tests/provision.rs` runs the real OpenSearch.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use panopticon_model::config::{ElasticsearchConfig, EnvSource};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::*;
use crate::client::EsSecrets;

fn plan() -> ProvisionPlan {
    ProvisionPlan {
        streams: ElasticsearchConfig::from_env(&EnvSource::from_pairs(&[]))
            .unwrap()
            .streams,
        logs_retention: "14d".to_owned(),
        traces_retention: "7d".to_owned(),
        metrics_retention: "90d".to_owned(),
        rollover_max_primary_shard_size: "50gb".to_owned(),
        rollover_max_age: "1d".to_owned(),
        replicas: 1,
    }
}

fn unavailable() -> Lifecycle {
    Lifecycle::Unavailable {
        reason: "x".to_owned(),
    }
}

/// A body as it was before its hash was stamped in.
fn without_hash(spec_body: &Value) -> Value {
    let mut body = spec_body.clone();
    if let Some(meta) = body.pointer_mut("/_meta").and_then(Value::as_object_mut) {
        meta.remove("hash");
    }
    if let Some(meta) = body
        .pointer_mut("/policy/_meta")
        .and_then(Value::as_object_mut)
    {
        meta.remove("hash");
    }
    if let Some(d) = body
        .pointer("/policy/description")
        .and_then(Value::as_str)
        .and_then(|d| d.rfind(ISM_HASH_MARKER).map(|at| d[..at].to_owned()))
    {
        body["policy"]["description"] = json!(d);
    }
    body
}

#[test]
fn the_hash_is_the_sha256_of_canonical_json_whatever_the_key_order() {
    // printf '%s' '{"a":[1,"x"],"b":1}' | sha256sum
    let expected = "a88dede55f330dbae7d6c99cb78c43213f114625ed11c8fd0b769d117c06bb50";
    let mut reversed = Map::new();
    reversed.insert("b".to_owned(), json!(1));
    reversed.insert("a".to_owned(), json!([1, "x"]));
    assert_eq!(body_hash(&json!({"a": [1, "x"], "b": 1})), expected);
    assert_eq!(body_hash(&Value::Object(reversed)), expected);
    assert_ne!(body_hash(&json!({"a": [1, "x"], "b": 2})), expected);
}

#[test]
fn ilm_policy_of_a_data_stream_rolls_over_then_deletes_at_the_retention() {
    let state = desired_state(&plan(), Flavour::Elasticsearch, &Lifecycle::Ilm);
    let logs = &state.policies[0];
    assert_eq!(logs.id, "logs-apm-lifecycle");
    assert_eq!(logs.target, Target::DataStream("logs-apm".to_owned()));
    let expected = json!({"policy": {
        "_meta": {"managed_by": "panopticon"},
        "phases": {
            "hot": {
                "min_age": "0ms",
                "actions": {"rollover": {"max_primary_shard_size": "50gb", "max_age": "1d"}}
            },
            "delete": {"min_age": "14d", "actions": {"delete": {}}}
        }
    }});
    assert_eq!(without_hash(&logs.body), expected);
    assert_eq!(logs.hash, body_hash(&expected));
    assert_eq!(logs.body["policy"]["_meta"]["hash"], json!(logs.hash));
    assert_eq!(
        state.policies[1].body["policy"]["phases"]["delete"]["min_age"],
        "7d"
    );
}

#[test]
fn ilm_policy_of_the_rollup_indices_only_deletes() {
    let state = desired_state(&plan(), Flavour::Elasticsearch, &Lifecycle::Ilm);
    let metrics = &state.policies[2];
    assert_eq!(metrics.id, "metrics-apm-lifecycle");
    assert_eq!(
        without_hash(&metrics.body),
        json!({"policy": {
            "_meta": {"managed_by": "panopticon"},
            "phases": {"delete": {"min_age": "90d", "actions": {"delete": {}}}}
        }})
    );
    assert_eq!(
        metrics.target,
        Target::Patterns(vec![
            "metrics-apm-service-*".to_owned(),
            "metrics-apm-endpoint-*".to_owned()
        ])
    );
}

#[test]
fn ism_policy_of_a_data_stream_rolls_over_and_attaches_by_the_stream_name() {
    let state = desired_state(&plan(), Flavour::OpenSearch, &Lifecycle::Ism);
    let traces = &state.policies[1];
    assert_eq!(traces.id, "traces-apm-lifecycle");
    let description = "managed by panopticon: traces-apm rolls over at 50gb per primary shard \
                       or 1d, indices are deleted 7d after creation";
    let expected = json!({"policy": {
        "description": description,
        "default_state": "hot",
        "states": [
            {
                "name": "hot",
                "actions": [{"rollover": {"min_primary_shard_size": "50gb", "min_index_age": "1d"}}],
                "transitions": [{"state_name": "delete", "conditions": {"min_index_age": "7d"}}]
            },
            {"name": "delete", "actions": [{"delete": {}}], "transitions": []}
        ],
        "ism_template": [{"index_patterns": ["traces-apm"], "priority": 100}]
    }});
    assert_eq!(without_hash(&traces.body), expected);
    assert_eq!(traces.hash, body_hash(&expected));
    assert_eq!(
        traces.body["policy"]["description"],
        json!(format!("{description} [panopticon hash {}]", traces.hash))
    );
}

#[test]
fn ism_policy_of_the_rollup_indices_deletes_without_rollover() {
    let state = desired_state(&plan(), Flavour::OpenSearch, &Lifecycle::Ism);
    assert_eq!(
        without_hash(&state.policies[2].body),
        json!({"policy": {
            "description": "managed by panopticon: indices of metrics-apm are deleted 90d after creation",
            "default_state": "hot",
            "states": [
                {
                    "name": "hot",
                    "actions": [],
                    "transitions": [{"state_name": "delete", "conditions": {"min_index_age": "90d"}}]
                },
                {"name": "delete", "actions": [{"delete": {}}], "transitions": []}
            ],
            "ism_template": [{
                "index_patterns": ["metrics-apm-service-*", "metrics-apm-endpoint-*"],
                "priority": 100
            }]
        }})
    );
}

#[test]
fn the_ism_hash_is_read_back_from_the_description() {
    let (hash, body) = stamp_ism(json!({"policy": {"description": "d"}}));
    let description = body["policy"]["description"].as_str().unwrap();
    assert_eq!(ism_hash(description), Some(hash.as_str()));
    assert_eq!(ism_hash("written by hand"), None);
    assert_eq!(ism_hash("d [panopticon hash abc"), None);
}

#[test]
fn templates_carry_replicas_and_on_elasticsearch_the_ilm_policy() {
    let ilm = desired_state(&plan(), Flavour::Elasticsearch, &Lifecycle::Ilm);
    let names: Vec<&str> = ilm.templates.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "logs-apm-template",
            "traces-apm-template",
            "metrics-apm-template",
            "metrics-apm-endpoints-template"
        ]
    );
    assert_eq!(
        ilm.templates[0].body["template"]["settings"],
        json!({
            "index.mapping.total_fields.limit": 2000,
            "index.number_of_replicas": 1,
            "index.lifecycle.name": "logs-apm-lifecycle"
        })
    );
    assert_eq!(
        Value::Object(ilm.templates[3].settings.clone()),
        json!({"index.number_of_replicas": 1, "index.lifecycle.name": "metrics-apm-lifecycle"})
    );
    assert_eq!(
        ilm.templates[3].body["template"]["settings"],
        json!({
            "number_of_shards": 1,
            "index.number_of_replicas": 1,
            "index.lifecycle.name": "metrics-apm-lifecycle"
        })
    );
    assert_eq!(
        ilm.templates[3].target,
        Target::Patterns(vec!["metrics-apm-endpoint-*".to_owned()])
    );
    assert_eq!(
        ilm.templates[0].body["_meta"],
        json!({"managed_by": "panopticon", "hash": ilm.templates[0].hash})
    );
    // Without the hash, the body is exactly what the bootstrap of the components writes, plus
    // the settings.
    assert_eq!(
        without_hash(&ilm.templates[0].body),
        templates::template_with_settings(
            "logs-apm",
            StreamKind::Logs.properties(Flavour::Elasticsearch),
            &ilm.templates[0].settings
        )
    );
    for lifecycle in [Lifecycle::Ism, unavailable()] {
        let state = desired_state(&plan(), Flavour::OpenSearch, &lifecycle);
        assert_eq!(
            state.templates[1].body["template"]["settings"],
            json!({"index.mapping.total_fields.limit": 2000, "index.number_of_replicas": 1})
        );
    }
}

#[test]
fn without_lifecycle_support_there_are_no_policies_but_everything_else() {
    let state = desired_state(&plan(), Flavour::OpenSearch, &unavailable());
    assert!(state.policies.is_empty());
    assert_eq!(state.templates.len(), 4);
    assert_eq!(
        state.data_streams,
        [
            ("logs-apm".to_owned(), "logs-apm-template".to_owned()),
            ("traces-apm".to_owned(), "traces-apm-template".to_owned())
        ]
    );
}

#[test]
fn a_retention_change_changes_one_policy_hash_and_no_template_hash() {
    for lifecycle in [Lifecycle::Ilm, Lifecycle::Ism] {
        let before = desired_state(&plan(), Flavour::OpenSearch, &lifecycle);
        let after = desired_state(
            &ProvisionPlan {
                logs_retention: "30d".to_owned(),
                ..plan()
            },
            Flavour::OpenSearch,
            &lifecycle,
        );
        let policies_changed: Vec<bool> = before
            .policies
            .iter()
            .zip(&after.policies)
            .map(|(b, a)| b.hash != a.hash)
            .collect();
        assert_eq!(policies_changed, [true, false, false], "{lifecycle:?}");
        assert!(
            before
                .templates
                .iter()
                .zip(&after.templates)
                .all(|(b, a)| b.hash == a.hash)
        );
    }
}

#[test]
fn a_replicas_change_changes_every_template_hash_and_no_policy_hash() {
    let before = desired_state(&plan(), Flavour::Elasticsearch, &Lifecycle::Ilm);
    let after = desired_state(
        &ProvisionPlan {
            replicas: 2,
            ..plan()
        },
        Flavour::Elasticsearch,
        &Lifecycle::Ilm,
    );
    assert!(
        before
            .templates
            .iter()
            .zip(&after.templates)
            .all(|(b, a)| b.hash != a.hash)
    );
    assert_eq!(before.policies, after.policies);
}

#[test]
fn only_a_missing_or_different_hash_is_written() {
    assert_eq!(decide(None, "h1"), Decision::Create);
    assert_eq!(decide(Some(Some("h1")), "h1"), Decision::Keep);
    assert_eq!(decide(Some(Some("h0")), "h1"), Decision::Update);
    assert_eq!(decide(Some(None), "h1"), Decision::Update);
}

#[test]
fn the_unavailable_reason_names_the_missing_piece_and_the_streams() {
    assert_eq!(
        unavailable_reason(Flavour::OpenSearch, &plan().streams),
        "the OpenSearch Index Management (ISM) plugin is not installed: retention of logs-apm, \
         traces-apm and metrics-apm is not enforced (install opensearch-index-management on the \
         cluster, or delete old indices by other means)"
    );
    assert!(
        unavailable_reason(Flavour::Elasticsearch, &plan().streams)
            .starts_with("Elasticsearch index lifecycle management (ILM) is not available")
    );
}

#[test]
fn a_missing_endpoint_is_recognised_in_both_error_shapes() {
    let opensearch =
        json!({"error": "no handler found for uri [/_plugins/_ism/policies] and method [GET]"});
    let elasticsearch = json!({"error": {"root_cause": [{"type": "illegal_argument_exception",
        "reason": "no handler found for uri [/_ilm/status] and method [GET]"}]}, "status": 400});
    assert!(no_handler(StatusCode::BAD_REQUEST, &opensearch));
    assert!(no_handler(StatusCode::BAD_REQUEST, &elasticsearch));
    assert!(!no_handler(StatusCode::FORBIDDEN, &opensearch));
    assert!(!no_handler(
        StatusCode::BAD_REQUEST,
        &json!({"error": {"type": "illegal_argument_exception", "reason": "unknown setting"}})
    ));
}

// ---------------------------------------------------------------------------------------------
// A fake cluster: just enough of the APIs provisioning uses, with ISM's sequence numbers
// enforced, and every request recorded.

#[derive(Debug)]
struct Fake {
    flavour: Flavour,
    /// Whether the ILM/ISM endpoints exist.
    lifecycle: bool,
    /// Answer 403 to index template writes.
    refuse_templates: bool,
    templates: BTreeMap<String, Value>,
    ilm: BTreeMap<String, Value>,
    /// id → (seq_no, policy)
    ism: BTreeMap<String, (i64, Value)>,
    /// data stream → backing indices
    streams: BTreeMap<String, Vec<String>>,
    /// index → ISM policy id
    managed: BTreeMap<String, String>,
    /// backing index → its `labels` mapping
    labels: BTreeMap<String, Value>,
    /// (method, path with query, body) of every request
    log: Vec<(String, String, Value)>,
}

impl Fake {
    fn new(flavour: Flavour, lifecycle: bool) -> Self {
        Self {
            flavour,
            lifecycle,
            refuse_templates: false,
            templates: BTreeMap::new(),
            ilm: BTreeMap::new(),
            ism: BTreeMap::new(),
            streams: BTreeMap::new(),
            managed: BTreeMap::new(),
            labels: BTreeMap::new(),
            log: Vec::new(),
        }
    }

    /// A data stream created before Panopticon mapped `labels` as one field: its backing
    /// index has them as a dynamic object.
    fn add_stream(&mut self, name: &str) {
        let index = format!(".ds-{name}-000001");
        self.labels
            .insert(index.clone(), json!({"dynamic": "true"}));
        self.streams.insert(name.to_owned(), vec![index]);
    }

    /// A new backing index of `stream`, mapped by the template that matches it.
    fn new_backing_index(&mut self, stream: &str) {
        let indices = self.streams.entry(stream.to_owned()).or_default();
        let index = format!(".ds-{stream}-{:06}", indices.len() + 1);
        indices.push(index.clone());
        let labels = self
            .templates
            .values()
            .find(|t| t["index_patterns"][0] == stream)
            .map(|t| t["template"]["mappings"]["properties"]["labels"].clone())
            .unwrap_or(Value::Null);
        self.labels.insert(index, labels);
    }

    fn writes(&self) -> Vec<String> {
        self.log
            .iter()
            .filter(|(m, _, _)| m != "GET")
            .map(|(m, p, _)| format!("{m} {p}"))
            .collect()
    }

    fn handle(&mut self, method: &str, target: &str, body: Value) -> (u16, Value) {
        self.log
            .push((method.to_owned(), target.to_owned(), body.clone()));
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let no_handler = (
            400,
            json!({"error": format!("no handler found for uri [{path}] and method [{method}]")}),
        );
        let not_found = (
            404,
            json!({"error": {"type": "resource_not_found_exception"}}),
        );
        let ok = (200, json!({"acknowledged": true}));
        let es = self.flavour == Flavour::Elasticsearch;
        let os = self.flavour == Flavour::OpenSearch;
        match (method, segments.as_slice()) {
            ("GET", [""]) => {
                let version = if es {
                    json!({"number": "8.17.1"})
                } else {
                    json!({"number": "2.19.3", "distribution": "opensearch"})
                };
                (200, json!({"version": version}))
            }
            ("GET", ["_ilm", "status"]) if es && self.lifecycle => {
                (200, json!({"operation_mode": "RUNNING"}))
            }
            (_, ["_ilm", "policy", id]) if es && self.lifecycle => match method {
                "GET" => match self.ilm.get(*id) {
                    Some(p) => (200, json!({*id: {"version": 1, "policy": p}})),
                    None => not_found,
                },
                "PUT" => {
                    self.ilm.insert((*id).to_owned(), body["policy"].clone());
                    ok
                }
                _ => match self.ilm.remove(*id) {
                    Some(_) => ok,
                    None => not_found,
                },
            },
            ("GET", ["_plugins", "_ism", "policies"]) if os && self.lifecycle => {
                (200, json!({"policies": [], "total_policies": 0}))
            }
            (_, ["_plugins", "_ism", "policies", id]) if os && self.lifecycle => match method {
                "GET" => match self.ism.get(*id) {
                    Some((seq, p)) => (
                        200,
                        json!({"_id": id, "_seq_no": seq, "_primary_term": 1, "policy": p}),
                    ),
                    None => (404, json!({"error": {"reason": "Policy not found"}})),
                },
                "PUT" => {
                    let expected = self
                        .ism
                        .get(*id)
                        .map(|(seq, _)| format!("if_seq_no={seq}&if_primary_term=1"));
                    if expected.as_deref().unwrap_or("") != query {
                        return (
                            409,
                            json!({"error": {"type": "version_conflict_engine_exception"}}),
                        );
                    }
                    let seq = self.ism.get(*id).map_or(0, |(seq, _)| seq + 1);
                    self.ism
                        .insert((*id).to_owned(), (seq, body["policy"].clone()));
                    (201, json!({"_id": id, "_seq_no": seq}))
                }
                _ => match self.ism.remove(*id) {
                    Some(_) => ok,
                    None => (404, json!({"result": "not_found"})),
                },
            },
            (
                "POST",
                [
                    "_plugins",
                    "_ism",
                    action @ ("add" | "change_policy"),
                    names,
                ],
            ) if os && self.lifecycle => {
                let policy = body["policy_id"].as_str().unwrap().to_owned();
                let (mut updated, mut failed) = (0, Vec::new());
                for index in names.split(',') {
                    if *action == "add" && self.managed.contains_key(index) {
                        failed.push(json!({"index_name": index, "reason":
                            "This index already has a policy, use the update policy API to update index policies"}));
                    } else {
                        self.managed.insert(index.to_owned(), policy.clone());
                        updated += 1;
                    }
                }
                (
                    200,
                    json!({"updated_indices": updated, "failures": !failed.is_empty(), "failed_indices": failed}),
                )
            }
            (_, ["_index_template", name]) => match method {
                "GET" => match self.templates.get(*name) {
                    Some(t) => (
                        200,
                        json!({"index_templates": [{"name": name, "index_template": t}]}),
                    ),
                    None => not_found,
                },
                "PUT" if self.refuse_templates => (
                    403,
                    json!({"error": "no permissions for [indices:admin/index_template/put]"}),
                ),
                "PUT" => {
                    self.templates.insert((*name).to_owned(), body);
                    ok
                }
                _ => match self.templates.remove(*name) {
                    Some(_) => ok,
                    None => not_found,
                },
            },
            (_, ["_data_stream", name]) => match method {
                "GET" => match self.streams.get(*name) {
                    Some(indices) => {
                        let indices: Vec<Value> =
                            indices.iter().map(|i| json!({"index_name": i})).collect();
                        let template = self
                            .templates
                            .iter()
                            .find(|(_, t)| t["index_patterns"][0] == *name)
                            .map(|(template, _)| template.clone());
                        (
                            200,
                            json!({"data_streams": [{"name": name, "indices": indices,
                                "template": template}]}),
                        )
                    }
                    None => not_found,
                },
                "PUT" if self.streams.contains_key(*name) => (
                    400,
                    json!({"error": {"type": "resource_already_exists_exception"}}),
                ),
                "PUT" => {
                    self.new_backing_index(name);
                    ok
                }
                _ => match self.streams.remove(*name) {
                    Some(_) => ok,
                    None => not_found,
                },
            },
            ("POST", [stream, "_rollover"]) if self.streams.contains_key(*stream) => {
                self.new_backing_index(stream);
                (200, json!({"acknowledged": true, "rolled_over": true}))
            }
            ("GET", [index, "_mapping"]) => match self.labels.get(*index) {
                Some(labels) => (
                    200,
                    json!({*index: {"mappings": {"properties": {"labels": labels}}}}),
                ),
                None => not_found,
            },
            ("GET", ["_cat", "indices", _]) => (200, json!([])),
            ("PUT", [_, "_settings"]) => ok,
            _ => no_handler,
        }
    }
}

/// Serves `fake` over HTTP/1.1 (keep-alive) on a free port; returns a client for it.
async fn serve(fake: Arc<Mutex<Fake>>) -> EsClient {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let (socket, _) = listener.accept().await.unwrap();
            tokio::spawn(connection(socket, fake.clone()));
        }
    });
    let config =
        ElasticsearchConfig::from_env(&EnvSource::from_pairs(&[("ELASTICSEARCH_NODE", &url)]))
            .unwrap();
    EsClient::new(&config, &EsSecrets::default()).unwrap()
}

async fn connection(mut socket: tokio::net::TcpStream, fake: Arc<Mutex<Fake>>) {
    let mut buf = Vec::new();
    loop {
        let head_end = loop {
            if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            let mut chunk = [0u8; 8192];
            match socket.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let length: usize = head
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().unwrap())
            })
            .unwrap_or(0);
        while buf.len() < head_end + length {
            let mut chunk = [0u8; 8192];
            match socket.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body: Value = if length == 0 {
            Value::Null
        } else {
            serde_json::from_slice(&buf[head_end..head_end + length]).unwrap()
        };
        buf.drain(..head_end + length);
        let mut request_line = head.lines().next().unwrap().split(' ');
        let (method, target) = (request_line.next().unwrap(), request_line.next().unwrap());
        let (status, answer) = fake.lock().unwrap().handle(method, target, body);
        let answer = answer.to_string();
        let response = format!(
            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{answer}",
            answer.len()
        );
        if socket.write_all(response.as_bytes()).await.is_err() {
            return;
        }
    }
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn strings(v: &[&str]) -> Vec<String> {
    sorted(v.iter().map(|s| (*s).to_owned()).collect())
}

#[tokio::test]
async fn elasticsearch_gets_ilm_policies_named_by_its_templates_and_a_second_run_writes_nothing() {
    let fake = Arc::new(Mutex::new(Fake::new(Flavour::Elasticsearch, true)));
    let client = serve(fake.clone()).await;

    let report = provision(&client, &plan()).await.unwrap();
    assert_eq!(report.flavour, Flavour::Elasticsearch);
    assert_eq!(report.version, "8.17.1");
    assert_eq!(report.lifecycle, Lifecycle::Ilm);
    assert_eq!(
        sorted(report.changed),
        strings(&[
            "created ILM policy logs-apm-lifecycle",
            "created ILM policy traces-apm-lifecycle",
            "created ILM policy metrics-apm-lifecycle",
            "created index template logs-apm-template",
            "created index template traces-apm-template",
            "created index template metrics-apm-template",
            "created index template metrics-apm-endpoints-template",
            "created data stream logs-apm",
            "created data stream traces-apm",
        ])
    );
    {
        let f = fake.lock().unwrap();
        let expected = desired_state(&plan(), Flavour::Elasticsearch, &Lifecycle::Ilm);
        assert_eq!(
            f.ilm["logs-apm-lifecycle"],
            expected.policies[0].body["policy"]
        );
        assert_eq!(
            f.templates["traces-apm-template"]["template"]["settings"]["index.lifecycle.name"],
            "traces-apm-lifecycle"
        );
        // Policies first, then templates, then data streams.
        let writes = f.writes();
        let position = |prefix: &str| writes.iter().position(|w| w.starts_with(prefix)).unwrap();
        assert!(position("PUT /_ilm/policy/metrics") < position("PUT /_index_template/"));
        assert!(
            position("PUT /_index_template/metrics-apm-endpoints") < position("PUT /_data_stream/")
        );
    }

    let writes_before = fake.lock().unwrap().writes().len();
    let again = provision(&client, &plan()).await.unwrap();
    assert_eq!(again.changed, Vec::<String>::new());
    assert_eq!(fake.lock().unwrap().writes().len(), writes_before);

    let longer = ProvisionPlan {
        logs_retention: "30d".to_owned(),
        ..plan()
    };
    let report = provision(&client, &longer).await.unwrap();
    assert_eq!(report.changed, ["updated ILM policy logs-apm-lifecycle"]);
    assert_eq!(
        fake.lock().unwrap().ilm["logs-apm-lifecycle"]["phases"]["delete"]["min_age"],
        "30d"
    );

    let more_replicas = ProvisionPlan {
        replicas: 2,
        ..longer
    };
    let report = provision(&client, &more_replicas).await.unwrap();
    assert_eq!(
        sorted(report.changed),
        strings(&[
            "updated index template logs-apm-template",
            "updated index template traces-apm-template",
            "updated index template metrics-apm-template",
            "updated index template metrics-apm-endpoints-template",
            "applied index settings to 1 existing indices of data stream logs-apm",
            "applied index settings to 1 existing indices of data stream traces-apm",
        ])
    );
    let f = fake.lock().unwrap();
    let (_, _, settings) = f
        .log
        .iter()
        .find(|(m, p, _)| m == "PUT" && p == "/.ds-logs-apm-000001/_settings")
        .unwrap();
    assert_eq!(
        *settings,
        json!({"index.number_of_replicas": 2, "index.lifecycle.name": "logs-apm-lifecycle"})
    );
}

#[tokio::test]
async fn opensearch_ism_updates_carry_the_sequence_number_and_reach_existing_indices() {
    let mut cluster = Fake::new(Flavour::OpenSearch, true);
    // logs-apm exists already (ingest created it before the operator came): its backing index
    // predates the ISM template, so the policy must be added to it explicitly.
    cluster.add_stream("logs-apm");
    let fake = Arc::new(Mutex::new(cluster));
    let client = serve(fake.clone()).await;

    let report = provision(&client, &plan()).await.unwrap();
    assert_eq!(report.lifecycle, Lifecycle::Ism);
    assert_eq!(report.version, "2.19.3");
    assert_eq!(
        sorted(report.changed),
        strings(&[
            "created ISM policy logs-apm-lifecycle",
            "attached ISM policy logs-apm-lifecycle to 1 existing indices of data stream logs-apm",
            "created ISM policy traces-apm-lifecycle",
            "created ISM policy metrics-apm-lifecycle",
            "created index template logs-apm-template",
            "applied index settings to 1 existing indices of data stream logs-apm",
            "created index template traces-apm-template",
            "created index template metrics-apm-template",
            "created index template metrics-apm-endpoints-template",
            "rolled data stream logs-apm over onto the current labels mapping (backing index \
             .ds-logs-apm-000001 keeps the old one until retention deletes it)",
            "created data stream traces-apm",
        ])
    );
    {
        let f = fake.lock().unwrap();
        assert_eq!(f.managed[".ds-logs-apm-000001"], "logs-apm-lifecycle");
        // The old backing index keeps its mapping; the new write index has the template's.
        assert_eq!(f.streams["logs-apm"].len(), 2);
        assert_eq!(
            f.labels[".ds-logs-apm-000002"],
            json!({"type": "flat_object"})
        );
        assert_eq!(
            f.labels[".ds-traces-apm-000001"],
            json!({"type": "flat_object"})
        );
    }
    assert_eq!(
        provision(&client, &plan()).await.unwrap().changed,
        Vec::<String>::new()
    );

    // ISM attached the new traces-apm backing index by its template (the fake does not).
    // The fake answers 409 to a PUT over an existing policy without its sequence number.
    fake.lock().unwrap().managed.insert(
        ".ds-traces-apm-000001".to_owned(),
        "traces-apm-lifecycle".to_owned(),
    );
    let shorter = ProvisionPlan {
        traces_retention: "3d".to_owned(),
        ..plan()
    };
    let report = provision(&client, &shorter).await.unwrap();
    assert_eq!(
        report.changed,
        [
            "updated ISM policy traces-apm-lifecycle",
            "switched 1 existing indices of data stream traces-apm to ISM policy traces-apm-lifecycle"
        ]
    );
    let f = fake.lock().unwrap();
    assert!(
        f.writes().contains(
            &"PUT /_plugins/_ism/policies/traces-apm-lifecycle?if_seq_no=0&if_primary_term=1"
                .to_owned()
        ),
        "{:?}",
        f.writes()
    );
    assert_eq!(
        f.ism["traces-apm-lifecycle"].1["states"][0]["transitions"][0]["conditions"],
        json!({"min_index_age": "3d"})
    );
}

#[tokio::test]
async fn elasticsearch_without_ilm_still_gets_templates_and_streams() {
    let fake = Arc::new(Mutex::new(Fake::new(Flavour::Elasticsearch, false)));
    let client = serve(fake.clone()).await;
    let report = provision(&client, &plan()).await.unwrap();
    assert_eq!(
        report.lifecycle,
        Lifecycle::Unavailable {
            reason: unavailable_reason(Flavour::Elasticsearch, &plan().streams)
        }
    );
    assert_eq!(report.changed.len(), 6, "{:?}", report.changed);
    assert_eq!(
        fake.lock().unwrap().templates["logs-apm-template"]["template"]["settings"],
        json!({"index.mapping.total_fields.limit": 2000, "index.number_of_replicas": 1})
    );
}

#[tokio::test]
async fn a_refused_write_is_an_error_with_the_status_and_the_engine_reason() {
    let mut cluster = Fake::new(Flavour::OpenSearch, false);
    cluster.refuse_templates = true;
    let client = serve(Arc::new(Mutex::new(cluster))).await;
    match provision(&client, &plan()).await.unwrap_err() {
        EsError::Status { what, status, body } => {
            assert_eq!(what, "Put /_index_template/logs-apm-template");
            assert_eq!(status, 403);
            assert!(
                body.contains("no permissions for [indices:admin/index_template/put]"),
                "{body}"
            );
        }
        other => panic!("expected a status error, got {other:?}"),
    }
}

#[tokio::test]
async fn remove_deletes_streams_templates_and_policies_then_finds_nothing_left() {
    for flavour in [Flavour::Elasticsearch, Flavour::OpenSearch] {
        let fake = Arc::new(Mutex::new(Fake::new(flavour, true)));
        let client = serve(fake.clone()).await;
        provision(&client, &plan()).await.unwrap();
        let kind = if flavour == Flavour::Elasticsearch {
            "ILM"
        } else {
            "ISM"
        };
        let removed = remove(&client, &plan()).await.unwrap();
        assert_eq!(
            removed,
            [
                "deleted data stream logs-apm".to_owned(),
                "deleted data stream traces-apm".to_owned(),
                "deleted index template logs-apm-template".to_owned(),
                "deleted index template traces-apm-template".to_owned(),
                "deleted index template metrics-apm-template".to_owned(),
                "deleted index template metrics-apm-endpoints-template".to_owned(),
                format!("deleted {kind} policy logs-apm-lifecycle"),
                format!("deleted {kind} policy traces-apm-lifecycle"),
                format!("deleted {kind} policy metrics-apm-lifecycle"),
            ]
        );
        {
            let f = fake.lock().unwrap();
            assert!(f.templates.is_empty() && f.streams.is_empty());
            assert!(f.ilm.is_empty() && f.ism.is_empty());
        }
        assert_eq!(
            remove(&client, &plan()).await.unwrap(),
            Vec::<String>::new()
        );
    }
}
