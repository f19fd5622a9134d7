//! The aggregation of one window, as pure functions: the search bodies, and the reading of
//! their answers into series. [`crate::window`] runs them against the engine.
//!
//! # How a window is aggregated without reading raw spans
//! Ingest stores `duration_bucket`, the DDSketch bucket of each span's duration. A `terms`
//! aggregation on it gives the sketch counts of a group of spans; a `stats` aggregation gives the
//! exact count, min, max and sum; a `filter` on `status: ERROR` the error count. One window is
//! aggregated in three steps:
//!
//! 1. **Keys** ([`keys_query`]): the top services by span count (cap `max_services`) and, under
//!    each, the top environments (cap `max_environments`), with estimates of how many endpoints
//!    and duration buckets each (service, environment) pair holds. Whatever the caps leave out
//!    becomes an [`OverflowScope`].
//! 2. **Stats** ([`stats_query`]): for groups of kept pairs ([`plan_scopes`]), service →
//!    environment → endpoint (cap `max_endpoints`) → the sketch aggregations. Groups are sized
//!    so a response stays well under the engine's `search.max_buckets` (65 535 by default);
//!    [`crate::window`] splits a group further if the engine refuses it anyway. Endpoints beyond
//!    the cap become an [`OverflowScope`] too.
//! 3. **Overflow** ([`overflow_query`]): one `filters` bucket per overflow scope, with the same
//!    sketch aggregations, folded into series whose left-out keys are [`OVERFLOW_KEY`].
//!
//! The filters of step 2 and 3 partition the window's SERVER spans: each span is counted in
//! exactly one endpoint series. Service series are the merge of their endpoint series.

use std::collections::BTreeMap;

use panopticon_model::rollup::{OVERFLOW_KEY, SeriesStats, Window};
use panopticon_model::sketch::Sketch;
use serde_json::{Map, Value, json};

/// Largest response a stats or overflow query is planned for, in buckets (a quarter of the
/// engine's default `search.max_buckets`, as estimates are estimates).
pub const BUCKET_BUDGET: u64 = 16_000;

/// More distinct duration buckets than durations from 1 ns to 11 days occupy (1 726).
const MAX_DURATION_BUCKETS: u64 = 2_000;

/// Span fields of the three key levels.
const SERVICE: &str = "service_name";
const ENVIRONMENT: &str = "environment";
const ENDPOINT: &str = "name";

/// Cardinality caps per window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    pub services: usize,
    pub environments: usize,
    pub endpoints: usize,
}

/// An answer that does not have the shape we asked for.
#[derive(Debug, thiserror::Error)]
#[error("unexpected aggregation response: {0}")]
pub struct ShapeError(pub String);

fn shape(what: impl Into<String>) -> ShapeError {
    ShapeError(what.into())
}

/// The key of an endpoint series: service, environment, endpoint, and whether it folds values
/// beyond the caps. The service series of an endpoint series is `(service, environment)` with
/// the same flag, except for folded endpoints, whose service series is the kept pair's.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SeriesKey {
    pub service: String,
    pub environment: String,
    pub endpoint: String,
    pub overflow: Overflow,
}

/// Which level of an overflow series was folded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Overflow {
    None,
    Endpoint,
    Environment,
    Service,
}

impl Overflow {
    pub fn label(self) -> &'static str {
        match self {
            Overflow::None => "none",
            Overflow::Endpoint => "endpoint",
            Overflow::Environment => "environment",
            Overflow::Service => "service",
        }
    }
}

/// Spans left out by a cap: the kept keys of one level under a fixed parent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OverflowScope {
    Services {
        kept: Vec<String>,
    },
    Environments {
        service: String,
        kept: Vec<String>,
    },
    Endpoints {
        service: String,
        environment: String,
        kept: Vec<String>,
    },
}

impl OverflowScope {
    /// The query clause matching exactly the left-out spans.
    fn filter(&self) -> Value {
        let (must, field, kept): (Vec<Value>, &str, &Vec<String>) = match self {
            OverflowScope::Services { kept } => (vec![], SERVICE, kept),
            OverflowScope::Environments { service, kept } => {
                (vec![term(SERVICE, service)], ENVIRONMENT, kept)
            }
            OverflowScope::Endpoints {
                service,
                environment,
                kept,
            } => (
                vec![term(SERVICE, service), term(ENVIRONMENT, environment)],
                ENDPOINT,
                kept,
            ),
        };
        json!({"bool": {"filter": must, "must_not": [{"terms": {field: kept}}]}})
    }

