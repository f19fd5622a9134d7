//! The response cache: Redis for answers shared across replicas, plus in-process coalescing so
//! that concurrent identical requests compute once.
//!
//! Contract:
//! - A key is `<prefix>|v<KEY_VERSION>|<route>|<canonical parameters>`. `KEY_VERSION` changes
//!   whenever an answer's shape changes, so a rolling upgrade never serves an old shape.
//! - Values are the JSON bodies, stored with `SET key value EX ttl`.
//! - Redis is an optimisation only: any Redis failure or slowness (each command has a
//!   [`REDIS_TIMEOUT`]) is a miss plus a rate-limited warning, never an error to the client.
//!   The connection is re-established in the background.
//! - Errors are not cached; concurrent waiters of one computation share its error.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use panopticon_model::config::CacheConfig;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands as _, IntoConnectionInfo as _};
use secrecy::{ExposeSecret as _, SecretString};
use tokio::sync::OnceCell;

use crate::error::Result;
use crate::metrics::Metrics;

/// Bumped when the JSON of any cached answer changes.
pub const KEY_VERSION: u32 = 2;

/// Longest wait for one Redis command before treating it as a miss.
pub const REDIS_TIMEOUT: Duration = Duration::from_millis(250);

/// How a response was produced, for the `X-Panopticon-Cache` header and the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Served from Redis.
    Hit,
    /// Computed (and stored when Redis is there).
    Miss,
    /// Shared the computation of an identical concurrent request.
    Coalesced,
    /// Not cacheable (TTL 0).
    Bypass,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Hit => "hit",
            Outcome::Miss => "miss",
            Outcome::Coalesced => "coalesced",
            Outcome::Bypass => "bypass",
        }
    }
}

type Slot = Arc<OnceCell<Result<Bytes>>>;

pub struct Cache {
    redis: Option<ConnectionManager>,
    inflight: Mutex<HashMap<String, Slot>>,
    metrics: Metrics,
    warnings: panopticon_common::throttle::Throttle,
}

impl Cache {
    /// Builds the cache; connects lazily, so a Redis that is down at start-up only means
    /// misses until it comes up.
    pub fn new(
        config: &CacheConfig,
        password: Option<SecretString>,
        metrics: Metrics,
    ) -> anyhow::Result<Self> {
        let redis = match &config.redis_url {
            None => None,
            Some(url) => {
                let mut url = url.clone();
                if !config.verify_certificates && url.starts_with("rediss://") {
                    tracing::warn!(
                        "TLS certificate verification of Redis is OFF (REDIS_REJECT_UNAUTHORIZED=false)"
                    );
                    url.push_str("/#insecure");
                }
                let info = url
                    .as_str()
                    .into_connection_info()
                    .map_err(|e| anyhow::anyhow!("REDIS_URL/REDIS_HOST: {e}"))?;
                let mut settings = info.redis_settings().clone();
                if let Some(user) = &config.username {
                    settings = settings.set_username(user);
                }
                if let Some(password) = &password {
                    settings = settings.set_password(password.expose_secret());
                }
                let client = redis::Client::open(info.set_redis_settings(settings))
                    .map_err(|e| anyhow::anyhow!("cannot build the Redis client: {e}"))?;
                let manager_config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(REDIS_TIMEOUT))
                    .set_response_timeout(Some(REDIS_TIMEOUT))
                    .set_number_of_retries(1)
                    .set_max_delay(Duration::from_secs(2));
                Some(
                    ConnectionManager::new_lazy_with_config(client, manager_config)
                        .map_err(|e| anyhow::anyhow!("cannot build the Redis client: {e}"))?,
                )
            }
        };
        Ok(Self {
            redis,
            inflight: Mutex::new(HashMap::new()),
            metrics,
            warnings: panopticon_common::throttle::Throttle::new(Duration::from_secs(10)),
        })
    }

    pub fn has_redis(&self) -> bool {
        self.redis.is_some()
    }

    /// Whether Redis answers a PING (for `/ready`'s detail; the API works without it).
    pub async fn ping(&self) -> Option<bool> {
        let mut conn = self.redis.clone()?;
        let answer: Result<Result<String, _>, _> =
            tokio::time::timeout(REDIS_TIMEOUT, redis::cmd("PING").query_async(&mut conn)).await;
        Some(matches!(answer, Ok(Ok(_))))
    }

    /// The answer for `key`: from Redis, from an identical request in flight, or computed by
    /// `compute` and stored for `ttl_seconds`. A TTL of 0 computes every time.
    pub async fn get_or_compute<F, Fut>(
        &self,
        key: String,
        ttl_seconds: u64,
        compute: F,
    ) -> (Result<Bytes>, Outcome)
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Bytes>>,
    {
        if ttl_seconds == 0 {
            self.metrics.cache(Outcome::Bypass);
            return (compute().await, Outcome::Bypass);
        }
        let slot = {
            let mut inflight = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
            inflight.entry(key.clone()).or_default().clone()
        };
        let _cleanup = Cleanup {
            cache: self,
            key: &key,
            slot: &slot,
        };
        let mut outcome = Outcome::Coalesced;
        let result = slot
            .get_or_init(|| async {
                if let Some(bytes) = self.get(&key).await {
                    outcome = Outcome::Hit;
                    return Ok(bytes);
                }
                outcome = Outcome::Miss;
                let computed = compute().await;
                if let Ok(bytes) = &computed {
                    self.set(&key, bytes, ttl_seconds).await;
                }
                computed
            })
            .await
            .clone();
        self.metrics.cache(outcome);
        (result, outcome)
    }

    async fn get(&self, key: &str) -> Option<Bytes> {
        let mut conn = self.redis.clone()?;
        match tokio::time::timeout(REDIS_TIMEOUT, conn.get::<_, Option<Vec<u8>>>(key)).await {
            Ok(Ok(value)) => value.map(Bytes::from),
            Ok(Err(error)) => {
                self.warn(&error.to_string());
                None
            }
            Err(_) => {
                self.warn("GET timed out");
                None
            }
        }
    }

    async fn set(&self, key: &str, value: &Bytes, ttl_seconds: u64) {
        let Some(mut conn) = self.redis.clone() else {
            return;
        };
        let set = conn.set_ex::<_, _, ()>(key, value.as_ref(), ttl_seconds);
        match tokio::time::timeout(REDIS_TIMEOUT, set).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => self.warn(&error.to_string()),
            Err(_) => self.warn("SET timed out"),
        }
    }

    /// Counts every failure; logs at most one warning every ten seconds.
    fn warn(&self, error: &str) {
        self.metrics.cache_error();
        if self.warnings.allow() {
            tracing::warn!(
                error,
                "Redis cache unavailable; answering from Elasticsearch"
            );
        }
    }
}

