//! Shared by the real-server tests of this crate.

use panopticon_es::{EsClient, EsSecrets};
use panopticon_model::config::{ElasticsearchConfig, EnvSource};

/// A plain client of the stack's OpenSearch.
pub fn client() -> EsClient {
    let node = panopticon_e2e::elasticsearch_url();
    let config =
        ElasticsearchConfig::from_env(&EnvSource::from_pairs(&[("ELASTICSEARCH_NODE", &node)]))
            .expect("the node URL is valid");
    EsClient::new(&config, &EsSecrets::default()).expect("a plain client builds")
}
