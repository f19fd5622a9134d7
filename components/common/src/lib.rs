//! Runtime pieces every Panopticon process shares: logging set-up ([`telemetry`]), the admin
//! HTTP server with `/health`, `/ready` and `/metrics` ([`admin`]), the shutdown signal
//! ([`shutdown`]) and jittered exponential backoff ([`backoff`]).

pub mod admin;
pub mod backoff;
pub mod shutdown;
pub mod telemetry;
