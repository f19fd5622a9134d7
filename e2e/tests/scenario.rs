//! The whole product, end to end, as a user meets it: install → a Panopticon resource Ready →
//! traffic ingested → the query API answers the dashboard's calls (service overview, endpoint
//! ranking, metric series, a full trace) → a Socket.IO client receives the produced errors →
//! consumer lag makes the autoscaler scale ingest → a config change rolls pods → deleting the
//! resource cleans up.
//!
//! Against the local stack (the default) the components run as local processes with exactly
//! the configuration the operator rendered into their ConfigMaps (kwok only pretends to run
//! the pods). With `PANOPTICON_E2E_TARGET=kind` (set by `e2e/kind/test`, after Helm installed
//! the operator and the CRD) the same steps use the in-cluster components: the resource runs
//! the loaded image (`PANOPTICON_E2E_IMAGE`) against the in-cluster servers
//! (`PANOPTICON_E2E_{ES,KAFKA,REDIS}_IN_CLUSTER`), the traffic comes from a Job, and query and
//! alert are reached through port-forwards (see `kind.rs`).

#[path = "scenario/kind.rs"]
mod kind;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result, bail, ensure};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Client, Config};
use panopticon_e2e::ingest::{count_docs, count_matching, free_port, http_get, wait_until};
use panopticon_e2e::live::NodeClient;
use panopticon_e2e::process::Component;
use serde_json::{Value, json};

const MANAGER: &str = "panopticon-e2e";
const WAIT: Duration = Duration::from_secs(180);
const EVENTS: u64 = 1200;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn binary(name: &str) -> Result<PathBuf> {
    panopticon_e2e::process::workspace_binary(name)
}

async fn client() -> Result<Client> {
    let kubeconfig = kube::config::Kubeconfig::read_from(panopticon_e2e::kubeconfig())?;
    let config = Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?;
    Ok(Client::try_from(config)?)
}

fn panopticon_resource() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        "panopticon.io",
        "v1alpha1",
        "Panopticon",
    ))
}

async fn apply(api: &Api<DynamicObject>, name: &str, value: &Value) -> Result<()> {
    api.patch(
        name,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(value),
    )
    .await?;
    Ok(())
}

/// Ready=True for the current generation.
async fn wait_ready(api: &Api<DynamicObject>, name: &str) -> Result<()> {
    wait_until(&format!("{name} to be Ready"), WAIT, || async {
        let p = api.get(name).await?;
        let status = &p.data["status"];
        let current = status["observedGeneration"].as_i64() == p.metadata.generation;
        let ready = status["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True");
        Ok(current && ready)
    })
    .await
    .with_context(|| "the resource did not become Ready")
}

async fn get_json(url: &str) -> Result<Value> {
    let (status, body) = http_get(url).await?;
    ensure!(status == 200, "GET {url}: {status} {body}");
    Ok(serde_json::from_str(&body)?)
}

/// The local processes of one run: stopped (SIGTERM) at the end.
struct Processes(Vec<Component>);

