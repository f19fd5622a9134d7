//! `bulk::send_all_stored` and `EsClient::refresh` against the real OpenSearch of `e2e/stack`:
//! stored documents (and a replayed duplicate) pass; a document the engine refuses is an error
//! with its status and reason.

mod common;

use common::client;
use panopticon_es::EsError;
use panopticon_es::bulk::{BulkBody, send_all_stored};

#[tokio::test]
async fn every_document_stored_or_the_first_refusal_named() {
    let es = client();
    let index = panopticon_e2e::unique_name("bulk");
    let mut body = BulkBody::default();
    body.push_create(&index, "1", br#"{"n": 1}"#);
    body.push_create(&index, "2", br#"{"n": 2}"#);
    send_all_stored(&es, body.clone(), "test bulk")
        .await
        .unwrap();
    // A replay of the same ids is absorbed (409 → duplicate), not an error.
    send_all_stored(&es, body, "test bulk").await.unwrap();
    es.refresh(&index).await.unwrap();
    let count = es
        .request_ok(
            elasticsearch::http::Method::Get,
            &format!("/{index}/_count"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(count["count"], 2);

    // `n` is a long now: a string that is not a number is refused for good.
    let mut bad = BulkBody::default();
    bad.push_create(&index, "3", br#"{"n": 3}"#);
    bad.push_create(&index, "4", br#"{"n": "four"}"#);
    match send_all_stored(&es, bad, "test bulk").await {
        Err(EsError::Status { what, status, body }) => {
            assert_eq!(status, 400);
            assert_eq!(what, "a document of test bulk");
            assert!(body.contains("mapper_parsing_exception"), "{body}");
        }
        other => panic!("expected the refused document, got {other:?}"),
    }
    // A missing target is not an error for refresh.
    es.refresh("no-such-index-anywhere").await.unwrap();
    es.request_ok(
        elasticsearch::http::Method::Delete,
        &format!("/{index}"),
        None,
    )
    .await
    .unwrap();
}
