//! A token variable that is set but holds no token stops query and alert at start, naming the
//! variable, instead of turning authentication off.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn query_and_alert_refuse_a_set_token_list_without_tokens() {
    for (subcommand, var, value) in [
        ("query", "QUERY_AUTH_TOKENS", ","),
        ("query", "QUERY_AUTH_TOKENS", " "),
        ("alert", "ERROR_STREAM_AUTH_TOKENS", ", ,"),
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_panopticon"))
            .args([subcommand, "--admin-addr", "127.0.0.1:0"])
            .env(var, value)
            // Unreachable servers: the refusal must come before any connection is needed.
            .env("ELASTICSEARCH_NODE", "http://127.0.0.1:9")
            .env("KAFKA_BROKERS", "127.0.0.1:9")
            .env("PORT", "0")
            .env("ERROR_STREAM_PORT", "0")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary runs");
        // A component that did not refuse keeps running: stop it and fail.
        let deadline = Instant::now() + Duration::from_secs(20);
        while child.try_wait().expect("waitable").is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let still_running = child.try_wait().expect("waitable").is_none();
        if still_running {
            child.kill().expect("killable");
        }
        let out = child.wait_with_output().expect("output");
        let log = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !still_running && !out.status.success(),
            "{subcommand} started with {var}={value:?}:\n{log}"
        );
        assert!(
            log.contains(&format!("{var} is set but holds no token")),
            "{subcommand} with {var}={value:?} did not name the variable:\n{log}"
        );
    }
}
