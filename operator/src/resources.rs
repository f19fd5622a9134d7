//! Pure builders of the children of a `Panopticon`: for each component a ServiceAccount, a
//! ConfigMap with the rendered configuration, a Deployment, a Service where it listens and a
//! PodDisruptionBudget when it runs more than one replica; for rollup also the Role and
//! RoleBinding that let it hold its Lease. No I/O: the reconciler applies what these return.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapEnvSource, Container, ContainerPort, EmptyDirVolumeSource,
    EnvFromSource, EnvVar, EnvVarSource, HTTPGetAction, KeyToPath, LocalObjectReference,
    ObjectFieldSelector, PodSecurityContext, PodSpec, PodTemplateSpec, Probe, SeccompProfile,
    SecretKeySelector, SecretVolumeSource, SecurityContext, Service, ServiceAccount, ServicePort,
    ServiceSpec, Volume, VolumeMount,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Resource as _;
use panopticon_model::config::vars;

use crate::crd::{AutoscalingMode, Panopticon, PodSpecOverrides, ServiceSpec as CrServiceSpec};
use crate::render::{ADMIN_PORT, Component, Rendered};

/// The annotation on pod templates that rolls pods when their configuration changes.
pub const CONFIG_HASH_ANNOTATION: &str = "panopticon.io/config-hash";
/// UID and GID the components run as (distroless "nonroot").
const RUN_AS: i64 = 65532;

/// Names and labels of one component of one resource.
#[derive(Debug, Clone)]
pub struct Names {
    /// `<resource>-<component>`: the Deployment, Service, ServiceAccount, ConfigMap, PDB.
    pub name: String,
    pub namespace: String,
    pub selector: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
}

impl Names {
    pub fn new(pano: &Panopticon, component: Component) -> Self {
        let instance = pano.metadata.name.clone().unwrap_or_default();
        let selector = BTreeMap::from([
            ("app.kubernetes.io/name".to_owned(), "panopticon".to_owned()),
            ("app.kubernetes.io/instance".to_owned(), instance.clone()),
            (
                "app.kubernetes.io/component".to_owned(),
                component.as_str().to_owned(),
            ),
        ]);
        let mut labels = selector.clone();
        labels.insert(
            "app.kubernetes.io/managed-by".to_owned(),
            "panopticon-operator".to_owned(),
        );
        labels.insert(
            "app.kubernetes.io/part-of".to_owned(),
            "panopticon".to_owned(),
        );
        Self {
            name: format!("{instance}-{}", component.as_str()),
            namespace: pano.metadata.namespace.clone().unwrap_or_default(),
            selector,
            labels,
        }
    }

    fn meta(&self, owner: &OwnerReference) -> ObjectMeta {
        ObjectMeta {
            name: Some(self.name.clone()),
            namespace: Some(self.namespace.clone()),
            labels: Some(self.labels.clone()),
            owner_references: Some(vec![owner.clone()]),
            ..ObjectMeta::default()
        }
    }
}

/// The controller owner reference every child carries (garbage collection on deletion).
pub fn owner(pano: &Panopticon) -> OwnerReference {
    let mut owner = pano
        .controller_owner_ref(&())
        .unwrap_or_else(|| OwnerReference {
            api_version: "panopticon.io/v1alpha1".to_owned(),
            kind: "Panopticon".to_owned(),
            ..OwnerReference::default()
        });
    owner.block_owner_deletion = Some(true);
    owner
}

pub fn service_account(
    names: &Names,
    owner: &OwnerReference,
    component: Component,
) -> ServiceAccount {
    ServiceAccount {
        metadata: names.meta(owner),
        // Only rollup talks to the API server (its Lease).
        automount_service_account_token: Some(component == Component::Rollup),
        ..ServiceAccount::default()
    }
}

pub fn config_map(names: &Names, owner: &OwnerReference, rendered: &Rendered) -> ConfigMap {
    ConfigMap {
        metadata: names.meta(owner),
        data: Some(rendered.config.clone()),
        ..ConfigMap::default()
    }
}

/// The replicas the Deployment declares; `None` while an autoscaler owns them (so applying the
/// Deployment never fights it, nor Argo CD's ignoreDifferences).
pub fn declared_replicas(pano: &Panopticon, component: Component) -> Option<i32> {
    let spec = &pano.spec;
    match component {
        Component::Ingest if spec.ingest.autoscaling.mode != AutoscalingMode::None => None,
        Component::Ingest => Some(spec.ingest.replicas),
        Component::Rollup => Some(spec.rollup.replicas),
        Component::Query => Some(spec.query.replicas),
        Component::Alert => Some(spec.alert.replicas),
    }
}

