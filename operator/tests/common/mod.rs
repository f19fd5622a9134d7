//! Shared fixtures of the operator's integration tests: the stack's real kube-apiserver
//! (with kube-controller-manager, kube-scheduler and kwok, so Deployments get Running pods),
//! OpenSearch and Kafka. Every test works in its own namespace, with its own data stream and
//! topic names, and runs the operator in-process while impersonating the ServiceAccount of
//! `manifests/install`, so every test also proves those RBAC rules sufficient.
#![allow(dead_code)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::discovery::ApiResource;
use kube::{Client, Config};
use panopticon_operator::controller::{self, Context, Options};
use panopticon_operator::crd::Panopticon;
use panopticon_operator::metrics::Metrics;
use prometheus_client::registry::Registry;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

pub const TEST_MANAGER: &str = "panopticon-test";
pub const OPERATOR_SA: &str = "system:serviceaccount:panopticon-system:panopticon-operator";

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// A client with the stack's admin credentials.
pub async fn admin_client() -> Result<Client> {
    let kubeconfig = kube::config::Kubeconfig::read_from(panopticon_e2e::kubeconfig())?;
    let config = Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?;
    Ok(Client::try_from(config)?)
}

/// A client that acts as `user` (needs the admin's impersonation right).
pub async fn impersonating_client(user: &str) -> Result<Client> {
    let kubeconfig = kube::config::Kubeconfig::read_from(panopticon_e2e::kubeconfig())?;
    let mut config = Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?;
    config.auth_info.impersonate = Some(user.to_owned());
    Ok(Client::try_from(config)?)
}

/// Server-side applies every object of a multi-document YAML file.
pub async fn apply_yaml_file(client: &Client, path: &Path) -> Result<()> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let value: Value = serde::Deserialize::deserialize(doc)?;
        if value.is_null() {
            continue;
        }
        apply_value(client, &value).await?;
    }
    Ok(())
}

/// Server-side applies one object given as JSON.
pub async fn apply_value(client: &Client, value: &Value) -> Result<()> {
    let obj: DynamicObject = serde_json::from_value(value.clone())?;
    let types = obj
        .types
        .clone()
        .context("object without apiVersion/kind")?;
    let gvk = GroupVersionKind::try_from(&types)?;
    let (resource, caps) = kube::discovery::pinned_kind(client, &gvk).await?;
    let name = obj.metadata.name.clone().context("object without a name")?;
    let api: Api<DynamicObject> = match (&caps.scope, obj.metadata.namespace.as_deref()) {
        (kube::discovery::Scope::Namespaced, Some(ns)) => {
            Api::namespaced_with(client.clone(), ns, &resource)
        }
        (kube::discovery::Scope::Namespaced, None) => {
            Api::default_namespaced_with(client.clone(), &resource)
        }
        (kube::discovery::Scope::Cluster, _) => Api::all_with(client.clone(), &resource),
    };
    api.patch(
        &name,
        &PatchParams::apply(TEST_MANAGER).force(),
        &Patch::Apply(&obj),
    )
    .await
    .with_context(|| format!("applying {} {name}", gvk.kind))?;
    Ok(())
}

/// Installs the committed CRD (waiting until it is served) and the operator's RBAC from
/// `manifests/install`, as an administrator would.
pub async fn install(client: &Client) -> Result<()> {
    let root = repo_root();
    apply_yaml_file(client, &root.join("crds/panopticon.io_panopticons.yaml")).await?;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    eventually(
        "the CRD to be Established",
        Duration::from_secs(30),
        || async {
            let crd = crds.get("panopticons.panopticon.io").await?;
            Ok(crd
                .status
                .and_then(|s| s.conditions)
                .is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c.type_ == "Established" && c.status == "True")
                })
                .then_some(()))
        },
    )
    .await?;
    for file in [
        "namespace.yaml",
        "service_account.yaml",
        "cluster_role.yaml",
        "cluster_role_binding.yaml",
        "leader_election_role.yaml",
    ] {
        apply_yaml_file(client, &root.join("manifests/install").join(file)).await?;
    }
    Ok(())
}

/// The operator running in this process, as the install's ServiceAccount.
pub struct Operator {
    pub ctx: Arc<Context>,
    pub registry: Arc<Registry>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<Result<()>>,
}

impl Operator {
    /// Watches only `namespace`, like `--watch-namespaces`.
    pub async fn start(namespace: &str) -> Result<Self> {
        let client = impersonating_client(OPERATOR_SA).await?;
        let mut registry = Registry::default();
        let metrics = Metrics::new(&mut registry);
        let options = Options {
            namespaces: vec![namespace.to_owned()],
            resync: Duration::from_secs(20),
            provision_interval: Duration::from_secs(5),
            instance: Some("test".to_owned()),
            ..Options::default()
        };
        let ctx = Arc::new(Context::new(client.clone(), metrics, options));
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(controller::run(client, ctx.clone(), shutdown.clone()));
        Ok(Self {
            ctx,
            registry: Arc::new(registry),
            shutdown,
            task,
        })
    }

    pub async fn stop(self) -> Result<()> {
        self.shutdown.cancel();
        self.task.await??;
        Ok(())
    }
}

/// A namespace of its own, deleted (with everything in it) by [`TestNamespace::delete`].
pub struct TestNamespace {
    pub name: String,
    client: Client,
}

