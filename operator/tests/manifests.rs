//! The committed CRD, install manifests and samples agree with the code (no server needed).

use std::path::{Path, PathBuf};

use panopticon_operator::crd::Panopticon;
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .expect("the operator crate sits in the repository root")
}

fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).expect("a readable manifest");
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).expect("valid YAML"))
        .filter(|v: &Value| !v.is_null())
        .collect()
}

/// `crds/` is generated; regenerate with
/// `cargo run -p panopticon-operator -- crd > crds/panopticon.io_panopticons.yaml`.
#[test]
fn the_committed_crd_is_what_the_types_generate() {
    let committed =
        std::fs::read_to_string(root().join("crds/panopticon.io_panopticons.yaml")).unwrap();
    let generated = panopticon_operator::crd_yaml().unwrap();
    assert!(
        committed == generated,
        "crds/panopticon.io_panopticons.yaml drifted from the Rust types; regenerate it with \
         `cargo run -p panopticon-operator -- crd > crds/panopticon.io_panopticons.yaml`"
    );
}

/// Where the CRD and a component share a default, the committed CRD shows the default the
/// component's variable declares (`panopticon_model::config::vars`).
#[test]
fn the_crd_shows_the_components_declared_defaults() {
    use panopticon_model::config::vars;
    let crd = documents(&root().join("crds/panopticon.io_panopticons.yaml")).remove(0);
    let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"];
    let topics = &spec["kafka"]["properties"]["topics"]["default"];
    let streams = &spec["elasticsearch"]["properties"]["streams"]["default"];
    let checks = [
        (&topics["logs"]["name"], &vars::KAFKA_APM_LOG_TOPIC),
        (&topics["spans"]["name"], &vars::KAFKA_APM_SPAN_TOPIC),
        (&topics["errors"]["name"], &vars::KAFKA_APM_LOG_ERROR_TOPIC),
        (&topics["deadLetter"]["name"], &vars::KAFKA_APM_DLQ_TOPIC),
        (
            &topics["logs"]["partitions"],
            &vars::KAFKA_APM_LOG_TOPIC_PARTITIONS,
        ),
        (
            &topics["spans"]["partitions"],
            &vars::KAFKA_APM_SPAN_TOPIC_PARTITIONS,
        ),
        (
            &topics["errors"]["partitions"],
            &vars::KAFKA_APM_LOG_ERROR_TOPIC_PARTITIONS,
        ),
        (
            &topics["deadLetter"]["partitions"],
            &vars::KAFKA_APM_DLQ_TOPIC_PARTITIONS,
        ),
        (
            &streams["logs"]["name"],
            &vars::ELASTICSEARCH_APM_LOG_STREAM,
        ),
        (
            &streams["traces"]["name"],
            &vars::ELASTICSEARCH_APM_SPAN_STREAM,
        ),
        (
            &streams["metrics"]["name"],
            &vars::ELASTICSEARCH_APM_ROLLUP_STREAM,
        ),
        (
            &spec["elasticsearch"]["properties"]["replicas"]["default"],
            &vars::ELASTICSEARCH_INDEX_REPLICAS,
        ),
        (
            &spec["ingest"]["properties"]["consumerGroup"]["default"],
            &vars::KAFKA_CONSUMER_GROUP,
        ),
        (
            &spec["query"]["properties"]["service"]["default"]["port"],
            &vars::PORT,
        ),
        (
            &spec["alert"]["properties"]["service"]["default"]["port"],
            &vars::ERROR_STREAM_PORT,
        ),
    ];
    for (shown, var) in checks {
        let shown = match shown {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            other => panic!("{}: the CRD shows {other:?}", var.name),
        };
        assert_eq!(
            Some(shown.as_str()),
            var.default_value(),
            "the CRD's default for {} differs from the declaration",
            var.name
        );
    }
}

/// `docs/configuration.md` is generated from the variables' declarations.
#[test]
fn the_committed_configuration_reference_is_what_the_declarations_generate() {
    let committed = std::fs::read_to_string(root().join("docs/configuration.md")).unwrap();
    assert!(
        committed == panopticon_operator::reference::markdown(),
        "docs/configuration.md drifted from the variables' declarations; regenerate it with `{}`",
        panopticon_operator::reference::REGENERATE
    );
}

/// Client-side `kubectl apply` stores the object in a 256 KiB annotation.
#[test]
fn the_crd_fits_a_client_side_apply() {
    let crd = serde_json::to_string(&panopticon_operator::crd::definition()).unwrap();
    assert!(crd.len() < 200 * 1024, "{} bytes", crd.len());
}

#[test]
fn every_sample_is_a_valid_resource() {
    let dir = root().join("manifests/samples");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        for doc in documents(&path) {
            let p: Panopticon = serde_json::from_value(doc.clone())
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            // Every component renders: the samples are what the components accept.
            for c in panopticon_operator::render::Component::ALL {
                let mut p = p.clone();
                p.metadata.namespace = Some("default".to_owned());
                panopticon_operator::render::render(&p, c)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            }
            seen += 1;
        }
    }
    assert_eq!(seen, 3, "minimal, production, opensearch");
}

/// The operator's ClusterRole is least privilege: no wildcards, Secrets only by `get` (never
/// listed or watched), nothing deleted but PodDisruptionBudgets and KEDA objects. Sufficiency is proven by the
/// integration tests, which run the operator as this ServiceAccount.
#[test]
fn the_cluster_role_is_narrow() {
    let role = &documents(&root().join("manifests/install/cluster_role.yaml"))[0];
    for rule in role["rules"].as_array().unwrap() {
        let strings = |k: &str| -> Vec<String> {
            rule[k]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_owned())
                .collect()
        };
        let (resources, verbs) = (strings("resources"), strings("verbs"));
        assert!(!resources.contains(&"*".to_owned()) && !verbs.contains(&"*".to_owned()));
        if resources.contains(&"secrets".to_owned()) {
            assert_eq!(verbs, vec!["get"]);
        }
        if verbs.contains(&"delete".to_owned()) {
            assert!(
                resources == vec!["poddisruptionbudgets"]
                    || resources == vec!["scaledobjects", "triggerauthentications"],
                "{resources:?}"
            );
        }
        for verb in &verbs {
            assert!(
                [
                    "get", "list", "watch", "create", "patch", "update", "delete"
                ]
                .contains(&verb.as_str()),
                "{verb}"
            );
        }
    }
}

#[test]
fn the_kustomization_lists_existing_files() {
    let dir = root().join("manifests/install");
    let k = &documents(&dir.join("kustomization.yaml"))[0];
    for resource in k["resources"].as_array().unwrap() {
        let path = dir.join(resource.as_str().unwrap());
        assert!(path.exists(), "{}", path.display());
    }
}