    /// The series the left-out spans are folded into.
    pub fn key(&self) -> SeriesKey {
        let other = OVERFLOW_KEY.to_owned();
        match self {
            OverflowScope::Services { .. } => SeriesKey {
                service: other.clone(),
                environment: other.clone(),
                endpoint: other,
                overflow: Overflow::Service,
            },
            OverflowScope::Environments { service, .. } => SeriesKey {
                service: service.clone(),
                environment: other.clone(),
                endpoint: other,
                overflow: Overflow::Environment,
            },
            OverflowScope::Endpoints {
                service,
                environment,
                ..
            } => SeriesKey {
                service: service.clone(),
                environment: environment.clone(),
                endpoint: other,
                overflow: Overflow::Endpoint,
            },
        }
    }
}

/// A kept (service, environment) pair and what the keys query estimated about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Pair {
    pub service: String,
    pub environment: String,
    pub spans: u64,
    /// Distinct endpoints (an estimate).
    pub endpoints: u64,
    /// Distinct duration buckets (an estimate).
    pub durations: u64,
}

/// What the keys query found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Keys {
    /// SERVER spans in the window.
    pub total: u64,
    pub pairs: Vec<Pair>,
    pub overflow: Vec<OverflowScope>,
}

/// A group of kept pairs aggregated by one stats query, optionally restricted to a list of
/// endpoints (only for a single pair too large for one response).
#[derive(Debug, Clone, PartialEq)]
pub struct Scope {
    pub pairs: Vec<Pair>,
    pub endpoints: Option<Vec<String>>,
}

impl Scope {
    /// Buckets the stats query of this scope may return.
    pub fn estimate(&self, caps: &Caps) -> u64 {
        match &self.endpoints {
            Some(list) => {
                let durations = self.pairs.first().map_or(1, |p| p.durations);
                list.len() as u64 * (durations.min(MAX_DURATION_BUCKETS) + 1) + 2
            }
            None => self.pairs.iter().map(|p| pair_estimate(p, caps)).sum(),
        }
    }
}

fn pair_estimate(p: &Pair, caps: &Caps) -> u64 {
    let endpoints = p.endpoints.clamp(1, caps.endpoints as u64);
    // HyperLogLog estimates can be a little low: 10 % margin.
    let durations = (p.durations + p.durations / 10 + 1).min(MAX_DURATION_BUCKETS);
    endpoints * (durations + 1) + 2
}

/// Groups kept pairs into scopes of at most [`BUCKET_BUDGET`] estimated buckets (a pair larger
/// than that gets a scope of its own, split later).
pub fn plan_scopes(pairs: &[Pair], caps: &Caps) -> Vec<Scope> {
    let mut scopes = Vec::new();
    let mut current: Vec<Pair> = Vec::new();
    let mut current_estimate = 0;
    for pair in pairs {
        let estimate = pair_estimate(pair, caps);
        if !current.is_empty() && current_estimate + estimate > BUCKET_BUDGET {
            scopes.push(Scope {
                pairs: std::mem::take(&mut current),
                endpoints: None,
            });
            current_estimate = 0;
        }
        current.push(pair.clone());
        current_estimate += estimate;
    }
    if !current.is_empty() {
        scopes.push(Scope {
            pairs: current,
            endpoints: None,
        });
    }
    scopes
}

/// How to make a scope smaller.
#[derive(Debug, Clone, PartialEq)]
pub enum Split {
    /// Two scopes with half the pairs or half the endpoints each.
    Halves(Scope, Scope),
    /// A single pair without an endpoint list: its endpoints must be listed first
    /// ([`endpoint_keys_query`]), then [`chunk_endpoints`].
    ListEndpoints(Pair),
    /// One endpoint of one pair: cannot be split.
    Atomic,
}

pub fn split(scope: &Scope) -> Split {
    match (&scope.endpoints, scope.pairs.as_slice()) {
        (None, [pair]) => Split::ListEndpoints(pair.clone()),
        (None, pairs) => {
            let (a, b) = pairs.split_at(pairs.len() / 2);
            Split::Halves(
                Scope {
                    pairs: a.to_vec(),
                    endpoints: None,
                },
                Scope {
                    pairs: b.to_vec(),
                    endpoints: None,
                },
            )
        }
        (Some(list), _) if list.len() > 1 => {
            let (a, b) = list.split_at(list.len() / 2);
            Split::Halves(
                Scope {
                    pairs: scope.pairs.clone(),
                    endpoints: Some(a.to_vec()),
                },
                Scope {
                    pairs: scope.pairs.clone(),
                    endpoints: Some(b.to_vec()),
                },
            )
        }
        (Some(_), _) => Split::Atomic,
    }
}

