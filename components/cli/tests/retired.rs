//! A component started with variables that are no longer read warns about each, naming what
//! replaces it, before it reads its configuration.

use std::process::Command;

#[test]
fn retired_variables_are_named_in_a_warning_at_start() {
    // PORT is invalid, so query stops right after the warnings, without needing any server.
    let out = Command::new(env!("CARGO_BIN_EXE_panopticon"))
        .arg("query")
        .env("USE_ISM", "true")
        .env("ROLLUP_BUCKET_MINUTES", "1")
        .env("KAFKA_IN_DOCKER", " ")
        .env("PORT", "not-a-port")
        .output()
        .expect("the binary runs");
    assert!(!out.status.success(), "query started with PORT=not-a-port");
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("no longer read"))
        .collect();
    assert_eq!(
        warnings.len(),
        2,
        "one warning per set retired variable:\n{log}"
    );
    assert!(warnings.iter().any(|l| l.contains("USE_ISM")), "{log}");
    assert!(
        warnings
            .iter()
            .any(|l| l.contains("ROLLUP_BUCKET_MINUTES") && l.contains("ROLLUP_BUCKET_SECONDS")),
        "{log}"
    );
    assert!(
        log.contains("PORT"),
        "the configuration error names PORT:\n{log}"
    );
}
