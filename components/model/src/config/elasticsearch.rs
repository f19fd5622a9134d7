use serde::{Deserialize, Serialize};

use super::env::{ConfigError, EnvSource, ToEnv};
use super::var::Var;
use super::vars::*;

/// Where Elasticsearch/OpenSearch is and how to talk to it. Credentials are not here (see the
/// module docs): `OPENSEARCH_PASSWORD` / `ELASTICSEARCH_PASSWORD` and `ELASTICSEARCH_API_KEY`
/// are read by the client into redacting types.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ElasticsearchConfig {
    /// Base URL (`ELASTICSEARCH_NODE`).
    pub node: String,
    /// Basic-auth user (`OPENSEARCH_USERNAME` or `ELASTICSEARCH_USERNAME`); the password comes
    /// from `OPENSEARCH_PASSWORD` / `ELASTICSEARCH_PASSWORD`.
    pub username: Option<String>,
    /// PEM file of the CA that signed the server certificate (`ELASTICSEARCH_CA_FILE`).
    pub ca_file: Option<String>,
    /// Verify the server certificate (`OPENSEARCH_REJECT_UNAUTHORIZED`). Turning it off is
    /// logged as a warning at every start.
    pub verify_certificates: bool,
    /// Timeout of one request in milliseconds (`ELASTICSEARCH_REQUEST_TIMEOUT_MS`).
    pub request_timeout_ms: u64,
    /// Data stream names.
    pub streams: StreamNames,
    /// Whether the component creates its index templates and data streams at start
    /// (`ELASTICSEARCH_MANAGE_TEMPLATES`). The operator sets it to false when it
    /// provisions them itself (with lifecycle settings the components' own templates lack):
    /// then ingest waits until its data streams exist, and rollup leaves the templates alone.
    pub manage_templates: bool,
    /// `index.number_of_replicas` of the templates the component creates
    /// (`ELASTICSEARCH_INDEX_REPLICAS`); the operator's templates carry its own.
    pub index_replicas: u32,
}

/// The data streams and their index templates (`ELASTICSEARCH_APM_{LOG,SPAN,ROLLUP}_STREAM`
/// and `..._TEMPLATE`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamNames {
    pub logs: String,
    pub spans: String,
    pub metrics: String,
    pub logs_template: String,
    pub spans_template: String,
    pub metrics_template: String,
}

/// The stream and template variables, in the order of [`StreamNames::names`].
const STREAM_VARS: [&Var; 6] = [
    &ELASTICSEARCH_APM_LOG_STREAM,
    &ELASTICSEARCH_APM_SPAN_STREAM,
    &ELASTICSEARCH_APM_ROLLUP_STREAM,
    &ELASTICSEARCH_APM_LOG_TEMPLATE,
    &ELASTICSEARCH_APM_SPAN_TEMPLATE,
    &ELASTICSEARCH_APM_ROLLUP_TEMPLATE,
];

impl ElasticsearchConfig {
    pub fn from_env(env: &EnvSource<'_>) -> Result<Self, ConfigError> {
        let node = env.text(&ELASTICSEARCH_NODE);
        if !(node.starts_with("http://") || node.starts_with("https://")) {
            return Err(ConfigError::new(
                ELASTICSEARCH_NODE.name,
                format!("must be an http:// or https:// URL, got {node:?}"),
            ));
        }
        let logs = env.text(&ELASTICSEARCH_APM_LOG_STREAM);
        let spans = env.text(&ELASTICSEARCH_APM_SPAN_STREAM);
        let metrics = env.text(&ELASTICSEARCH_APM_ROLLUP_STREAM);
        let template = |var: &Var, stream: &str| {
            env.value(var)
                .unwrap_or_else(|| format!("{stream}-template"))
        };
        let streams = StreamNames {
            logs_template: template(&ELASTICSEARCH_APM_LOG_TEMPLATE, &logs),
            spans_template: template(&ELASTICSEARCH_APM_SPAN_TEMPLATE, &spans),
            metrics_template: template(&ELASTICSEARCH_APM_ROLLUP_TEMPLATE, &metrics),
            logs,
            spans,
            metrics,
        };
        for (var, name) in STREAM_VARS.iter().zip(streams.names()) {
            check_index_name(var, name)?;
        }
        Ok(Self {
            node,
            username: env
                .value(&OPENSEARCH_USERNAME)
                .or_else(|| env.value(&ELASTICSEARCH_USERNAME)),
            ca_file: env.value(&ELASTICSEARCH_CA_FILE),
            verify_certificates: env.bool(&OPENSEARCH_REJECT_UNAUTHORIZED)?,
            request_timeout_ms: env.at_least(&ELASTICSEARCH_REQUEST_TIMEOUT_MS, 100)?,
            streams,
            manage_templates: env.bool(&ELASTICSEARCH_MANAGE_TEMPLATES)?,
            index_replicas: env.parse(&ELASTICSEARCH_INDEX_REPLICAS)?,
        })
    }
}

