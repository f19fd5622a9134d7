//! `autoscaling.mode: keda`: the ScaledObject (and TriggerAuthentication) that hand ingest's
//! replicas to KEDA's Kafka scaler (pure builders).
//!
//! One `kafka` trigger per input topic (logs, spans), each with the resource's consumer
//! group, `lagThreshold` and `activationLagThreshold`. The HPA that KEDA creates takes the
//! largest of the triggers' recommendations, which is what the built-in mode computes too
//! (see [`super::policy`]). The scale-down stabilization window goes to the HPA's behaviour.
//! Credentials stay in their Secrets: the TriggerAuthentication points at them.

use serde_json::{Value, json};

use crate::crd::{Panopticon, SaslMechanismSpec};
use crate::resources::Names;

pub const GROUP: &str = "keda.sh";
pub const VERSION: &str = "v1alpha1";

/// The ScaledObject for a resource's ingest Deployment.
pub fn scaled_object(pano: &Panopticon, names: &Names, owner: &Value) -> Value {
    let spec = &pano.spec;
    let a = &spec.ingest.autoscaling;
    let kafka = &spec.kafka;
    let mut base = json!({
        "bootstrapServers": kafka.bootstrap_servers,
        "consumerGroup": spec.ingest.consumer_group,
        "lagThreshold": a.lag_threshold.to_string(),
        "activationLagThreshold": a.activation_lag_threshold.to_string(),
        // Ingest starts a new group at the beginning of each partition.
        "offsetResetPolicy": "earliest",
    });
    if let Some(sasl) = &kafka.sasl {
        base["sasl"] = json!(match sasl.mechanism {
            SaslMechanismSpec::Plain => "plaintext",
            SaslMechanismSpec::ScramSha256 => "scram_sha256",
            SaslMechanismSpec::ScramSha512 => "scram_sha512",
        });
    }
    if kafka.tls.is_some() {
        base["tls"] = json!("enable");
        if kafka.tls.as_ref().is_some_and(|t| !t.verify) {
            base["unsafeSsl"] = json!("true");
        }
    }
    let needs_auth = trigger_authentication(pano, names, owner).is_some();
    let triggers: Vec<Value> = [&kafka.topics.logs.name, &kafka.topics.spans.name]
        .into_iter()
        .map(|topic| {
            let mut metadata = base.clone();
            metadata["topic"] = json!(topic);
            let mut trigger = json!({"type": "kafka", "metadata": metadata});
            if needs_auth {
                trigger["authenticationRef"] = json!({"name": names.name});
            }
            trigger
        })
        .collect();
    json!({
        "apiVersion": format!("{GROUP}/{VERSION}"),
        "kind": "ScaledObject",
        "metadata": {
            "name": names.name,
            "namespace": names.namespace,
            "labels": names.labels,
            "ownerReferences": [owner],
        },
        "spec": {
            "scaleTargetRef": {"name": names.name},
            "pollingInterval": a.poll_interval_seconds,
            "minReplicaCount": a.min_replicas,
            "maxReplicaCount": a.max_replicas,
            "advanced": {"horizontalPodAutoscalerConfig": {"behavior": {
                "scaleDown": {"stabilizationWindowSeconds": a.scale_down_stabilization_seconds}
            }}},
            "triggers": triggers,
        }
    })
}