/// The most replicas the component can run (for the PodDisruptionBudget decision).
pub fn max_replicas(pano: &Panopticon, component: Component) -> i32 {
    declared_replicas(pano, component).unwrap_or(pano.spec.ingest.autoscaling.max_replicas)
}

fn pod_overrides(pano: &Panopticon, component: Component) -> &PodSpecOverrides {
    let spec = &pano.spec;
    match component {
        Component::Ingest => &spec.ingest.pod,
        Component::Rollup => &spec.rollup.pod,
        Component::Query => &spec.query.pod,
        Component::Alert => &spec.alert.pod,
    }
}

pub fn deployment(
    pano: &Panopticon,
    component: Component,
    names: &Names,
    owner: &OwnerReference,
    rendered: &Rendered,
) -> Deployment {
    let overrides = pod_overrides(pano, component);
    let image = &pano.spec.image;
    let mut env: Vec<EnvVar> = ["POD_NAME", vars::POD_NAMESPACE.name]
        .into_iter()
        .zip(["metadata.name", "metadata.namespace"])
        .map(|(var, path)| EnvVar {
            name: var.to_owned(),
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: path.to_owned(),
                    ..ObjectFieldSelector::default()
                }),
                ..EnvVarSource::default()
            }),
            ..EnvVar::default()
        })
        .collect();
    env.extend(rendered.secret_env.iter().map(|s| EnvVar {
        name: s.var.to_owned(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: s.secret.name.clone(),
                key: s.secret.key.clone(),
                optional: Some(false),
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }));
    let mut volumes = vec![Volume {
        name: "tmp".to_owned(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Volume::default()
    }];
    let mut mounts = vec![VolumeMount {
        name: "tmp".to_owned(),
        mount_path: "/tmp".to_owned(),
        ..VolumeMount::default()
    }];
    for f in &rendered.secret_files {
        volumes.push(Volume {
            name: f.volume.to_owned(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(f.secret.name.clone()),
                items: Some(vec![KeyToPath {
                    key: f.secret.key.clone(),
                    path: f.secret.key.clone(),
                    ..KeyToPath::default()
                }]),
                default_mode: Some(0o440),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        });
        mounts.push(VolumeMount {
            name: f.volume.to_owned(),
            mount_path: f.dir.to_owned(),
            read_only: Some(true),
            ..VolumeMount::default()
        });
    }
    let mut ports = vec![ContainerPort {
        name: Some("admin".to_owned()),
        container_port: ADMIN_PORT,
        protocol: Some("TCP".to_owned()),
        ..ContainerPort::default()
    }];
    if let Some(port) = component.serving_port() {
        ports.push(ContainerPort {
            name: Some("http".to_owned()),
            container_port: port,
            protocol: Some("TCP".to_owned()),
            ..ContainerPort::default()
        });
    }
    let probe = |path: &str, period: i32, failures: i32| Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_owned()),
            port: IntOrString::String("admin".to_owned()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        timeout_seconds: Some(5),
        ..Probe::default()
    };
    let container = Container {
        name: component.as_str().to_owned(),
        image: Some(format!("{}:{}", image.repository, image.tag)),
        image_pull_policy: Some(image.pull_policy.as_str().to_owned()),
        args: Some(vec![component.as_str().to_owned()]),
        env_from: Some(vec![EnvFromSource {
            config_map_ref: Some(ConfigMapEnvSource {
                name: names.name.clone(),
                optional: Some(false),
            }),
            ..EnvFromSource::default()
        }]),
        env: Some(env),
        ports: Some(ports),
        liveness_probe: Some(probe("/health", 10, 3)),
        readiness_probe: Some(probe("/ready", 5, 2)),
        resources: overrides.resources.clone(),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_owned()]),
                ..Capabilities::default()
            }),
            seccomp_profile: Some(runtime_default()),
            ..SecurityContext::default()
        }),
        volume_mounts: Some(mounts),
        ..Container::default()
    };
    let pod_security = overrides
        .security_context
        .clone()
        .unwrap_or_else(|| PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(RUN_AS),
            run_as_group: Some(RUN_AS),
            fs_group: Some(RUN_AS),
            seccomp_profile: Some(runtime_default()),
            ..PodSecurityContext::default()
        });
    let pull_secrets = (!image.pull_secrets.is_empty()).then(|| {
        image
            .pull_secrets
            .iter()
            .map(|s| LocalObjectReference {
                name: s.name.clone(),
            })
            .collect()
    });
    let pod = PodSpec {
        service_account_name: Some(names.name.clone()),
        automount_service_account_token: Some(component == Component::Rollup),
        containers: vec![container],
        volumes: Some(volumes),
        security_context: Some(pod_security),
        image_pull_secrets: pull_secrets,
        node_selector: (!overrides.node_selector.is_empty())
            .then(|| overrides.node_selector.clone()),
        tolerations: (!overrides.tolerations.is_empty()).then(|| overrides.tolerations.clone()),
        affinity: overrides.affinity.clone(),
        topology_spread_constraints: (!overrides.topology_spread_constraints.is_empty())
            .then(|| overrides.topology_spread_constraints.clone()),
        priority_class_name: overrides.priority_class_name.clone(),
        // Ingest finishes its in-flight batches within INGEST_SHUTDOWN_TIMEOUT_MS (25 s).
        termination_grace_period_seconds: Some(35),
        ..PodSpec::default()
    };
    Deployment {
        metadata: names.meta(owner),
        spec: Some(DeploymentSpec {
            replicas: declared_replicas(pano, component),
            selector: LabelSelector {
                match_labels: Some(names.selector.clone()),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(names.labels.clone()),
                    annotations: Some(BTreeMap::from([(
                        CONFIG_HASH_ANNOTATION.to_owned(),
                        rendered.hash(),
                    )])),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod),
            },
            ..DeploymentSpec::default()
        }),
        status: None,
    }
}