/// Scopes of one pair, each with a slice of its endpoints sized to the budget.
pub fn chunk_endpoints(pair: &Pair, endpoints: Vec<String>) -> Vec<Scope> {
    let per_endpoint = pair.durations.min(MAX_DURATION_BUCKETS) + 1;
    let chunk = (BUCKET_BUDGET / per_endpoint).max(1) as usize;
    endpoints
        .chunks(chunk)
        .map(|list| Scope {
            pairs: vec![pair.clone()],
            endpoints: Some(list.to_vec()),
        })
        .collect()
}

fn term(field: &str, value: &str) -> Value {
    json!({"term": {field: value}})
}

/// SERVER spans of the window.
fn window_filter(window: &Window) -> Vec<Value> {
    vec![
        json!({"range": {"@timestamp": {
            "gte": window.start_ms, "lt": window.end_ms(), "format": "epoch_millis"
        }}}),
        term("kind", "SERVER"),
    ]
}

fn search(filter: Vec<Value>, aggs: Value) -> Value {
    json!({
        "size": 0,
        "track_total_hits": true,
        "query": {"bool": {"filter": filter}},
        "aggs": aggs
    })
}

/// The sketch aggregations of a group of spans.
fn sketch_aggs() -> Value {
    json!({
        "errors": {"filter": term("status", "ERROR")},
        "duration": {"stats": {"field": "duration_ms"}},
        "buckets": {"terms": {"field": "duration_bucket", "size": MAX_DURATION_BUCKETS}}
    })
}

/// Step 1: the kept services and environments, with estimates for planning.
pub fn keys_query(window: &Window, caps: &Caps) -> Value {
    search(
        window_filter(window),
        json!({"s": {
            "terms": {"field": SERVICE, "size": caps.services},
            "aggs": {"e": {
                "terms": {"field": ENVIRONMENT, "size": caps.environments},
                "aggs": {
                    "endpoints": {"cardinality": {"field": ENDPOINT}},
                    "durations": {"cardinality": {"field": "duration_bucket"}}
                }
            }}
        }}),
    )
}

/// Reads the answer to [`keys_query`].
pub fn read_keys(response: &Value) -> Result<Keys, ShapeError> {
    let total = response["hits"]["total"]["value"]
        .as_u64()
        .ok_or_else(|| shape("hits.total.value missing"))?;
    let mut keys = Keys {
        total,
        ..Keys::default()
    };
    let services = &response["aggregations"]["s"];
    let mut kept_services = Vec::new();
    for s in buckets(services)? {
        let service = key(s)?;
        let mut kept_envs = Vec::new();
        for e in buckets(&s["e"])? {
            let environment = key(e)?;
            kept_envs.push(environment.clone());
            keys.pairs.push(Pair {
                service: service.clone(),
                environment,
                spans: count(e)?,
                endpoints: e["endpoints"]["value"].as_u64().unwrap_or(1),
                durations: e["durations"]["value"].as_u64().unwrap_or(1),
            });
        }
        if other(&s["e"]) > 0 {
            keys.overflow.push(OverflowScope::Environments {
                service: service.clone(),
                kept: kept_envs,
            });
        }
        kept_services.push(service);
    }
    if other(services) > 0 {
        keys.overflow.push(OverflowScope::Services {
            kept: kept_services,
        });
    }
    Ok(keys)
}

/// Step 2: the endpoint series of a scope.
pub fn stats_query(window: &Window, scope: &Scope, caps: &Caps) -> Value {
    let mut filter = window_filter(window);
    let pairs: Vec<Value> = scope
        .pairs
        .iter()
        .map(|p| {
            json!({"bool": {"filter": [term(SERVICE, &p.service), term(ENVIRONMENT, &p.environment)]}})
        })
        .collect();
    filter.push(json!({"bool": {"should": pairs, "minimum_should_match": 1}}));
    let endpoint_size = match &scope.endpoints {
        Some(list) => {
            filter.push(json!({"terms": {ENDPOINT: list}}));
            list.len()
        }
        None => caps.endpoints,
    };
    let distinct = |f: fn(&Pair) -> &String| {
        let mut v: Vec<&String> = scope.pairs.iter().map(f).collect();
        v.sort();
        v.dedup();
        v.len().max(1)
    };
    search(
        filter,
        json!({"s": {
            "terms": {"field": SERVICE, "size": distinct(|p| &p.service)},
            "aggs": {"e": {
                "terms": {"field": ENVIRONMENT, "size": distinct(|p| &p.environment)},
                "aggs": {"n": {
                    "terms": {"field": ENDPOINT, "size": endpoint_size},
                    "aggs": sketch_aggs()
                }}
            }}
        }}),
    )
}

