//! Realistic traffic: up to seven named services (more get generated names), traces of 3–10
//! spans (SERVER root, INTERNAL handler, CLIENT database calls), a chosen share of failed
//! traces (5 % by default), ~60 % spans and ~40 % logs, extra fields, labels with dotted
//! OpenTelemetry keys on CLIENT spans (`db.system`, `peer.service`), environments written
//! inconsistently. Deterministic for a seed. Pure: it produces event JSON, the caller decides
//! where it goes.
//!
//! Used by tests and benchmarks ([`generate`]) and by `panopticon sample` ([`Generator`], one
//! trace at a time, timestamps "now").

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

/// The most services a workload spreads over.
pub const MAX_SERVICES: usize = 10_000;

/// One event for a topic.
#[derive(Debug, Clone)]
pub struct Event {
    /// The Kafka record value: one JSON object.
    pub value: Vec<u8>,
    /// True for a log event (apm.logs), false for a span (apm.spans).
    pub is_log: bool,
    /// For logs: whether it is an ERROR log (forwarded to the error topic).
    pub is_error_log: bool,
    /// The trace the event belongs to (a good record key: a trace stays in one partition).
    pub trace_id: String,
}

/// The shape of the traffic.
#[derive(Debug, Clone, PartialEq)]
pub struct Shape {
    /// How many services the traces spread over (1..=[`MAX_SERVICES`]); the first seven have
    /// fixed names (`ecommerce-backend`, `user-service`, …), the others are `service-<n>`.
    pub services: usize,
    /// Share of traces that fail (0.0..=1.0): their root and last span are ERROR, their first
    /// log is an ERROR log, and they last 500–1000 ms instead of 100–200 ms.
    pub error_ratio: f64,
    /// Traces start up to this long before the given instant (zero: exactly at it).
    pub spread: TimeDelta,
}

impl Default for Shape {
    /// Seven services, 5 % failed traces, starts spread over the minute before the instant.
    fn default() -> Self {
        Self {
            services: SERVICES.len(),
            error_ratio: 0.05,
            spread: TimeDelta::seconds(60),
        }
    }
}

/// The name of service number `index` (0-based).
pub fn service_name(index: usize) -> String {
    SERVICES
        .get(index)
        .map_or_else(|| format!("service-{}", index + 1), |s| (*s).to_owned())
}

/// Generates traces one at a time; the same seed and shape give the same events (for the same
/// instants).
#[derive(Debug, Clone)]
pub struct Generator {
    rng: fastrand::Rng,
    seed: u64,
    trace_no: u64,
    shape: Shape,
    service_names: Vec<String>,
}

impl Generator {
    /// A generator for `shape`; `shape.services` is clamped to 1..=[`MAX_SERVICES`] and
    /// `shape.error_ratio` to 0.0..=1.0.
    pub fn new(seed: u64, mut shape: Shape) -> Self {
        shape.services = shape.services.clamp(1, MAX_SERVICES);
        shape.error_ratio = if shape.error_ratio.is_nan() {
            0.0
        } else {
            shape.error_ratio.clamp(0.0, 1.0)
        };
        let service_names = (0..shape.services).map(service_name).collect();
        Self {
            rng: fastrand::Rng::with_seed(seed),
            seed,
            trace_no: 0,
            shape,
            service_names,
        }
    }

    /// How many traces this generator has produced.
    pub fn traces(&self) -> u64 {
        self.trace_no
    }

    /// The next trace: its spans first (each parent before its children), then its logs.
    pub fn next_trace(&mut self, around: DateTime<Utc>) -> Vec<Event> {
        let rng = &mut self.rng;
        self.trace_no += 1;
        let trace_no = self.trace_no;
        let seed = self.seed;
        let service = self.service_names[rng.usize(..self.service_names.len())].as_str();
        let env = ENVIRONMENTS[rng.usize(..ENVIRONMENTS.len())];
        let path = PATHS[rng.usize(..PATHS.len())];
        let method = ["GET", "POST", "PUT", "DELETE"][rng.usize(..4)];
        let failed = rng.f64() < self.shape.error_ratio;
        let trace_id = format!("{seed:016x}{trace_no:016x}");
        let spread_ms = self.shape.spread.num_milliseconds();
        let start = around
            - TimeDelta::milliseconds(if spread_ms > 0 {
                rng.i64(0..spread_ms)
            } else {
                0
            });
        let root_ms = if failed {
            rng.f64() * 500.0 + 500.0
        } else {
            rng.f64() * 100.0 + 100.0
        };
        let spans = rng.usize(3..=10);
        let mut out = Vec::with_capacity(spans * 2);
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
            if kind == "CLIENT" {
                // Attributes named the OpenTelemetry way, as instrumented clients send them.
                span["labels"]["db.system"] = json!("mongodb");
                span["labels"]["db.name"] = json!("orders");
                span["labels"]["peer.service"] = json!("orders-db");
            }
            out.push(Event {
                value: span.to_string().into_bytes(),
                is_log: false,
                is_error_log: false,
                trace_id: trace_id.clone(),
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
                trace_id: trace_id.clone(),
            });
        }
        out
    }
}

/// Generates whole traces and their logs (default [`Shape`]) until at least `events` events
/// exist.
pub fn generate(events: usize, seed: u64, around: DateTime<Utc>) -> Vec<Event> {
    let mut generator = Generator::new(seed, Shape::default());
    let mut out = Vec::with_capacity(events + 16);
    while out.len() < events {
        out.extend(generator.next_trace(around));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DecodeContext, Limits, decode_log, decode_span};

    #[test]
    fn same_seed_same_events() {
        let now = Utc::now();
        let a = generate(500, 3, now);
        let b = generate(500, 3, now);
        assert_eq!(
            a.iter().map(|e| &e.value).collect::<Vec<_>>(),
            b.iter().map(|e| &e.value).collect::<Vec<_>>()
        );
    }

    #[test]
    fn every_event_decodes_and_chains_have_3_to_10_spans() {
        let now = Utc::now();
        let limits = Limits::default();
        let ctx = DecodeContext {
            limits: &limits,
            now,
        };
        let mut generator = Generator::new(9, Shape::default());
        for _ in 0..200 {
            let trace = generator.next_trace(now);
            let spans: Vec<_> = trace.iter().filter(|e| !e.is_log).collect();
            assert!((3..=10).contains(&spans.len()), "{}", spans.len());
            for e in &trace {
                let v = parse(e);
                if e.is_log {
                    decode_log(&v, &ctx).unwrap();
                } else {
                    decode_span(&v, &ctx).unwrap();
                }
            }
        }
    }

    #[test]
    fn shape_controls_services_errors_and_timestamps() {
        let now = Utc::now();
        let shape = Shape {
            services: 12,
            error_ratio: 1.0,
            spread: TimeDelta::zero(),
        };
        let mut generator = Generator::new(1, shape);
        let mut services = std::collections::BTreeSet::new();
        for _ in 0..300 {
            let trace = generator.next_trace(now);
            let root = parse(&trace[0]);
            assert_eq!(root["status"], "ERROR");
            assert_eq!(root["timestamp"], now.to_rfc3339());
            assert!(trace.iter().any(|e| e.is_error_log));
            services.insert(root["service_name"].as_str().unwrap().to_owned());
        }
        assert_eq!(services.len(), 12);
        assert!(services.contains("service-12"));

        let mut none = Generator::new(
            1,
            Shape {
                error_ratio: 0.0,
                ..Shape::default()
            },
        );
        for _ in 0..300 {
            assert!(!none.next_trace(now).iter().any(|e| e.is_error_log));
        }
    }
}