impl Processes {
    async fn stop(self) -> Result<()> {
        for mut p in self.0 {
            let status = p.terminate(Duration::from_secs(40)).await?;
            ensure!(status.success(), "{status}: {}", p.log_tail());
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_ingest_query_alert_autoscale_roll_and_clean_up() -> Result<()> {
    let kind = std::env::var("PANOPTICON_E2E_TARGET").is_ok_and(|t| t == "kind");
    let kube = client().await?;
    let tag = panopticon_e2e::unique_name("e2e");
    let ns = tag.clone();
    let mut processes = Processes(Vec::new());

    // Install: the committed CRD (in kind, Helm installed it and runs the operator).
    let crds: Api<DynamicObject> = Api::all_with(
        kube.clone(),
        &ApiResource::from_gvk(&GroupVersionKind::gvk(
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
        )),
    );
    if !kind {
        let crd_text = std::fs::read_to_string(repo().join("crds/panopticon.io_panopticons.yaml"))?;
        apply(
            &crds,
            "panopticons.panopticon.io",
            &serde_yaml_value(&crd_text)?,
        )
        .await?;
    }
    wait_until("the CRD to be served", WAIT, || async {
        let crd = crds.get("panopticons.panopticon.io").await?;
        Ok(crd.data["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Established" && c["status"] == "True"))
    })
    .await?;
    let namespaces: Api<Namespace> = Api::all(kube.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": ns}}))?,
        )
        .await?;
    if !kind {
        let env = vec![
            ("WATCH_NAMESPACES".to_owned(), ns.clone()),
            ("RESYNC_SECONDS".to_owned(), "30".to_owned()),
        ];
        processes.0.push(
            Component::start(&binary("panopticon-operator")?, &[], &env, "e2e-operator").await?,
        );
    }

    // A resource with its own streams, topics and consumer group; rollup without lateness so a
    // closed minute is rolled up at once; ingest autoscaled from lag, down to zero while idle
    // (so that in kind, where ingest pods really consume, the traffic becomes lag first).
    let (es, kafka, redis) = if kind {
        (
            required("PANOPTICON_E2E_ES_IN_CLUSTER")?,
            required("PANOPTICON_E2E_KAFKA_IN_CLUSTER")?,
            required("PANOPTICON_E2E_REDIS_IN_CLUSTER")?,
        )
    } else {
        (
            panopticon_e2e::elasticsearch_url(),
            panopticon_e2e::kafka_brokers(),
            panopticon_e2e::redis_url(),
        )
    };
    let stream = |kind: &str| format!("{kind}-{tag}");
    let topic = |kind: &str| format!("{tag}.{kind}");
    let mut resource = json!({
        "apiVersion": "panopticon.io/v1alpha1", "kind": "Panopticon",
        "metadata": {"name": "apm", "namespace": ns},
        "spec": {
            "elasticsearch": {"url": es, "replicas": 0, "streams": {
                "logs": {"name": stream("logs"), "retention": "1d"},
                "traces": {"name": stream("traces"), "retention": "1d"},
                "metrics": {"name": stream("metrics"), "retention": "7d"}}},
            "kafka": {"bootstrapServers": kafka, "topics": {
                "logs": {"name": topic("logs"), "partitions": 4, "retention": "1d"},
                "spans": {"name": topic("spans"), "partitions": 4, "retention": "1d"},
                "errors": {"name": topic("errors"), "partitions": 2, "retention": "1d"},
                "deadLetter": {"name": topic("dlq"), "partitions": 1, "retention": "1d"}}},
            "redis": {"url": redis},
            "rollup": {"latenessSeconds": 0, "pollIntervalMs": 1000},
            "ingest": {"consumerGroup": topic("ingest"), "autoscaling": {
                "mode": "builtin", "minReplicas": 0, "maxReplicas": 4, "lagThreshold": 100,
                "pollIntervalSeconds": 2, "scaleDownStabilizationSeconds": 0}}
        }
    });
    let image = if kind {
        let image = required("PANOPTICON_E2E_IMAGE")?;
        resource["spec"]["image"] = kind::image_spec(&image)?;
        image
    } else {
        String::new()
    };
    let api: Api<DynamicObject> = Api::namespaced_with(kube.clone(), &ns, &panopticon_resource());
    apply(&api, "apm", &resource).await?;
    wait_ready(&api, "apm").await?;
    // Retention: kind's public OpenSearch image has the ISM plugin, the local stack's does not
    // (not on Maven Central), and the condition says so rather than pretending.
    let retention = api.get("apm").await?.data["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "RetentionEnforced")
        .cloned()
        .context("no RetentionEnforced condition")?;
    let expected = if kind { "True" } else { "False" };
    ensure!(retention["status"] == expected, "{retention}");

    // The components, configured from what the operator rendered.
    let config_maps: Api<ConfigMap> = Api::namespaced(kube.clone(), &ns);
    let mut rendered: BTreeMap<&str, Vec<(String, String)>> = BTreeMap::new();
    for component in ["ingest", "rollup", "query", "alert"] {
        let data = config_maps
            .get(&format!("apm-{component}"))
            .await?
            .data
            .context("rendered configuration")?;
        rendered.insert(component, data.into_iter().collect());
    }
    let mut forwards = Vec::new();
    let (query_url, alert_url) = if kind {
        for service in ["apm-query", "apm-alert"] {
            forwards.push(kind::PortForward::service(&kube, &ns, service).await?);
        }
        (
            format!("http://127.0.0.1:{}", forwards[0].local_port),
            format!("ws://127.0.0.1:{}", forwards[1].local_port),
        )
    } else {
        // Everything as rendered but the listen port: the rendered ports (`PORT`,
        // `ERROR_STREAM_PORT`) may be held by another program on this machine, such as the demo.
        let panopticon = binary("panopticon")?;
        let query_addr = format!("127.0.0.1:{}", free_port()?);
        let alert_addr = format!("127.0.0.1:{}", free_port()?);
        for (component, listen) in [
            ("rollup", None),
            ("query", Some(&query_addr)),
            ("alert", Some(&alert_addr)),
        ] {
            let name = format!("e2e-{component}");
            let mut args = vec![component];
            if let Some(addr) = listen {
                args.extend(["--listen", addr.as_str()]);
            }
            processes
                .0
                .push(Component::start(&panopticon, &args, &rendered[component], &name).await?);
        }
        (format!("http://{query_addr}"), format!("ws://{alert_addr}"))
    };
    // The dashboard's Socket.IO client, connected before any error exists.
    let mut dashboard = NodeClient::start(&alert_url, &json!({}))?;
    dashboard.connected(WAIT).await?;

    // Idle: no lag, so the autoscaler takes ingest down to zero.
    let deployments: Api<Deployment> = Api::namespaced(kube.clone(), &ns);
    let ingest_replicas = || async {
        let d = deployments.get("apm-ingest").await?;
        Ok::<_, anyhow::Error>(d.spec.and_then(|s| s.replicas))
    };
    wait_until("the idle ingest to be scaled to zero", WAIT, || async {
        Ok(ingest_replicas().await? == Some(0))
    })
    .await?;

    // Traffic while nothing consumes: lag → the autoscaler scales ingest up. `panopticon
    // sample` runs with the environment the operator rendered for ingest.
    let sample_args: Vec<String> = [
        "sample",
        "--count",
        &EVENTS.to_string(),
        "--services",
        "4",
        "--error-ratio",
        "0.2",
        "--seed",
        "7",
        "--rate",
        "20000",
    ]
    .map(str::to_owned)
    .to_vec();
    if kind {
        kind::run_job(
            &kube,
            &ns,
            "sample",
            &image,
            &sample_args,
            "apm-ingest",
            WAIT,
        )
        .await?;
    } else {
        let sample = tokio::process::Command::new(binary("panopticon")?)
            .args(&sample_args)
            .envs(
                rendered["ingest"]
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str())),
            )
            .output();
        let out = tokio::time::timeout(WAIT, sample).await??;
        ensure!(
            out.status.success(),
            "sample: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    wait_until(
        "the autoscaler to scale ingest to 4 (its max)",
        WAIT,
        || async { Ok(ingest_replicas().await? == Some(4)) },
    )
    .await?;

    // Ingest drains the backlog into the data streams (in kind, the scaled pods do).
    if !kind {
        processes.0.push(
            Component::start(
                &binary("panopticon")?,
                &["ingest"],
                &rendered["ingest"],
                "e2e-ingest",
            )
            .await?,
        );
    }
    wait_until("every event indexed", WAIT, || async {
        let n = count_docs(&stream("logs")).await? + count_docs(&stream("traces")).await?;
        ensure!(n <= EVENTS, "{n} documents for {EVENTS} events: duplicates");
        Ok(n == EVENTS)
    })
    .await?;
    // Drained: the lag is gone, and so are the replicas (no stabilization window here).
    wait_until("ingest to be scaled back to zero", WAIT, || async {
        Ok(ingest_replicas().await? == Some(0))
    })
    .await?;

    // The dashboard's calls. The overview reads rolled-up minutes: the traffic's minute must
    // close first (rollup runs without lateness here).
    let overview_url = format!("{query_url}/query/services?limit=1000");
    let services = std::sync::Mutex::new(Vec::new());
    wait_until("the 4 sampled services in the overview", WAIT, || async {
        let overview = get_json(&overview_url).await?;
        // One row per (service, environment) the traffic used.
        let names: std::collections::BTreeSet<String> = overview["services"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["service_name"].as_str().map(str::to_owned))
            .collect();
        ensure!(names.len() <= 4, "more services than sampled: {overview}");
        let done = names.len() == 4;
        if let Ok(mut s) = services.lock() {
            *s = names.into_iter().collect();
        }
        Ok(done)
    })
    .await?;
    let services = services.into_inner().unwrap_or_default();
    let service = &services[0];
    let ranking = get_json(&format!(
        "{query_url}/query/services/{service}/endpoints?limit=200"
    ))
    .await?;
    ensure!(
        ranking["endpoints"]
            .as_array()
            .is_some_and(|e| !e.is_empty()),
        "endpoint ranking: {ranking}"
    );
    let traces = get_json(&format!(
        "{query_url}/query/services/{service}/traces?size=10"
    ))
    .await?;
    let trace_id = traces["traces"][0]["trace_id"]
        .as_str()
        .context("a trace")?
        .to_owned();
    let trace = get_json(&format!("{query_url}/query/traces/{trace_id}")).await?;
    let spans = trace["spans"].as_array().context("spans")?;
    ensure!(spans.len() >= 2, "a full trace: {trace}");
    ensure!(spans.iter().all(|s| s["trace_id"] == trace_id.as_str()));
    // Metric series: every SERVER span the traffic produced is one request in the services'
    // series, no more, no fewer, once rollup has rolled the traffic's minutes.
    let server_spans = count_matching(
        &stream("traces"),
        r#"{"query": {"term": {"kind": "SERVER"}}}"#,
    )
    .await? as f64;
    ensure!(server_spans > 0.0, "no SERVER span in the sampled traffic");
    let now = chrono::Utc::now();
    let from = (now - chrono::Duration::minutes(10)).to_rfc3339();
    let to = (now + chrono::Duration::minutes(5)).to_rfc3339();
    let requests = std::sync::Mutex::new(0.0);
    let counted = wait_until(
        "the request series to count every SERVER span",
        WAIT,
        || async {
            let mut total = 0.0;
            for service in &services {
                let series = get_json(&format!(
                    "{query_url}/query/services/{service}/metrics?from={}&to={}&interval=1m",
                    urlencode(&from),
                    urlencode(&to)
                ))
                .await?;
                total += series
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|s| s["metric_name"] == "http_requests_total")
                    .flat_map(|s| s["points"].as_array().cloned().unwrap_or_default())
                    .filter_map(|p| p["value"].as_f64())
                    .sum::<f64>();
            }
            ensure!(
                total <= server_spans,
                "{total} requests for {server_spans} SERVER spans: counted twice"
            );
            if let Ok(mut r) = requests.lock() {
                *r = total;
            }
            Ok(total == server_spans)
        },
    )
    .await;
    counted.with_context(|| {
        format!(
            "the series count {:?} requests for {server_spans} SERVER spans",
            requests.lock().map(|r| *r).unwrap_or_default()
        )
    })?;

    // The errors reached the browser.
    let errors = dashboard.error_logs(1, WAIT).await?;
    ensure!(errors.iter().all(|e| e["level"] == "ERROR"), "{errors:?}");
    ensure!(errors.iter().all(|e| {
        e["service_name"]
            .as_str()
            .is_some_and(|s| services.iter().any(|x| x == s))
    }));

    // A configuration change rolls query's pods.
    let hash = |d: &Deployment| {
        d.spec
            .as_ref()
            .and_then(|s| s.template.metadata.as_ref())
            .and_then(|m| m.annotations.as_ref())
            .and_then(|a| a.get("panopticon.io/config-hash").cloned())
    };
    let before = hash(&deployments.get("apm-query").await?);
    api.patch(
        "apm",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"query": {"queryCacheTtlSeconds": 7}}})),
    )
    .await?;
    wait_until("query's pods to roll", WAIT, || async {
        Ok(hash(&deployments.get("apm-query").await?) != before)
    })
    .await?;
    wait_ready(&api, "apm").await?;

    // Deleting the resource removes its children.
    api.delete("apm", &DeleteParams::foreground()).await?;
    wait_until("the children to be garbage-collected", WAIT, || async {
        let left = deployments
            .list(&ListParams::default().labels("app.kubernetes.io/instance=apm"))
            .await?
            .items
            .len();
        Ok(left == 0)
    })
    .await?;

    dashboard.stop().await;
    drop(forwards);
    processes.stop().await?;
    namespaces.delete(&ns, &DeleteParams::background()).await?;
    Ok(())
}

fn required(name: &str) -> Result<String> {
    std::env::var(name).map_err(|_| anyhow::anyhow!("{name} is not set (e2e/kind/test sets it)"))
}

fn serde_yaml_value(text: &str) -> Result<Value> {
    let value: Value = serde_yaml::from_str(text)?;
    if value.is_null() {
        bail!("empty YAML");
    }
    Ok(value)
}

fn urlencode(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}