/// What a stats query found.
#[derive(Debug, Default)]
pub struct StatsResult {
    pub series: Vec<(SeriesKey, SeriesStats)>,
    pub overflow: Vec<OverflowScope>,
    /// Pairs whose endpoint counts may be approximate (several shards and more endpoints than
    /// the cap): to be aggregated again restricted to the kept endpoints, which is exact.
    pub again: Vec<Scope>,
}

/// Reads the answer to [`stats_query`] for `scope`.
pub fn read_stats(response: &Value, scope: &Scope) -> Result<StatsResult, ShapeError> {
    let mut result = StatsResult::default();
    let services = &response["aggregations"]["s"];
    if other(services) > 0 {
        return Err(shape("spans outside the scope's services"));
    }
    for s in buckets(services)? {
        let service = key(s)?;
        if other(&s["e"]) > 0 {
            return Err(shape("spans outside the scope's environments"));
        }
        for e in buckets(&s["e"])? {
            let environment = key(e)?;
            let endpoints = &e["n"];
            let mut kept = Vec::new();
            let mut series = Vec::new();
            for n in buckets(endpoints)? {
                let endpoint = key(n)?;
                kept.push(endpoint.clone());
                series.push((
                    SeriesKey {
                        service: service.clone(),
                        environment: environment.clone(),
                        endpoint,
                        overflow: Overflow::None,
                    },
                    read_sketch(n)?,
                ));
            }
            if other(endpoints) > 0 {
                if scope.endpoints.is_some() {
                    return Err(shape("spans outside the scope's endpoints"));
                }
                let error_bound = endpoints["doc_count_error_upper_bound"]
                    .as_i64()
                    .unwrap_or(0);
                result.overflow.push(OverflowScope::Endpoints {
                    service: service.clone(),
                    environment: environment.clone(),
                    kept: kept.clone(),
                });
                if error_bound > 0 {
                    let pair = scope
                        .pairs
                        .iter()
                        .find(|p| p.service == service && p.environment == environment)
                        .cloned()
                        .ok_or_else(|| shape("a pair outside the scope"))?;
                    result.again.push(Scope {
                        pairs: vec![pair],
                        endpoints: Some(kept),
                    });
                    continue;
                }
            }
            result.series.extend(series);
        }
    }
    Ok(result)
}

/// The endpoints of one pair, top `max_endpoints` by span count (to split a pair too large for
/// one response).
pub fn endpoint_keys_query(window: &Window, pair: &Pair, caps: &Caps) -> Value {
    let mut filter = window_filter(window);
    filter.push(term(SERVICE, &pair.service));
    filter.push(term(ENVIRONMENT, &pair.environment));
    search(
        filter,
        json!({"n": {"terms": {"field": ENDPOINT, "size": caps.endpoints}}}),
    )
}

/// Reads the answer to [`endpoint_keys_query`]: the kept endpoints and, when the cap left
/// some out, their overflow scope.
pub fn read_endpoint_keys(
    response: &Value,
    pair: &Pair,
) -> Result<(Vec<String>, Option<OverflowScope>), ShapeError> {
    let n = &response["aggregations"]["n"];
    let kept = buckets(n)?.iter().map(key).collect::<Result<Vec<_>, _>>()?;
    let overflow = (other(n) > 0).then(|| OverflowScope::Endpoints {
        service: pair.service.clone(),
        environment: pair.environment.clone(),
        kept: kept.clone(),
    });
    Ok((kept, overflow))
}

/// Step 3: one sketch per overflow scope.
pub fn overflow_query(window: &Window, scopes: &[OverflowScope]) -> Value {
    let filters: Map<String, Value> = scopes
        .iter()
        .enumerate()
        .map(|(i, scope)| (i.to_string(), scope.filter()))
        .collect();
    search(
        window_filter(window),
        json!({"o": {"filters": {"filters": filters}, "aggs": sketch_aggs()}}),
    )
}