fn runtime_default() -> SeccompProfile {
    SeccompProfile {
        type_: "RuntimeDefault".to_owned(),
        ..SeccompProfile::default()
    }
}

/// The Service of a component that serves clients (query, alert); also exposes the admin port
/// for scraping.
pub fn service(
    component: Component,
    spec: &CrServiceSpec,
    names: &Names,
    owner: &OwnerReference,
) -> Option<Service> {
    component.serving_port()?;
    Some(Service {
        metadata: names.meta(owner),
        spec: Some(ServiceSpec {
            type_: Some(spec.type_.as_str().to_owned()),
            selector: Some(names.selector.clone()),
            ports: Some(vec![
                ServicePort {
                    name: Some("http".to_owned()),
                    port: spec.port,
                    target_port: Some(IntOrString::String("http".to_owned())),
                    protocol: Some("TCP".to_owned()),
                    ..ServicePort::default()
                },
                ServicePort {
                    name: Some("admin".to_owned()),
                    port: ADMIN_PORT,
                    target_port: Some(IntOrString::String("admin".to_owned())),
                    protocol: Some("TCP".to_owned()),
                    ..ServicePort::default()
                },
            ]),
            ..ServiceSpec::default()
        }),
        status: None,
    })
}

/// At most one pod of the component down by voluntary disruption; only when it can run more
/// than one (a budget on a single replica would block node drains).
pub fn pod_disruption_budget(
    names: &Names,
    owner: &OwnerReference,
    max_replicas: i32,
) -> Option<PodDisruptionBudget> {
    (max_replicas > 1).then(|| PodDisruptionBudget {
        metadata: names.meta(owner),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(names.selector.clone()),
                ..LabelSelector::default()
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        status: None,
    })
}