/// The TriggerAuthentication, when Kafka needs credentials or a CA.
pub fn trigger_authentication(pano: &Panopticon, names: &Names, owner: &Value) -> Option<Value> {
    let kafka = &pano.spec.kafka;
    let mut refs = Vec::new();
    if let Some(sasl) = &kafka.sasl {
        refs.push(
            json!({"parameter": "username", "name": sasl.secret_name, "key": sasl.username_key}),
        );
        refs.push(
            json!({"parameter": "password", "name": sasl.secret_name, "key": sasl.password_key}),
        );
    }
    if let Some(ca) = kafka.tls.as_ref().and_then(|t| t.ca_secret.as_ref()) {
        refs.push(json!({"parameter": "ca", "name": ca.name, "key": ca.key}));
    }
    (!refs.is_empty()).then(|| {
        json!({
            "apiVersion": format!("{GROUP}/{VERSION}"),
            "kind": "TriggerAuthentication",
            "metadata": {
                "name": names.name,
                "namespace": names.namespace,
                "labels": names.labels,
                "ownerReferences": [owner],
            },
            "spec": {"secretTargetRef": refs}
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::Component;

    fn pano(extra: Value) -> Panopticon {
        let mut spec = json!({
            "elasticsearch": {"url": "http://es:9200"},
            "kafka": {"bootstrapServers": "k:9092"},
            "ingest": {"autoscaling": {"mode": "keda", "minReplicas": 2, "maxReplicas": 12,
                "lagThreshold": 5000, "activationLagThreshold": 10, "pollIntervalSeconds": 15,
                "scaleDownStabilizationSeconds": 120}}
        });
        if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                if k == "kafka" {
                    s["kafka"]
                        .as_object_mut()
                        .unwrap()
                        .extend(v.as_object().unwrap().clone());
                } else {
                    s.insert(k.clone(), v.clone());
                }
            }
        }
        serde_json::from_value(json!({
            "apiVersion": "panopticon.io/v1alpha1", "kind": "Panopticon",
            "metadata": {"name": "apm", "namespace": "obs", "uid": "u"}, "spec": spec
        }))
        .unwrap()
    }

    #[test]
    fn a_scaled_object_per_resource_with_a_trigger_per_topic() {
        let p = pano(json!({}));
        let names = Names::new(&p, Component::Ingest);
        let so = scaled_object(&p, &names, &json!({"kind": "Panopticon"}));
        let spec = &so["spec"];
        assert_eq!(spec["scaleTargetRef"]["name"], "apm-ingest");
        assert_eq!(
            (
                spec["minReplicaCount"].clone(),
                spec["maxReplicaCount"].clone()
            ),
            (json!(2), json!(12))
        );
        assert_eq!(spec["pollingInterval"], 15);
        assert_eq!(
            spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"],
            120
        );
        let triggers = spec["triggers"].as_array().unwrap();
        let topics: Vec<&str> = triggers
            .iter()
            .map(|t| t["metadata"]["topic"].as_str().unwrap())
            .collect();
        assert_eq!(topics, ["apm.logs", "apm.spans"]);
        let m = &triggers[0]["metadata"];
        assert_eq!(m["consumerGroup"], "panopticon-ingest");
        assert_eq!(m["lagThreshold"], "5000");
        assert_eq!(m["activationLagThreshold"], "10");
        assert!(triggers[0].get("authenticationRef").is_none());
        assert!(trigger_authentication(&p, &names, &json!({})).is_none());
    }

    #[test]
    fn credentials_go_through_a_trigger_authentication() {
        let p = pano(json!({"kafka": {
            "sasl": {"mechanism": "SCRAM-SHA-512", "secretName": "kafka-user"},
            "tls": {"caSecret": {"name": "kafka-ca", "key": "ca.crt"}}
        }}));
        let names = Names::new(&p, Component::Ingest);
        let so = scaled_object(&p, &names, &json!({}));
        let t = &so["spec"]["triggers"][1];
        assert_eq!(t["metadata"]["sasl"], "scram_sha512");
        assert_eq!(t["metadata"]["tls"], "enable");
        assert_eq!(t["authenticationRef"]["name"], "apm-ingest");
        let auth = trigger_authentication(&p, &names, &json!({})).unwrap();
        let refs = auth["spec"]["secretTargetRef"].as_array().unwrap();
        let params: Vec<&str> = refs
            .iter()
            .map(|r| r["parameter"].as_str().unwrap())
            .collect();
        assert_eq!(params, ["username", "password", "ca"]);
        assert!(
            !auth.to_string().contains("password\":\"s"),
            "names only, never values"
        );
    }
}
