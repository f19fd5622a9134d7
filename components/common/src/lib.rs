//! Runtime pieces every Panopticon process shares. Today: logging set-up ([`telemetry`]). The
//! admin server (/health, /ready, /metrics), the shutdown signal, retry helpers and config
//! loading join with the first component that needs them (issue #3).

pub mod telemetry;
