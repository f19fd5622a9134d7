use serde::{Deserialize, Serialize};

use super::elasticsearch::ElasticsearchConfig;
use super::env::{ConfigError, EnvSource, ToEnv};
use super::vars::*;

/// Everything `panopticon query` reads.
/// Secrets are not here: `REDIS_PASSWORD` and the bearer tokens (`QUERY_AUTH_TOKENS`, or the
/// file `QUERY_AUTH_TOKENS_FILE` names) are read by the component into redacting types.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryConfig {
    pub elasticsearch: ElasticsearchConfig,
    /// Listen port of the API (`PORT`).
    pub port: u16,
    /// Origins allowed to read the API from a browser (`CORS_ALLOWED_ORIGINS`, comma-separated).
    /// Empty (the default) allows none; `*` allows any origin, and only then.
    pub cors_allowed_origins: Vec<String>,
    /// File with one accepted bearer token per line (`QUERY_AUTH_TOKENS_FILE`). Auth is on
    /// when this or `QUERY_AUTH_TOKENS` is set, off otherwise (the dashboard sends no token).
    pub auth_tokens_file: Option<String>,
    /// Timeout of one request to Elasticsearch in milliseconds (`QUERY_TIMEOUT_MS`, default
    /// 10 000); a request that runs out answers 504.
    pub timeout_ms: u64,
    pub cache: CacheConfig,
    pub metrics: MetricsQueryConfig,
}

/// The Redis response cache.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheConfig {
    /// `REDIS_URL` (`redis://` or `rediss://`), or built from `REDIS_HOST` and `REDIS_PORT`
    /// (default 6379). The cache is off when neither is set. Never holds the password.
    pub redis_url: Option<String>,
    /// `REDIS_USERNAME`; the password comes from `REDIS_PASSWORD`.
    pub username: Option<String>,
    /// Verify the server certificate on TLS (`REDIS_REJECT_UNAUTHORIZED`; off
    /// also when `REDIS_CHECK_SERVER_IDENTITY=false`).
    pub verify_certificates: bool,
    /// Key prefix of the metrics route (`METRICS_CACHE_PREFIX`).
    pub metrics_prefix: String,
    /// Key prefix of the other routes (`QUERY_CACHE_PREFIX`).
    pub query_prefix: String,
    /// Lifetime of a cached metrics answer (`METRICS_CACHE_TTL_SECONDS`; 0 turns
    /// caching of the route off).
    pub metrics_ttl_seconds: u64,
    /// Lifetime of a cached answer of the other search routes (`QUERY_CACHE_TTL_SECONDS`,
    /// default 10; 0 turns it off).
    pub query_ttl_seconds: u64,
    /// Live time ranges (ending within two quanta of now) are rounded down to this many
    /// seconds, so clients polling a sliding window share cache entries
    /// (`METRICS_QUANTIZATION_SECONDS`, at least 1).
    pub quantization_seconds: u64,
}

/// How `/query/services/:service/metrics` reads rollups.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricsQueryConfig {
    /// Read rollup documents where they cover the range (`ROLLUP_ENABLED`);
    /// false computes every point from raw spans.
    pub rollup_enabled: bool,
    /// The rollup window length (`ROLLUP_BUCKET_SECONDS`): the same variable the
    /// rollup component reads, so the two cannot disagree.
    pub rollup_bucket_seconds: u32,
    /// Range of a request without `from` and `to` (`SERVICE_METRICS_DEFAULT_WINDOW_MINUTES`,
    /// default 15).
    pub default_window_minutes: u64,
}

impl QueryConfig {
    pub fn from_env(env: &EnvSource<'_>) -> Result<Self, ConfigError> {
        let redis_url = match (env.value(&REDIS_URL), env.value(&REDIS_HOST)) {
            (Some(url), _) => {
                if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
                    return Err(ConfigError::new(
                        REDIS_URL.name,
                        "must start with redis:// or rediss://",
                    ));
                }
                if url.contains('@') {
                    return Err(ConfigError::new(
                        REDIS_URL.name,
                        format!(
                            "must not carry credentials; set {} and {}",
                            REDIS_USERNAME.name, REDIS_PASSWORD.name
                        ),
                    ));
                }
                Some(url)
            }
            (None, Some(host)) => {
                let port: u16 = env.parse(&REDIS_PORT)?;
                let tls = env.bool(&REDIS_USE_TLS)? || env.bool(&REDIS_TLS)?;
                let scheme = if tls { "rediss" } else { "redis" };
                Some(format!("{scheme}://{host}:{port}"))
            }
            (None, None) => None,
        };
        let cors_allowed_origins = env.origins(&CORS_ALLOWED_ORIGINS)?;
        let rollup_bucket_seconds: u32 = env.at_least(&ROLLUP_BUCKET_SECONDS, 1)?;
        if 86_400 % rollup_bucket_seconds != 0 {
            return Err(ConfigError::new(
                ROLLUP_BUCKET_SECONDS.name,
                format!("must divide a day (86400), got {rollup_bucket_seconds}"),
            ));
        }
        Ok(Self {
            elasticsearch: ElasticsearchConfig::from_env(env)?,
            port: env.parse(&PORT)?,
            cors_allowed_origins,
            auth_tokens_file: env.value(&QUERY_AUTH_TOKENS_FILE),
            timeout_ms: env.at_least(&QUERY_TIMEOUT_MS, 100)?,
            cache: CacheConfig {
                redis_url,
                username: env.value(&REDIS_USERNAME),
                verify_certificates: env.bool(&REDIS_REJECT_UNAUTHORIZED)?
                    && env.bool(&REDIS_CHECK_SERVER_IDENTITY)?,
                metrics_prefix: env.text(&METRICS_CACHE_PREFIX),
                query_prefix: env.text(&QUERY_CACHE_PREFIX),
                metrics_ttl_seconds: env.parse(&METRICS_CACHE_TTL_SECONDS)?,
                query_ttl_seconds: env.parse(&QUERY_CACHE_TTL_SECONDS)?,
                quantization_seconds: env.at_least(&METRICS_QUANTIZATION_SECONDS, 1)?,
            },
            metrics: MetricsQueryConfig {
                rollup_enabled: env.bool(&ROLLUP_ENABLED)?,
                rollup_bucket_seconds,
                default_window_minutes: env.at_least(&SERVICE_METRICS_DEFAULT_WINDOW_MINUTES, 1)?,
            },
        })
    }
}

