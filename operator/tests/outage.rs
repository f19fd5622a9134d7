//! Kafka and OpenSearch go down under a Ready resource: the conditions say so, with the
//! cause, and the resource recovers by itself when they come back. This binary stops the
//! stack's servers, so it holds a single test (test binaries run one after another).

mod common;

use std::time::Duration;

use anyhow::Result;
use common::*;
use panopticon_e2e::process::stack;

const WITHIN: Duration = Duration::from_secs(120);

#[tokio::test]
async fn an_outage_degrades_the_resource_and_it_recovers_by_itself() -> Result<()> {
    let admin = admin_client().await?;
    install(&admin).await?;
    let ns = TestNamespace::create(&admin, "pano-outage").await?;
    let unique = Unique::new("outage");
    let operator = Operator::start(&ns.name).await?;
    apply_value(&admin, &resource("apm", &ns.name, &unique)).await?;
    wait_ready(&admin, &ns.name, "apm", WITHIN).await?;
    let api = panopticons(&admin, &ns.name);

    for (server, area, reason, cause) in [
        (
            "kafka",
            "KafkaReady",
            "KafkaUnreachable",
            "cannot reach Kafka at",
        ),
        (
            "opensearch",
            "ElasticsearchReady",
            "ElasticsearchUnreachable",
            "unreachable",
        ),
    ] {
        stack(&["down", server])?;
        let outcome = eventually(&format!("{area}=False"), WITHIN, || async {
            let p = api.get("apm").await?;
            Ok(condition(&p, area)
                .filter(|(s, _, _)| s == "False")
                .zip(condition(&p, "Degraded"))
                .zip(condition(&p, "Ready")))
        })
        .await;
        stack(&["up", server])?;
        let (((_, area_reason, message), degraded), ready) = outcome?;
        assert_eq!(area_reason, reason, "{message}");
        assert!(message.contains(cause), "{message}");
        assert_eq!((degraded.0.as_str(), degraded.1.as_str()), ("True", reason));
        assert_eq!(ready.0, "False");
        // Back up: nobody touches the resource, it becomes Ready again.
        wait_ready(&admin, &ns.name, "apm", Duration::from_secs(240)).await?;
        let p = api.get("apm").await?;
        assert!(condition(&p, "Degraded").is_some_and(|(s, _, _)| s == "False"));
    }
    operator.stop().await?;
    ns.delete().await?;
    Ok(())
}
