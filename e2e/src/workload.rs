//! Realistic traffic, shaped like the seed's load scripts (spec/seed-behaviour.md §7.3): seven
//! services, traces of 3–10 spans (SERVER root, INTERNAL handler, CLIENT database calls),
//! 2–10 % errors, ~60 % spans and ~40 % logs, extra fields, environments written
//! inconsistently. Deterministic for a seed.

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Value, json};

const SERVICES: [&str; 7] = [
    "ecommerce-backend",
    "week14-board-backend",
    "user-service",
    "payment-service",
    "notification-service",
    "order-service",
    "inventory-service",
];
const ENVIRONMENTS: [&str; 4] = ["production", "prod", "Develop", "staging"];
const PATHS: [&str; 8] = [
    "/orders",
    "/orders/{id}",
    "/payments",
    "/refunds",
    "/users/{id}",
    "/cart",
    "/search",
    "/checkout",
];

/// One event for a topic.
#[derive(Debug, Clone)]
pub struct Event {
    pub value: Vec<u8>,
    /// True for a log event (apm.logs), false for a span (apm.spans).
    pub is_log: bool,
    /// For logs: whether it is an ERROR log (forwarded to the error topic).
    pub is_error_log: bool,
}

/// Generates traces and their logs until at least `events` events exist.
pub fn generate(events: usize, seed: u64, around: DateTime<Utc>) -> Vec<Event> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut out = Vec::with_capacity(events + 16);
    let mut trace_no = 0u64;
    while out.len() < events {
        trace_no += 1;
        let service = SERVICES[rng.usize(..SERVICES.len())];
        let env = ENVIRONMENTS[rng.usize(..ENVIRONMENTS.len())];
        let path = PATHS[rng.usize(..PATHS.len())];
        let method = ["GET", "POST", "PUT", "DELETE"][rng.usize(..4)];
        let failed = rng.f64() < 0.05;
        let trace_id = format!("{seed:016x}{trace_no:016x}");
        let start = around - TimeDelta::milliseconds(rng.i64(0..60_000));
        let root_ms = if failed {
            rng.f64() * 500.0 + 500.0
        } else {
            rng.f64() * 100.0 + 100.0
        };
        let spans = rng.usize(3..=10);
        let mut parent: Option<String> = None;
        for i in 0..spans {
            let span_id = format!("{:08x}{:08x}", trace_no as u32, i as u32);
            let (kind, name) = match i {
                0 => ("SERVER", format!("{method} {path}")),
                1 => ("INTERNAL", format!("request handler - {path}")),
                _ => (
                    "CLIENT",
                    format!(
                        "mongodb.{}",
                        ["find", "insert", "update", "aggregate"][rng.usize(..4)]
                    ),
                ),
            };
            let duration = root_ms / (i as f64 + 1.0);
            let status = if failed && (i == 0 || i == spans - 1) {
                "ERROR"
            } else {
                "OK"
            };
            let mut span = json!({
                "type": "span", "timestamp": (start + TimeDelta::milliseconds(i as i64)).to_rfc3339(),
                "service_name": service, "environment": env, "trace_id": trace_id, "span_id": span_id,
                "parent_span_id": parent, "name": name, "kind": kind, "duration_ms": duration,
                "status": status,
            });
            if i == 0 {
                span["http_method"] = json!(method);
                span["http_path"] = json!(path);
                span["http_status_code"] = json!(if failed { 500 } else { 200 });
            }
            if kind == "CLIENT" {
                span["db_system"] = json!("mongodb");
                span["db_statement"] = json!(format!("db.orders.find({{_id: {}}})", rng.u32(..)));
            }
            span["labels"] =
                json!({"host": format!("pod-{}", rng.u8(..8)), "region": "ap-northeast-2"});
            out.push(Event {
                value: span.to_string().into_bytes(),
                is_log: false,
                is_error_log: false,
            });
            parent = Some(span_id);
        }
        // About 40 % logs: 2 per 3-span trace on average.
        let logs = spans * 2 / 3;
        for j in 0..logs {
            let level = if failed && j == 0 {
                "ERROR"
            } else {
                ["INFO", "INFO", "INFO", "WARN", "DEBUG"][rng.usize(..5)]
            };
            let log = json!({
                "type": "log", "timestamp": (start + TimeDelta::milliseconds(j as i64 * 3)).to_rfc3339(),
                "service_name": service, "environment": env, "level": level,
                "message": if level == "ERROR" { format!("{method} {path} failed: DatabaseConnectionError") }
                           else { format!("{method} {path} handled in {root_ms:.1} ms") },
                "trace_id": trace_id, "span_id": format!("{:08x}{:08x}", trace_no as u32, 0),
                "http_method": method, "http_path": path,
                "http_status_code": if failed { 500 } else { 200 },
                "duration_ms": root_ms, "client_ip": format!("10.0.{}.{}", rng.u8(..), rng.u8(..)),
            });
            out.push(Event {
                value: log.to_string().into_bytes(),
                is_log: true,
                is_error_log: level == "ERROR",
            });
        }
    }
    out
}

/// The JSON of an event (tests).
pub fn parse(event: &Event) -> Value {
    serde_json::from_slice(&event.value).unwrap_or(Value::Null)
}

/// The record values of `events`, logs first, spans second.
pub fn split(events: &[Event]) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let logs = events
        .iter()
        .filter(|e| e.is_log)
        .map(|e| e.value.clone())
        .collect();
    let spans = events
        .iter()
        .filter(|e| !e.is_log)
        .map(|e| e.value.clone())
        .collect();
    (logs, spans)
}