impl ToEnv for QueryConfig {
    fn to_env(&self) -> Vec<(&'static str, String)> {
        let mut vars = self.elasticsearch.to_env();
        let c = &self.cache;
        let m = &self.metrics;
        vars.extend([
            (PORT.name, self.port.to_string()),
            (
                CORS_ALLOWED_ORIGINS.name,
                self.cors_allowed_origins.join(","),
            ),
            (QUERY_TIMEOUT_MS.name, self.timeout_ms.to_string()),
            (
                REDIS_REJECT_UNAUTHORIZED.name,
                c.verify_certificates.to_string(),
            ),
            (METRICS_CACHE_PREFIX.name, c.metrics_prefix.clone()),
            (QUERY_CACHE_PREFIX.name, c.query_prefix.clone()),
            (
                METRICS_CACHE_TTL_SECONDS.name,
                c.metrics_ttl_seconds.to_string(),
            ),
            (
                QUERY_CACHE_TTL_SECONDS.name,
                c.query_ttl_seconds.to_string(),
            ),
            (
                METRICS_QUANTIZATION_SECONDS.name,
                c.quantization_seconds.to_string(),
            ),
            (ROLLUP_ENABLED.name, m.rollup_enabled.to_string()),
            (
                ROLLUP_BUCKET_SECONDS.name,
                m.rollup_bucket_seconds.to_string(),
            ),
            (
                SERVICE_METRICS_DEFAULT_WINDOW_MINUTES.name,
                m.default_window_minutes.to_string(),
            ),
        ]);
        if let Some(url) = &c.redis_url {
            vars.push((REDIS_URL.name, url.clone()));
        }
        if let Some(user) = &c.username {
            vars.push((REDIS_USERNAME.name, user.clone()));
        }
        if let Some(file) = &self.auth_tokens_file {
            vars.push((QUERY_AUTH_TOKENS_FILE.name, file.clone()));
        }
        vars
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_seeds() {
        let c = QueryConfig::from_env(&EnvSource::from_pairs(&[])).unwrap();
        assert_eq!(c.port, 3001);
        assert_eq!(c.cache.redis_url, None);
        assert_eq!(c.cache.metrics_prefix, "apm:metrics:v1");
        assert_eq!(c.cache.metrics_ttl_seconds, 20);
        assert!(c.cors_allowed_origins.is_empty());
        assert_eq!(c.metrics.default_window_minutes, 15);
        assert!(c.metrics.rollup_enabled);
    }

    #[test]
    fn redis_host_and_tls_make_a_url() {
        let pairs = [
            ("REDIS_HOST", "cache.internal"),
            ("REDIS_PORT", "6380"),
            ("REDIS_TLS", "true"),
        ];
        let c = QueryConfig::from_env(&EnvSource::from_pairs(&pairs)).unwrap();
        assert_eq!(
            c.cache.redis_url.as_deref(),
            Some("rediss://cache.internal:6380")
        );
    }

    #[test]
    fn renders_what_it_reads() {
        let pairs = [
            ("REDIS_HOST", "localhost"),
            ("REDIS_USERNAME", "apm"),
            (
                "CORS_ALLOWED_ORIGINS",
                "https://a.example, http://b.example/",
            ),
            ("QUERY_AUTH_TOKENS_FILE", "/etc/panopticon/tokens"),
            ("ROLLUP_BUCKET_SECONDS", "300"),
            ("QUERY_CACHE_TTL_SECONDS", "0"),
        ];
        let c = QueryConfig::from_env(&EnvSource::from_pairs(&pairs)).unwrap();
        assert_eq!(
            c.cors_allowed_origins,
            ["https://a.example", "http://b.example"]
        );
        let rendered = c.to_env();
        let back = QueryConfig::from_env(&EnvSource::from_rendered(&rendered)).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (var, value) in [
            ("PORT", "http"),
            ("REDIS_URL", "localhost:6379"),
            ("REDIS_URL", "redis://user:secret@localhost"),
            ("CORS_ALLOWED_ORIGINS", "example.com"),
            ("ROLLUP_BUCKET_SECONDS", "7"),
            ("METRICS_QUANTIZATION_SECONDS", "0"),
            ("QUERY_TIMEOUT_MS", "5"),
        ] {
            let pairs = [(var, value)];
            let e = QueryConfig::from_env(&EnvSource::from_pairs(&pairs)).unwrap_err();
            assert_eq!(e.var, var, "{e}");
            assert!(!e.reason.contains("secret"), "{e}");
        }
    }
}