impl StreamNames {
    fn names(&self) -> [&str; 6] {
        [
            &self.logs,
            &self.spans,
            &self.metrics,
            &self.logs_template,
            &self.spans_template,
            &self.metrics_template,
        ]
    }
}

/// Elasticsearch's index-name rules, checked at start-up rather than at the first write.
fn check_index_name(var: &Var, name: &str) -> Result<(), ConfigError> {
    let bad = name.is_empty()
        || name.len() > 255
        || name.starts_with(['-', '_', '+', '.'])
        || name.chars().any(|c| {
            c.is_ascii_uppercase()
                || matches!(
                    c,
                    '\\' | '/' | '*' | '?' | '"' | '<' | '>' | '|' | ' ' | ',' | '#' | ':'
                )
        });
    if bad {
        return Err(ConfigError::new(
            var.name,
            format!(
                "{name:?} is not a valid index name (lower case, no spaces or \\/*?\"<>|,#:, not starting with -_+.)"
            ),
        ));
    }
    Ok(())
}

impl ToEnv for ElasticsearchConfig {
    fn to_env(&self) -> Vec<(&'static str, String)> {
        let mut vars = vec![
            (ELASTICSEARCH_NODE.name, self.node.clone()),
            (
                OPENSEARCH_REJECT_UNAUTHORIZED.name,
                self.verify_certificates.to_string(),
            ),
            (
                ELASTICSEARCH_REQUEST_TIMEOUT_MS.name,
                self.request_timeout_ms.to_string(),
            ),
            (
                ELASTICSEARCH_MANAGE_TEMPLATES.name,
                self.manage_templates.to_string(),
            ),
            (
                ELASTICSEARCH_INDEX_REPLICAS.name,
                self.index_replicas.to_string(),
            ),
        ];
        if let Some(u) = &self.username {
            vars.push((OPENSEARCH_USERNAME.name, u.clone()));
        }
        if let Some(ca) = &self.ca_file {
            vars.push((ELASTICSEARCH_CA_FILE.name, ca.clone()));
        }
        vars.extend(
            STREAM_VARS
                .iter()
                .map(|v| v.name)
                .zip(self.streams.names().map(str::to_owned)),
        );
        vars
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_seed_names() {
        let c = ElasticsearchConfig::from_env(&EnvSource::from_pairs(&[])).unwrap();
        assert_eq!(c.node, "http://localhost:9200");
        assert_eq!(c.streams.logs, "logs-apm");
        assert_eq!(c.streams.spans_template, "traces-apm-template");
        assert!(c.verify_certificates);
        assert!(c.manage_templates);
    }

    #[test]
    fn operator_managed_templates_round_trip() {
        let pairs = [("ELASTICSEARCH_MANAGE_TEMPLATES", "false")];
        let c = ElasticsearchConfig::from_env(&EnvSource::from_pairs(&pairs)).unwrap();
        assert!(!c.manage_templates);
        let rendered = c.to_env();
        assert!(rendered.contains(&("ELASTICSEARCH_MANAGE_TEMPLATES", "false".to_owned())));
        let back = ElasticsearchConfig::from_env(&EnvSource::from_rendered(&rendered)).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn renders_what_it_reads() {
        let pairs = [
            ("ELASTICSEARCH_NODE", "https://es:9200"),
            ("OPENSEARCH_USERNAME", "ingest"),
            ("OPENSEARCH_REJECT_UNAUTHORIZED", "false"),
            ("ELASTICSEARCH_APM_LOG_STREAM", "logs-team"),
        ];
        let c = ElasticsearchConfig::from_env(&EnvSource::from_pairs(&pairs)).unwrap();
        assert_eq!(c.streams.logs_template, "logs-team-template");
        let rendered = c.to_env();
        let back = ElasticsearchConfig::from_env(&EnvSource::from_rendered(&rendered)).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (var, value) in [
            ("ELASTICSEARCH_NODE", "es:9200"),
            ("ELASTICSEARCH_APM_SPAN_STREAM", "Traces"),
            ("ELASTICSEARCH_APM_LOG_STREAM", "_logs"),
            ("OPENSEARCH_REJECT_UNAUTHORIZED", "nope"),
            ("ELASTICSEARCH_MANAGE_TEMPLATES", "maybe"),
            ("ELASTICSEARCH_REQUEST_TIMEOUT_MS", "5"),
        ] {
            let pairs = [(var, value)];
            let e = ElasticsearchConfig::from_env(&EnvSource::from_pairs(&pairs)).unwrap_err();
            assert_eq!(e.var, var, "{e}");
        }
    }
}
