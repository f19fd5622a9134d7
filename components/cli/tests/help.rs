//! Every subcommand's `--help` lists every environment variable it reads, with its default and
//! meaning, as declared in `panopticon_model::config::vars`.

use std::process::Command;

fn help(subcommand: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_panopticon"))
        .args([subcommand, "--help"])
        .output()
        .expect("the binary runs");
    assert!(out.status.success(), "{subcommand} --help failed");
    String::from_utf8(out.stdout).expect("UTF-8 help")
}

#[test]
fn help_lists_every_variable_with_default_and_meaning() {
    for reads in panopticon_model::config::vars::ALL {
        let text = help(reads.command);
        let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
        for var in reads.vars() {
            let line = format!("{} [default: {}", var.name, var.default_phrase());
            assert!(
                text.contains(&line),
                "`panopticon {} --help` lacks {line:?}:\n{text}",
                reads.command
            );
            assert!(
                flat.contains(&var.meaning()),
                "`panopticon {} --help` lacks the meaning of {}",
                reads.command,
                var.name
            );
        }
    }
}

#[test]
fn ingest_help_lists_its_topic_partitions() {
    let text = help("ingest");
    for name in [
        "KAFKA_APM_LOG_TOPIC_PARTITIONS [default: 6]",
        "KAFKA_TOPIC_REPLICATION_FACTOR [default: the brokers' default.replication.factor]",
        "ELASTICSEARCH_INDEX_REPLICAS [default: 1]",
        "KAFKA_SASL_PASSWORD [default: unset, secret]",
    ] {
        assert!(text.contains(name), "{name}:\n{text}");
    }
}
