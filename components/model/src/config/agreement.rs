//! The declarations in [`super::vars`] and the components' `from_env`/`to_env` agree: what a
//! component renders is declared for it, a rendered default is the declared default, and a
//! declared default written out explicitly reads as the same configuration as leaving it unset.

use super::var::{Reads, Secrecy};
use super::vars;
use super::{AlertConfig, ConfigError, EnvSource, IngestConfig, QueryConfig, RollupConfig, ToEnv};

type Render = fn(&EnvSource<'_>) -> Result<Vec<(&'static str, String)>, ConfigError>;

fn components() -> [(&'static Reads, Render); 4] {
    [
        (&vars::INGEST, |env| {
            IngestConfig::from_env(env).map(|c| c.to_env())
        }),
        (&vars::ROLLUP, |env| {
            RollupConfig::from_env(env).map(|c| c.to_env())
        }),
        (&vars::QUERY, |env| {
            QueryConfig::from_env(env).map(|c| c.to_env())
        }),
        (&vars::ALERT, |env| {
            AlertConfig::from_env(env).map(|c| c.to_env())
        }),
    ]
}

#[test]
fn every_rendered_variable_is_declared_with_the_rendered_default() {
    for (reads, render) in components() {
        let rendered = render(&EnvSource::from_pairs(&[])).unwrap();
        for (name, value) in &rendered {
            let var = reads.find(name).unwrap_or_else(|| {
                panic!(
                    "{} renders {name}, which it does not declare",
                    reads.command
                )
            });
            assert_ne!(var.secrecy, Secrecy::Secret, "{name} is rendered");
            if let Some(default) = var.default_value() {
                assert_eq!(
                    value, default,
                    "{}: {name}'s rendered default",
                    reads.command
                );
            }
        }
    }
}

#[test]
fn a_declared_default_set_explicitly_reads_as_unset() {
    for (reads, render) in components() {
        let unset = render(&EnvSource::from_pairs(&[])).unwrap();
        for var in reads.vars() {
            let Some(default) = var.default_value() else {
                continue;
            };
            let pairs = [(var.name, default)];
            let explicit = render(&EnvSource::from_pairs(&pairs))
                .unwrap_or_else(|e| panic!("{}: default of {}: {e}", reads.command, var.name));
            assert_eq!(explicit, unset, "{}: {}", reads.command, var.name);
        }
    }
}
