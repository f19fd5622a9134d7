//! The configuration reference (`docs/configuration.md`): every environment variable each
//! `panopticon` subcommand reads, its default, whether it is a secret, which `Panopticon` field
//! the operator sets it from, and what it means. Generated from the variables' declarations
//! (`panopticon_model::config::vars`) and the operator's own rendering ([`render::sources`]),
//! so it cannot say anything the code does not do; a test fails when the committed file drifts.

use panopticon_model::config::var::{Reads, Secrecy};
use panopticon_model::config::vars;

use crate::crd::Panopticon;
use crate::render::{self, Component};

/// The command that regenerates the committed file.
pub const REGENERATE: &str =
    "cargo run -p panopticon-operator -- config-reference > docs/configuration.md";

/// A resource that sets every optional field the operator renders into variables (TLS, SASL,
/// credentials, Redis, tokens, tuning), so that [`render::sources`] names them all.
pub fn every_option() -> Panopticon {
    let key = |name: &str| serde_json::json!({"name": name, "key": "k"});
    let topic = |name: &str, partitions: i32| serde_json::json!({"name": name, "partitions": partitions, "replicationFactor": 3, "retention": "1d"});
    let resource = serde_json::json!({
        "apiVersion": "panopticon.io/v1alpha1", "kind": "Panopticon",
        "metadata": {"name": "apm", "namespace": "obs"},
        "spec": {
            "elasticsearch": {
                "url": "https://es:9200",
                "replicas": 2,
                "credentials": {"basic": {"secretName": "es"}},
                "tls": {"caSecret": key("es-ca"), "verify": false}
            },
            "kafka": {
                "bootstrapServers": "k:9093",
                "tls": {"caSecret": key("kafka-ca")},
                "sasl": {"mechanism": "SCRAM-SHA-256", "secretName": "kafka"},
                "topics": {
                    "logs": topic("l", 12),
                    "spans": topic("s", 9),
                    "errors": topic("e", 2),
                    "deadLetter": topic("d", 1)
                }
            },
            "redis": {"url": "redis://cache:6379", "passwordSecret": key("redis")},
            "ingest": {"bulkBatchSize": 100, "bulkBatchMb": 2, "bulkFlushIntervalMs": 50,
                       "bulkMaxParallelFlushes": 2},
            "rollup": {"latenessSeconds": 30, "pollIntervalMs": 1000},
            "query": {"corsOrigins": ["https://ui"], "authTokenSecret": key("tokens"),
                      "metricsCacheTtlSeconds": 5, "queryCacheTtlSeconds": 6},
            "alert": {"corsOrigins": ["https://ui"], "authTokenSecret": key("tokens"),
                      "replaySize": 10, "clientQueue": 16}
        }
    });
    match serde_json::from_value(resource) {
        Ok(p) => p,
        Err(e) => panic!("the reference resource is not a valid Panopticon: {e}"),
    }
}

/// `docs/configuration.md`.
pub fn markdown() -> String {
    let mut out = format!(
        "# Configuration reference\n\n\
         Generated from the variables' declarations (`components/model/src/config/vars.rs`); \
         do not edit. Regenerate with\n`{REGENERATE}`.\n\n\
         Each `panopticon` subcommand reads environment variables; `panopticon <subcommand> \
         --help` lists the same. A blank value counts as unset. Secrets are read into \
         redacting types and never logged; the operator passes them (and the user names kept \
         next to them) as `secretKeyRef` variables, never through a ConfigMap. The operator \
         renders every other variable a component reads into the component's ConfigMap, \
         defaults included; the column *Operator* says which `Panopticon` field it takes a \
         value from (blank: the component's default).\n",
    );
    let pano = every_option();
    for reads in vars::ALL {
        let component = Component::ALL
            .into_iter()
            .find(|c| c.as_str() == reads.command);
        section(
            &mut out,
            reads,
            component.map(|c| render::sources(&pano, c)),
        );
    }
    retired_section(&mut out);
    out
}

/// The variables no longer read, which components warn about at start.
fn retired_section(out: &mut String) {
    out.push_str(
        "\n## Variables no longer read\n\n\
         Components log a WARN at start for each of these that is set.\n\n\
         | Variable | Instead |\n|---|---|\n",
    );
    for retired in panopticon_model::config::retired::RETIRED {
        out.push_str(&format!("| `{}` | {} |\n", retired.name, retired.instead));
    }
}

fn section(
    out: &mut String,
    reads: &Reads,
    sources: Option<std::collections::BTreeMap<&'static str, String>>,
) {
    out.push_str(&format!("\n## `panopticon {}`\n", reads.command));
    if sources.is_none() {
        out.push_str("\nNot run by the operator.\n");
    }
    for group in reads.groups {
        out.push_str(&format!(
            "\n### {}\n\n| Variable | Default | Secret | Operator | Meaning |\n|---|---|---|---|---|\n",
            group.title
        ));
        for var in group.vars {
            let secret = match var.secrecy {
                Secrecy::Secret => "yes",
                Secrecy::Credential => "kept in a Secret",
                Secrecy::Plain => "no",
            };
            let source = sources
                .as_ref()
                .and_then(|s| s.get(var.name).cloned())
                .unwrap_or_default();
            out.push_str(&format!(
                "| `{}` | {} | {secret} | {source} | {} |\n",
                var.name,
                default_cell(&var.default_phrase(), var.default_value().is_some()),
                var.meaning().replace('|', "\\|")
            ));
        }
    }
}

/// A value as code, a rule or `unset` as text.
fn default_cell(phrase: &str, is_value: bool) -> String {
    if is_value {
        format!("`{phrase}`")
    } else {
        phrase.replace('|', "\\|")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variable_of_every_subcommand_has_a_row() {
        let md = markdown();
        for reads in vars::ALL {
            for var in reads.vars() {
                assert!(md.contains(&format!("| `{}` |", var.name)), "{}", var.name);
            }
        }
        assert!(md.contains("| `KAFKA_APM_LOG_TOPIC_PARTITIONS` | `6` | no | `spec.kafka.topics.logs.partitions` |"), "{md}");
        assert!(md.contains(REGENERATE));
    }
}