impl TestNamespace {
    pub async fn create(client: &Client, prefix: &str) -> Result<Self> {
        let name = panopticon_e2e::unique_name(prefix);
        let api: Api<Namespace> = Api::all(client.clone());
        api.create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": name}}))?,
        )
        .await?;
        Ok(Self {
            name,
            client: client.clone(),
        })
    }

    pub async fn delete(self) -> Result<()> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        api.delete(&self.name, &DeleteParams::background()).await?;
        Ok(())
    }
}

/// Names unique to one test: data streams and topics.
pub struct Unique {
    pub tag: String,
}

impl Unique {
    pub fn new(prefix: &str) -> Self {
        Self {
            tag: panopticon_e2e::unique_name(prefix),
        }
    }

    pub fn stream(&self, kind: &str) -> String {
        format!("{kind}-{}", self.tag)
    }

    pub fn topic(&self, kind: &str) -> String {
        format!("{}.{kind}", self.tag)
    }
}

/// A Panopticon on the stack's OpenSearch and Kafka, with unique streams and topics.
pub fn resource(name: &str, namespace: &str, unique: &Unique) -> Value {
    json!({
        "apiVersion": "panopticon.io/v1alpha1",
        "kind": "Panopticon",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "elasticsearch": {
                "url": panopticon_e2e::elasticsearch_url(),
                "streams": {
                    "logs": {"name": unique.stream("logs"), "retention": "14d"},
                    "traces": {"name": unique.stream("traces"), "retention": "7d"},
                    "metrics": {"name": unique.stream("metrics"), "retention": "90d"}
                },
                "replicas": 0
            },
            "kafka": {
                "bootstrapServers": panopticon_e2e::kafka_brokers(),
                "topics": {
                    "logs": {"name": unique.topic("logs"), "partitions": 3, "retention": "3d"},
                    "spans": {"name": unique.topic("spans"), "partitions": 3, "retention": "3d"},
                    "errors": {"name": unique.topic("errors"), "partitions": 2, "retention": "1d"},
                    "deadLetter": {"name": unique.topic("dlq"), "partitions": 1, "retention": "14d"}
                }
            }
        }
    })
}

pub fn panopticons(client: &Client, namespace: &str) -> Api<Panopticon> {
    Api::namespaced(client.clone(), namespace)
}

/// Merge-patches the resource's spec as a user would (`kubectl patch --type merge`).
pub async fn patch_spec(client: &Client, namespace: &str, name: &str, spec: Value) -> Result<()> {
    panopticons(client, namespace)
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": spec})),
        )
        .await?;
    Ok(())
}

/// The status of a condition type (`Some("True")`), and its reason and message.
pub fn condition(p: &Panopticon, type_: &str) -> Option<(String, String, String)> {
    p.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// Ready=True for the current generation.
pub fn ready_now(p: &Panopticon) -> bool {
    let current = p.status.as_ref().and_then(|s| s.observed_generation) == p.metadata.generation;
    current && condition(p, "Ready").is_some_and(|(s, _, _)| s == "True")
}

pub async fn wait_ready(
    client: &Client,
    namespace: &str,
    name: &str,
    within: Duration,
) -> Result<Panopticon> {
    let api = panopticons(client, namespace);
    let last = std::sync::Mutex::new(String::new());
    let result = eventually(
        &format!("{namespace}/{name} to be Ready"),
        within,
        || async {
            let p = api.get(name).await?;
            if let Ok(mut l) = last.lock() {
                *l = serde_json::to_string(&p.status).unwrap_or_default();
            }
            Ok(ready_now(&p).then_some(p))
        },
    )
    .await;
    let last = last.lock().map(|l| l.clone()).unwrap_or_default();
    result.with_context(|| format!("last status: {last}"))
}

/// Polls `check` every 250 ms until it yields a value, or fails after `within` with the last
/// error.
pub async fn eventually<T, F, Fut>(what: &str, within: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let deadline = Instant::now() + within;
    loop {
        let last = match check().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => "not yet".to_owned(),
            Err(e) => format!("{e:#}"),
        };
        if Instant::now() > deadline {
            bail!("timed out after {within:?} waiting for {what} (last: {last})");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// GET on the stack's OpenSearch: status and JSON body.
pub async fn es_get(path: &str) -> Result<(u16, Value)> {
    use panopticon_model::config::{ElasticsearchConfig, EnvSource};
    let vars = [("ELASTICSEARCH_NODE", panopticon_e2e::elasticsearch_url())];
    let config = ElasticsearchConfig::from_env(&EnvSource::from_rendered(&vars))?;
    let client = panopticon_es::EsClient::new(&config, &panopticon_es::EsSecrets::default())?;
    let (status, body) = client
        .request(elasticsearch::http::Method::Get, path, None)
        .await?;
    Ok((status.as_u16(), body))
}

/// Partition count of a topic, `None` when it does not exist.
pub fn topic_partitions(topic: &str) -> Result<Option<usize>> {
    use rdkafka::consumer::{BaseConsumer, Consumer as _};
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", panopticon_e2e::kafka_brokers())
        .create()?;
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    Ok(metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
        .map(|t| t.partitions().len()))
}

/// Object reference helpers for the ApiResource of a type.
pub fn api_resource<K: kube::Resource<DynamicType = ()>>() -> ApiResource {
    ApiResource::erase::<K>(&())
}