/// Reads the answer to [`overflow_query`] for `scopes`.
pub fn read_overflow(
    response: &Value,
    scopes: &[OverflowScope],
) -> Result<Vec<(SeriesKey, SeriesStats)>, ShapeError> {
    let answered = &response["aggregations"]["o"]["buckets"];
    scopes
        .iter()
        .enumerate()
        .map(|(i, scope)| {
            let bucket = answered
                .get(i.to_string())
                .ok_or_else(|| shape(format!("filters bucket {i} missing")))?;
            Ok((scope.key(), read_sketch(bucket)?))
        })
        .collect()
}

/// Reads the sketch aggregations of one bucket.
fn read_sketch(bucket: &Value) -> Result<SeriesStats, ShapeError> {
    let total = count(bucket)?;
    let errors = bucket["errors"]["doc_count"]
        .as_u64()
        .ok_or_else(|| shape("errors.doc_count missing"))?;
    let durations = &bucket["buckets"];
    if other(durations) > 0 {
        return Err(shape("more distinct duration buckets than asked for"));
    }
    let mut counted = 0;
    let mut parts = Vec::new();
    for b in buckets(durations)? {
        let index = b["key"]
            .as_i64()
            .and_then(|k| i32::try_from(k).ok())
            .ok_or_else(|| shape("duration bucket key is not an integer"))?;
        let c = count(b)?;
        counted += c;
        parts.push((index, c));
    }
    // Spans without a bucket have a zero duration (the sketch's zero bucket).
    let zeros = total
        .checked_sub(counted)
        .ok_or_else(|| shape("duration buckets count more spans than the group"))?;
    let stats = &bucket["duration"];
    let number = |f: &str| stats[f].as_f64().unwrap_or(0.0);
    Ok(SeriesStats {
        errors,
        sketch: Sketch::from_parts(parts, zeros, number("sum"), number("min"), number("max")),
    })
}

fn buckets(agg: &Value) -> Result<&Vec<Value>, ShapeError> {
    agg["buckets"]
        .as_array()
        .ok_or_else(|| shape("buckets missing"))
}

fn key(bucket: &Value) -> Result<String, ShapeError> {
    match &bucket["key"] {
        Value::String(s) => Ok(s.clone()),
        other => Err(shape(format!("bucket key {other} is not a string"))),
    }
}

fn count(bucket: &Value) -> Result<u64, ShapeError> {
    bucket["doc_count"]
        .as_u64()
        .ok_or_else(|| shape("doc_count missing"))
}

fn other(agg: &Value) -> u64 {
    agg["sum_other_doc_count"].as_u64().unwrap_or(0)
}

/// A window's series, ready to be written.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WindowRollup {
    /// SERVER spans in the window when the roll-up started.
    pub total: u64,
    pub endpoints: BTreeMap<SeriesKey, SeriesStats>,
}

/// A service series key: service, environment, and whether it is an overflow series.
pub type ServiceKey = (String, String, Overflow);

impl WindowRollup {
    pub fn add(&mut self, key: SeriesKey, stats: SeriesStats) {
        self.endpoints.entry(key).or_default().merge(&stats);
    }

    /// Per (service, environment): the merge of its endpoint series. Folded endpoints stay in
    /// their kept pair; folded services and environments form overflow series.
    pub fn services(&self) -> BTreeMap<ServiceKey, SeriesStats> {
        let mut services: BTreeMap<ServiceKey, SeriesStats> = BTreeMap::new();
        for (key, stats) in &self.endpoints {
            let overflow = match key.overflow {
                Overflow::Endpoint => Overflow::None,
                other => other,
            };
            services
                .entry((key.service.clone(), key.environment.clone(), overflow))
                .or_default()
                .merge(stats);
        }
        services
    }

    /// Spans counted in some series.
    pub fn counted(&self) -> u64 {
        self.endpoints.values().map(|s| s.sketch.count).sum()
    }

    /// Spans folded per overflow level.
    pub fn folded(&self) -> BTreeMap<Overflow, u64> {
        let mut folded = BTreeMap::new();
        for (key, stats) in &self.endpoints {
            if key.overflow != Overflow::None {
                *folded.entry(key.overflow).or_insert(0) += stats.sketch.count;
            }
        }
        folded
    }
}

#[cfg(test)]
mod tests;