/// Lets rollup's ServiceAccount hold its Lease (and only Leases, in its namespace).
pub fn rollup_lease_rbac(names: &Names, owner: &OwnerReference) -> (Role, RoleBinding) {
    let role = Role {
        metadata: names.meta(owner),
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec!["coordination.k8s.io".to_owned()]),
            resources: Some(vec!["leases".to_owned()]),
            verbs: ["get", "create", "update"].map(str::to_owned).to_vec(),
            ..PolicyRule::default()
        }]),
    };
    let binding = RoleBinding {
        metadata: names.meta(owner),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".to_owned(),
            kind: "Role".to_owned(),
            name: names.name.clone(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".to_owned(),
            name: names.name.clone(),
            namespace: Some(names.namespace.clone()),
            ..Subject::default()
        }]),
    };
    (role, binding)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::render;

    fn pano(spec: serde_json::Value) -> Panopticon {
        let mut spec = spec;
        spec["elasticsearch"] = serde_json::json!({"url": "http://es:9200"});
        spec["kafka"] = serde_json::json!({"bootstrapServers": "k:9092"});
        serde_json::from_value(serde_json::json!({
            "apiVersion": "panopticon.io/v1alpha1", "kind": "Panopticon",
            "metadata": {"name": "apm", "namespace": "obs", "uid": "u-1"},
            "spec": spec
        }))
        .unwrap()
    }

    fn build(p: &Panopticon, c: Component) -> Deployment {
        let names = Names::new(p, c);
        deployment(p, c, &names, &owner(p), &render(p, c).unwrap())
    }

    #[test]
    fn an_autoscaled_ingest_deployment_declares_no_replicas() {
        let fixed = pano(serde_json::json!({"ingest": {"replicas": 3}}));
        assert_eq!(
            build(&fixed, Component::Ingest).spec.unwrap().replicas,
            Some(3)
        );
        let scaled = pano(
            serde_json::json!({"ingest": {"autoscaling": {"mode": "builtin", "maxReplicas": 6}}}),
        );
        assert_eq!(
            build(&scaled, Component::Ingest).spec.unwrap().replicas,
            None
        );
        // Its budget follows the most it can run.
        assert_eq!(max_replicas(&scaled, Component::Ingest), 6);
    }

    #[test]
    fn pods_are_restricted_unless_overridden() {
        let p = pano(serde_json::json!({}));
        let pod = build(&p, Component::Query)
            .spec
            .unwrap()
            .template
            .spec
            .unwrap();
        let sc = pod.security_context.unwrap();
        assert_eq!(sc.run_as_non_root, Some(true));
        assert_eq!(sc.run_as_user, Some(RUN_AS));
        assert_eq!(pod.automount_service_account_token, Some(false));
        let rollup = build(&p, Component::Rollup)
            .spec
            .unwrap()
            .template
            .spec
            .unwrap();
        assert_eq!(
            rollup.automount_service_account_token,
            Some(true),
            "rollup holds a Lease"
        );
        let custom = pano(
            serde_json::json!({"query": {"securityContext": {"runAsUser": 1000}, "priorityClassName": "high"}}),
        );
        let pod = build(&custom, Component::Query)
            .spec
            .unwrap()
            .template
            .spec
            .unwrap();
        assert_eq!(pod.security_context.unwrap().run_as_user, Some(1000));
        assert_eq!(pod.priority_class_name.as_deref(), Some("high"));
    }

    #[test]
    fn owner_reference_is_the_controller_and_blocks_deletion() {
        let p = pano(serde_json::json!({}));
        let o = owner(&p);
        assert_eq!(
            (o.kind.as_str(), o.name.as_str(), o.uid.as_str()),
            ("Panopticon", "apm", "u-1")
        );
        assert_eq!(
            (o.controller, o.block_owner_deletion),
            (Some(true), Some(true))
        );
    }

    #[test]
    fn only_serving_components_get_a_service_and_only_scaled_ones_a_budget() {
        let p = pano(
            serde_json::json!({"query": {"replicas": 2, "service": {"type": "NodePort", "port": 80}}}),
        );
        let o = owner(&p);
        let q = Names::new(&p, Component::Query);
        let svc = service(Component::Query, &p.spec.query.service, &q, &o).unwrap();
        let spec = svc.spec.unwrap();
        assert_eq!(spec.type_.as_deref(), Some("NodePort"));
        assert_eq!(spec.ports.unwrap()[0].port, 80);
        let i = Names::new(&p, Component::Ingest);
        assert!(service(Component::Ingest, &p.spec.query.service, &i, &o).is_none());
        assert!(pod_disruption_budget(&q, &o, max_replicas(&p, Component::Query)).is_some());
        assert!(pod_disruption_budget(&i, &o, max_replicas(&p, Component::Ingest)).is_none());
    }

    #[test]
    fn a_config_change_changes_the_pod_template() {
        let a = pano(serde_json::json!({}));
        let b = pano(serde_json::json!({"rollup": {"latenessSeconds": 300}}));
        let hash = |d: Deployment| {
            d.spec
                .unwrap()
                .template
                .metadata
                .unwrap()
                .annotations
                .unwrap()[CONFIG_HASH_ANNOTATION]
                .clone()
        };
        assert_ne!(
            hash(build(&a, Component::Rollup)),
            hash(build(&b, Component::Rollup))
        );
        assert_eq!(
            hash(build(&a, Component::Alert)),
            hash(build(&b, Component::Alert))
        );
    }
}
