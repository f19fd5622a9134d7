//! Runtime pieces every Panopticon process shares: logging set-up ([`telemetry`]), the admin
//! HTTP server with `/health`, `/ready` and `/metrics` ([`admin`]), the shutdown signal
//! ([`shutdown`]), jittered exponential backoff ([`backoff`]) bearer tokens ([`auth`]), CORS
//! ([`cors`]), log throttling ([`throttle`]) and, with the `lease` feature, leader election on
//! a Kubernetes Lease ([`lease`]).

pub mod admin;
pub mod auth;
pub mod backoff;
pub mod cors;
#[cfg(feature = "lease")]
pub mod lease;
pub mod shutdown;
pub mod telemetry;
pub mod throttle;
