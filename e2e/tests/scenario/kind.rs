//! What the scenario does differently in a kind cluster, where the components are real pods:
//! the traffic comes from a Job inside the cluster (the in-cluster Kafka address is not
//! reachable from the runner), and query and alert are reached through `kubectl port-forward`.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::Client;
use kube::api::{Api, ListParams, LogParams, PostParams};
use serde_json::json;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

/// `panopticon:kind-e2e` → `{repository, tag, pullPolicy: Never}`: the image `e2e/kind/up`
/// built and loaded into the nodes (`PANOPTICON_E2E_IMAGE`).
pub fn image_spec(image: &str) -> Result<serde_json::Value> {
    let (repository, tag) = image
        .rsplit_once(':')
        .filter(|(_, tag)| !tag.contains('/'))
        .with_context(|| format!("PANOPTICON_E2E_IMAGE {image:?} has no tag"))?;
    Ok(json!({"repository": repository, "tag": tag, "pullPolicy": "Never"}))
}

/// Runs `panopticon <args>` once as a Job with the environment of the ConfigMap `env_from`
/// (what the operator rendered for a component), and waits for it to succeed. No retry: a
/// second attempt would send the traffic twice.
pub async fn run_job(
    kube: &Client,
    ns: &str,
    name: &str,
    image: &str,
    args: &[String],
    env_from: &str,
    timeout: Duration,
) -> Result<()> {
    let jobs: Api<Job> = Api::namespaced(kube.clone(), ns);
    let job: Job = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never", "automountServiceAccountToken": false,
            "securityContext": {"runAsNonRoot": true, "runAsUser": 65532,
                "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "panopticon", "image": image, "imagePullPolicy": "Never",
                "args": args, "envFrom": [{"configMapRef": {"name": env_from}}],
                "securityContext": {"allowPrivilegeEscalation": false,
                    "readOnlyRootFilesystem": true, "capabilities": {"drop": ["ALL"]}}}]}}}
    }))?;
    jobs.create(&PostParams::default(), &job).await?;
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let status = jobs.get(name).await?.status.unwrap_or_default();
        if status.succeeded.unwrap_or(0) > 0 {
            return Ok(());
        }
        if status.failed.unwrap_or(0) > 0 || tokio::time::Instant::now() > deadline {
            bail!(
                "Job {ns}/{name} did not succeed ({status:?}); its log:\n{}",
                job_log(kube, ns, name).await
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn job_log(kube: &Client, ns: &str, name: &str) -> String {
    let pods: Api<Pod> = Api::namespaced(kube.clone(), ns);
    // The Job controller labels its pods with `batch.kubernetes.io/job-name`.
    let selector = format!("batch.kubernetes.io/job-name={name}");
    let Ok(list) = pods.list(&ListParams::default().labels(&selector)).await else {
        return "(pods not listed)".to_owned();
    };
    let mut out = String::new();
    for pod in list.items {
        let pod_name = pod.metadata.name.unwrap_or_default();
        let params = LogParams {
            tail_lines: Some(50),
            ..Default::default()
        };
        let log = pods.logs(&pod_name, &params).await;
        out.push_str(&log.unwrap_or_else(|e| format!("({pod_name}: {e})")));
    }
    out
}

/// A `kubectl port-forward` to a Service's `http` port on a free local port; stopped on drop.
pub struct PortForward {
    _child: Child,
    pub local_port: u16,
}

impl PortForward {
    pub async fn service(kube: &Client, ns: &str, service: &str) -> Result<Self> {
        let services: Api<Service> = Api::namespaced(kube.clone(), ns);
        let port = services
            .get(service)
            .await?
            .spec
            .and_then(|s| s.ports)
            .into_iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some("http"))
            .with_context(|| format!("Service {ns}/{service} has no http port"))?
            .port;
        let mut child = Command::new("kubectl")
            .args(["-n", ns, "port-forward", "--address", "127.0.0.1"])
            .arg(format!("service/{service}"))
            .arg(format!(":{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("kubectl port-forward (kubectl must be on PATH)")?;
        let stdout = child.stdout.take().context("port-forward stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        // "Forwarding from 127.0.0.1:41235 -> 8080"
        let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .context("kubectl port-forward printed nothing in 30 s")??
            .context("kubectl port-forward exited")?;
        let local_port = first
            .strip_prefix("Forwarding from 127.0.0.1:")
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|p| p.parse().ok())
            .with_context(|| format!("unexpected port-forward output: {first}"))?;
        // Keep draining its output so kubectl never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Self {
            _child: child,
            local_port,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::image_spec;

    #[test]
    fn the_image_splits_at_the_tag_not_at_a_registry_port() {
        let spec = image_spec("localhost:5000/panopticon:kind-e2e").unwrap();
        assert_eq!(spec["repository"], "localhost:5000/panopticon");
        assert_eq!(spec["tag"], "kind-e2e");
        assert_eq!(spec["pullPolicy"], "Never");
        assert!(image_spec("localhost:5000/panopticon").is_err());
        assert!(image_spec("panopticon").is_err());
    }
}
