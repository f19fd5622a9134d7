//! `GET /query/logs`: log search.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::params::{Page, Params, TimeRange, iso};
use crate::search::{Source, sources, total};

/// Largest page served; larger `size` values are clamped (the dashboard asks for 10 000).
pub const MAX_SIZE: u64 = 1000;
pub const LEVELS: [&str; 4] = ["DEBUG", "INFO", "WARN", "ERROR"];

#[derive(Debug, Clone, PartialEq)]
pub struct LogSearch {
    pub service_name: Option<String>,
    pub environment: Option<String>,
    pub level: Option<&'static str>,
    pub trace_id: Option<String>,
    pub span_id: Option<String>,
    pub message: Option<String>,
    pub range: TimeRange,
    pub page: Page,
    pub descending: bool,
}

impl LogSearch {
    pub fn parse(p: &mut Params, now: DateTime<Utc>) -> Self {
        Self {
            service_name: p.text("service_name"),
            environment: p.environment(),
            level: p.one_of("level", &LEVELS),
            trace_id: p.text("trace_id"),
            span_id: p.text("span_id"),
            message: p.text("message"),
            range: p.time_range(now, 15),
            page: p.page(50, MAX_SIZE),
            descending: p.one_of("sort", &["asc", "desc"]) != Some("asc"),
        }
    }

    pub fn query(&self) -> Value {
        let mut filter = vec![self.range.filter()];
        for (field, value) in [
            ("service_name", &self.service_name),
            ("environment", &self.environment),
            ("trace_id", &self.trace_id),
            ("span_id", &self.span_id),
        ] {
            if let Some(v) = value {
                filter.push(json!({"term": {field: v}}));
            }
        }
        if let Some(level) = self.level {
            filter.push(json!({"term": {"level": level}}));
        }
        let mut bool_query = json!({"filter": filter});
        if let Some(message) = &self.message {
            bool_query["must"] =
                json!([{"match": {"message": {"query": message, "operator": "and"}}}]);
        }
        json!({
            "from": self.page.offset(),
            "size": self.page.size,
            "sort": [{"@timestamp": {"order": if self.descending { "desc" } else { "asc" }}}],
            "track_total_hits": true,
            "query": {"bool": bool_query},
        })
    }
}

/// One log line.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct LogItem {
    /// ISO-8601.
    pub timestamp: String,
    #[schema(example = "ERROR")]
    pub level: String,
    pub message: String,
    pub service_name: String,
    pub environment: String,
    /// `null` when the log has no trace.
    pub trace_id: Option<String>,
    pub span_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub labels: Option<std::collections::BTreeMap<String, Value>>,
}

impl LogItem {
    pub fn from_source(s: &Source<'_>) -> Self {
        Self {
            timestamp: s.text("@timestamp"),
            level: s.text("level"),
            message: s.text("message"),
            service_name: s.text("service_name"),
            environment: s.text("environment"),
            trace_id: s.opt_text("trace_id"),
            span_id: s.opt_text("span_id"),
            labels: s.labels(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LogPage {
    pub total: u64,
    pub page: u64,
    /// The page size used (after clamping).
    pub size: u64,
    pub items: Vec<LogItem>,
}

pub fn response(search: &LogSearch, answer: &Value) -> LogPage {
    LogPage {
        total: total(answer),
        page: search.page.page,
        size: search.page.size,
        items: sources(answer)
            .map(|s| LogItem::from_source(&Source(s)))
            .collect(),
    }
}

impl LogSearch {
    /// The cache key of the search.
    pub fn key(&self, prefix: &str) -> String {
        let s = self;
        crate::cache::KeyBuilder::new(prefix, "logs")
            .opt("service", s.service_name.as_ref())
            .opt("env", s.environment.as_ref())
            .opt("level", s.level)
            .opt("trace", s.trace_id.as_ref())
            .opt("span", s.span_id.as_ref())
            .opt("message", s.message.as_ref())
            .field("from", iso(s.range.from))
            .field("to", iso(s.range.to))
            .field("page", s.page.page)
            .field("size", s.page.size)
            .field("desc", s.descending)
            .build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(q: &str) -> Result<LogSearch, crate::error::ApiError> {
        let mut p = Params::parse(Some(q));
        let s = LogSearch::parse(&mut p, Utc::now());
        p.finish(s)
    }

    #[test]
    fn dashboard_call_is_accepted_and_clamped() {
        let s = parse("service_name=checkout&from=2026-11-25T02%3A08%3A52.266Z&to=2026-11-25T02%3A23%3A52.266Z&size=10000&level=error").unwrap();
        assert_eq!(s.page.size, MAX_SIZE);
        assert_eq!(s.level, Some("ERROR"));
        let q = s.query();
        assert_eq!(q["size"], 1000);
        assert_eq!(q["from"], 0);
        assert_eq!(q["sort"][0]["@timestamp"]["order"], "desc");
        assert_eq!(
            q["query"]["bool"]["filter"][1],
            json!({"term": {"service_name": "checkout"}})
        );
        assert_eq!(
            q["query"]["bool"]["filter"][2],
            json!({"term": {"level": "ERROR"}})
        );
    }

    #[test]
    fn environment_is_normalised_and_message_matches_all_terms() {
        let s = parse("environment=PROD&message=payment%20failed&sort=asc").unwrap();
        let q = s.query();
        assert_eq!(
            q["query"]["bool"]["filter"][1],
            json!({"term": {"environment": "production"}})
        );
        assert_eq!(
            q["query"]["bool"]["must"][0]["match"]["message"],
            json!({"query": "payment failed", "operator": "and"})
        );
        assert_eq!(q["sort"][0]["@timestamp"]["order"], "asc");
    }

    #[test]
    fn bad_level_is_named() {
        let Err(crate::error::ApiError::BadRequest(f)) = parse("level=LOUD") else {
            panic!("expected 400");
        };
        assert_eq!(f[0].parameter, "level");
    }
}
