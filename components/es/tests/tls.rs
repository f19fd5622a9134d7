//! A CA given as PEM bytes in memory (as the operator passes it from a Secret) verifies a real
//! server: the TLS listener of the stack's Kafka broker, whose certificate (for 127.0.0.1) the
//! stack's own CA signed. Kafka does not speak HTTP, so every request fails; what matters is
//! whether it fails in the TLS handshake (certificate refused) or after it.

use panopticon_es::{EsClient, EsError, EsSecrets};
use panopticon_model::config::{ElasticsearchConfig, EnvSource};

/// A CA that signed nothing of the stack's (a throwaway self-signed certificate).
const UNRELATED_CA: &str = "-----BEGIN CERTIFICATE-----
MIIBljCCAT2gAwIBAgIULYeiKHDPCaGcGLnwNLLo6Y4826owCgYIKoZIzj0EAwIw
IDEeMBwGA1UEAwwVcGFub3B0aWNvbi1lcy10ZXN0LWNhMCAXDTI2MTEyNTA4MzQ1
NFoYDzIxMjYxMTAxMDgzNDU0WjAgMR4wHAYDVQQDDBVwYW5vcHRpY29uLWVzLXRl
c3QtY2EwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAARM1Byz2OKZ56r2JoxbV2gx
AIxzplFlrLXOejm59vCbPIk0KvnLRnlWbPkR4O7BGPW/bq0sagCKikkjEqhyV0H5
o1MwUTAdBgNVHQ4EFgQU/xPUJqEDW/VsjTiAsVki2OfB0fMwHwYDVR0jBBgwFoAU
/xPUJqEDW/VsjTiAsVki2OfB0fMwDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQD
AgNHADBEAiBbM0SmXUeQ8D/qs/Wcp1HHMwkSagRDJRHgwKRsLEQs6AIgIH0Qjnjn
0TyxntdGwBA9KOGGfjCtwqbFoYm4dRRMgd8=
-----END CERTIFICATE-----
";

async fn ping_tls_broker(ca_pem: Vec<u8>) -> EsError {
    let broker = panopticon_e2e::required_env("PANOPTICON_KAFKA_TLS_BROKERS");
    let node = format!("https://{broker}");
    let config = ElasticsearchConfig::from_env(&EnvSource::from_pairs(&[
        ("ELASTICSEARCH_NODE", &node),
        ("ELASTICSEARCH_REQUEST_TIMEOUT_MS", "5000"),
        // The file must lose against the bytes.
        ("ELASTICSEARCH_CA_FILE", "/nonexistent/ca.pem"),
    ]))
    .expect("the test configuration is valid");
    let secrets = EsSecrets {
        ca_pem: Some(ca_pem),
        ..EsSecrets::default()
    };
    let client = EsClient::new(&config, &secrets).expect("a PEM CA builds a client");
    client.ping().await.expect_err("Kafka does not answer HTTP")
}

#[tokio::test]
async fn a_ca_in_memory_verifies_the_server_and_an_unrelated_one_is_refused() {
    let stack_ca = std::fs::read(panopticon_e2e::required_env("PANOPTICON_KAFKA_TLS_CA")).unwrap();
    let trusted = ping_tls_broker(stack_ca).await;
    let refused = ping_tls_broker(UNRELATED_CA.as_bytes().to_vec()).await;
    // Past the handshake: the broker hangs up on the HTTP request.
    assert!(
        matches!(&trusted, EsError::Transport(m) if !m.contains("certificate")),
        "{trusted}"
    );
    // The cause is in the message, not only "error sending request".
    assert!(
        matches!(&refused, EsError::Transport(m) if m.contains("invalid peer certificate: UnknownIssuer")),
        "{refused}"
    );
}