/// Removes a finished (or abandoned) computation from the in-flight map, so that the next
/// identical request reads Redis again instead of this process's old answer.
struct Cleanup<'a> {
    cache: &'a Cache,
    key: &'a str,
    slot: &'a Slot,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let mut inflight = self
            .cache
            .inflight
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let ours = inflight
            .get(self.key)
            .is_some_and(|s| Arc::ptr_eq(s, self.slot));
        // Done, or nobody else is waiting on it (the map's reference and ours).
        if ours && (self.slot.initialized() || Arc::strong_count(self.slot) <= 2) {
            inflight.remove(self.key);
        }
    }
}

/// Builds the canonical parameter part of a key.
#[derive(Debug, Default)]
pub struct KeyBuilder(String);

impl KeyBuilder {
    pub fn new(prefix: &str, route: &str) -> Self {
        Self(format!("{prefix}|v{KEY_VERSION}|{route}"))
    }

    pub fn field(mut self, name: &str, value: impl std::fmt::Display) -> Self {
        // `|` in values is escaped so that two parameter sets never share a key.
        let value = value.to_string().replace('%', "%25").replace('|', "%7C");
        self.0.push('|');
        self.0.push_str(name);
        self.0.push('=');
        self.0.push_str(&value);
        self
    }

    pub fn opt(self, name: &str, value: Option<impl std::fmt::Display>) -> Self {
        match value {
            Some(v) => self.field(name, v),
            None => self,
        }
    }

    pub fn build(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn cache() -> Cache {
        let config = CacheConfig {
            redis_url: None,
            username: None,
            verify_certificates: true,
            metrics_prefix: "m".into(),
            query_prefix: "q".into(),
            metrics_ttl_seconds: 20,
            query_ttl_seconds: 10,
            quantization_seconds: 10,
        };
        let mut registry = prometheus_client::registry::Registry::default();
        Cache::new(&config, None, Metrics::register(&mut registry)).unwrap()
    }

    #[tokio::test]
    async fn concurrent_identical_requests_compute_once() {
        let cache = Arc::new(cache());
        let runs = Arc::new(AtomicUsize::new(0));
        let (release, wait) = tokio::sync::watch::channel(false);
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let cache = cache.clone();
            let runs = runs.clone();
            let mut wait = wait.clone();
            tasks.push(tokio::spawn(async move {
                cache
                    .get_or_compute("k".into(), 10, || async move {
                        runs.fetch_add(1, Ordering::SeqCst);
                        wait.wait_for(|go| *go).await.expect("the sender lives");
                        Ok(Bytes::from_static(b"[]"))
                    })
                    .await
            }));
        }
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        release.send(true).unwrap();
        let mut outcomes = Vec::new();
        for task in tasks {
            let (result, outcome) = task.await.unwrap();
            assert_eq!(result.unwrap(), Bytes::from_static(b"[]"));
            outcomes.push(outcome);
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(outcomes.iter().filter(|o| **o == Outcome::Miss).count(), 1);
        assert!(cache.inflight.lock().unwrap().is_empty());
        // Done computations are forgotten: without Redis, the next request computes again.
        let (_, outcome) = cache
            .get_or_compute("k".into(), 10, || async { Ok(Bytes::new()) })
            .await;
        assert_eq!(outcome, Outcome::Miss);
    }

    #[tokio::test]
    async fn an_abandoned_computation_is_forgotten() {
        let cache = cache();
        let pending = cache.get_or_compute("k".into(), 10, std::future::pending);
        assert!(
            tokio::time::timeout(Duration::from_millis(10), pending)
                .await
                .is_err()
        );
        assert!(cache.inflight.lock().unwrap().is_empty());
    }

    #[test]
    fn keys_cannot_collide_through_separators() {
        let a = KeyBuilder::new("p", "r")
            .field("service", "a|env=b")
            .build();
        let b = KeyBuilder::new("p", "r")
            .field("service", "a")
            .field("env", "b")
            .build();
        assert_ne!(a, b);
        assert_eq!(a, "p|v2|r|service=a%7Cenv=b");
    }
}
