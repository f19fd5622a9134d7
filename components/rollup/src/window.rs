//! Runs the aggregation of one window ([`crate::aggregate`]) against the engine, splitting what
//! would be too large for one response, and counts the spans of recent windows for the
//! planner.

use std::collections::{BTreeMap, VecDeque};

use elasticsearch::http::Method;
use panopticon_es::{EsClient, EsError};
use panopticon_model::rollup::Window;
use serde_json::{Value, json};

use crate::aggregate::{
    self, Caps, OverflowScope, Scope, ShapeError, Split, WindowRollup, chunk_endpoints,
};

/// Overflow scopes per `filters` query (each may return up to 2 000 duration buckets).
const OVERFLOW_SCOPES_PER_QUERY: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum RollError {
    #[error(transparent)]
    Es(#[from] EsError),
    #[error(transparent)]
    Shape(#[from] ShapeError),
    #[error("the search timed out: {0}")]
    TimedOut(String),
    #[error(
        "one endpoint of one window has more duration buckets than search.max_buckets allows: {0}"
    )]
    TooLarge(String),
}

enum SearchError {
    TooManyBuckets(String),
    Other(RollError),
}

impl From<SearchError> for RollError {
    fn from(e: SearchError) -> Self {
        match e {
            SearchError::TooManyBuckets(body) => RollError::TooLarge(body),
            SearchError::Other(e) => e,
        }
    }
}

/// Aggregates windows of the span stream.
#[derive(Clone, Debug)]
pub struct Aggregator {
    pub es: EsClient,
    /// The span data stream (`traces-apm`).
    pub spans: String,
    pub caps: Caps,
}

impl Aggregator {
    async fn search(&self, body: &Value) -> Result<Value, SearchError> {
        // No partial results: a shard that fails must fail the roll-up, not shrink it. No
        // request cache: a window is aggregated once per change, a cached answer never reused.
        let path = format!(
            "/{}/_search?allow_partial_search_results=false&ignore_unavailable=true\
             &allow_no_indices=true&request_cache=false\
             &filter_path=timed_out,hits.total,aggregations",
            self.spans
        );
        let (status, answer) = self
            .es
            .request(Method::Post, &path, Some(body))
            .await
            .map_err(|e| SearchError::Other(e.into()))?;
        if !status.is_success() {
            let text = answer.to_string();
            if text.contains("too_many_buckets_exception") {
                return Err(SearchError::TooManyBuckets(panopticon_es::truncate(
                    &text, 500,
                )));
            }
            return Err(SearchError::Other(RollError::Es(EsError::Status {
                what: format!("POST {path}"),
                status: status.as_u16(),
                body: panopticon_es::truncate(&text, 2000),
            })));
        }
        if answer["timed_out"] == true {
            return Err(SearchError::Other(RollError::TimedOut(path)));
        }
        Ok(answer)
    }

    /// Aggregates every SERVER span of `window` into series.
    pub async fn roll(&self, window: &Window) -> Result<WindowRollup, RollError> {
        let caps = &self.caps;
        let answer = self.search(&aggregate::keys_query(window, caps)).await?;
        let keys = if answer["hits"]["total"]["value"] == 0 {
            aggregate::Keys::default()
        } else {
            aggregate::read_keys(&answer)?
        };
        let mut rollup = WindowRollup {
            total: keys.total,
            ..WindowRollup::default()
        };
        if keys.total == 0 {
            return Ok(rollup);
        }
        let mut overflow = keys.overflow;
        let mut queue: VecDeque<Scope> = aggregate::plan_scopes(&keys.pairs, caps).into();
        while let Some(scope) = queue.pop_front() {
            // A single endpoint cannot be split: it is always tried.
            let split = aggregate::split(&scope);
            let too_large = if split != Split::Atomic
                && scope.estimate(caps) > aggregate::BUCKET_BUDGET
            {
                true
            } else {
                match self
                    .search(&aggregate::stats_query(window, &scope, caps))
                    .await
                {
                    Ok(answer) => {
                        let stats = aggregate::read_stats(&answer, &scope)?;
                        for (key, s) in stats.series {
                            rollup.add(key, s);
                        }
                        overflow.extend(stats.overflow);
                        queue.extend(stats.again);
                        false
                    }
                    Err(SearchError::TooManyBuckets(body)) => {
                        tracing::debug!(%window, pairs = scope.pairs.len(), body, "splitting a scope the engine found too large");
                        true
                    }
                    Err(SearchError::Other(e)) => return Err(e),
                }
            };
            if !too_large {
                continue;
            }
            match split {
                Split::Halves(a, b) => {
                    queue.push_front(b);
                    queue.push_front(a);
                }
                Split::ListEndpoints(pair) => {
                    let answer = self
                        .search(&aggregate::endpoint_keys_query(window, &pair, caps))
                        .await?;
                    let (kept, left_out) = aggregate::read_endpoint_keys(&answer, &pair)?;
                    overflow.extend(left_out);
                    for chunk in chunk_endpoints(&pair, kept).into_iter().rev() {
                        queue.push_front(chunk);
                    }
                }
                Split::Atomic => {
                    return Err(RollError::TooLarge(format!(
                        "{window}: {:?}",
                        scope.endpoints
                    )));
                }
            }
        }
        for chunk in overflow.chunks(OVERFLOW_SCOPES_PER_QUERY) {
            self.roll_overflow(window, chunk, &mut rollup).await?;
        }
        Ok(rollup)
    }

    async fn roll_overflow(
        &self,
        window: &Window,
        scopes: &[OverflowScope],
        rollup: &mut WindowRollup,
    ) -> Result<(), RollError> {
        match self
            .search(&aggregate::overflow_query(window, scopes))
            .await
        {
            Ok(answer) => {
                for (key, s) in aggregate::read_overflow(&answer, scopes)? {
                    rollup.add(key, s);
                }
                Ok(())
            }
            Err(SearchError::TooManyBuckets(_)) if scopes.len() > 1 => {
                let (a, b) = scopes.split_at(scopes.len() / 2);
                Box::pin(self.roll_overflow(window, a, rollup)).await?;
                Box::pin(self.roll_overflow(window, b, rollup)).await
            }
            Err(e) => Err(e.into()),
        }
    }

    /// SERVER spans per window start, for windows starting in `[from_ms, to_ms)`.
    pub async fn live_counts(
        &self,
        from_ms: i64,
        to_ms: i64,
        bucket_seconds: u32,
    ) -> Result<BTreeMap<i64, u64>, RollError> {
        if to_ms <= from_ms {
            return Ok(BTreeMap::new());
        }
        let body = json!({
            "size": 0,
            "query": {"bool": {"filter": [
                {"range": {"@timestamp": {"gte": from_ms, "lt": to_ms, "format": "epoch_millis"}}},
                {"term": {"kind": "SERVER"}}
            ]}},
            "aggs": {"w": {"date_histogram": {
                "field": "@timestamp",
                "fixed_interval": format!("{bucket_seconds}s"),
                "min_doc_count": 1
            }}}
        });
        let answer = self.search(&body).await?;
        let mut counts = BTreeMap::new();
        if let Some(buckets) = answer["aggregations"]["w"]["buckets"].as_array() {
            for b in buckets {
                if let (Some(start), Some(n)) = (b["key"].as_i64(), b["doc_count"].as_u64()) {
                    counts.insert(start, n);
                }
            }
        }
        Ok(counts)
    }
}
