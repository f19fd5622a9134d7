//! Reading query strings into typed values, collecting every problem so one 400 names each bad
//! parameter. Unknown parameters are ignored (clients send extra ones); a parameter given
//! twice uses its first value.

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeDelta, Utc};
use panopticon_model::normalize_environment;

use crate::error::{ApiError, FieldError};

/// The largest page a search engine answers without a scroll (`index.max_result_window`).
pub const MAX_RESULT_WINDOW: u64 = 10_000;

/// Longest accepted free-text parameter, in bytes.
const MAX_TEXT_LEN: usize = 1024;

/// A parsed query string plus the errors found while reading it.
#[derive(Debug, Default)]
pub struct Params {
    pairs: Vec<(String, String)>,
    errors: Vec<FieldError>,
}

impl Params {
    pub fn parse(raw: Option<&str>) -> Self {
        let pairs = raw
            .map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect()
            })
            .unwrap_or_default();
        Self {
            pairs,
            errors: Vec::new(),
        }
    }

    pub fn error(&mut self, parameter: &str, message: impl Into<String>) {
        self.errors.push(FieldError {
            parameter: parameter.to_owned(),
            message: message.into(),
        });
    }

    /// `Ok` with the value built so far, or a 400 naming every bad parameter.
    pub fn finish<T>(self, value: T) -> Result<T, ApiError> {
        if self.errors.is_empty() {
            Ok(value)
        } else {
            Err(ApiError::BadRequest(self.errors))
        }
    }

    /// The first value of `name`, trimmed; `None` when absent or blank.
    pub fn text(&mut self, name: &str) -> Option<String> {
        let value = self
            .pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim().to_owned())
            .filter(|v| !v.is_empty())?;
        if value.len() > MAX_TEXT_LEN {
            self.error(name, format!("must be at most {MAX_TEXT_LEN} bytes"));
            return None;
        }
        Some(value)
    }

    /// An environment filter, normalised the way ingest stores it.
    pub fn environment(&mut self) -> Option<String> {
        self.text("environment").map(|e| normalize_environment(&e))
    }

    /// One of `allowed`, compared case-insensitively; returns the canonical spelling.
    pub fn one_of(&mut self, name: &str, allowed: &[&'static str]) -> Option<&'static str> {
        let value = self.text(name)?;
        match allowed.iter().find(|a| a.eq_ignore_ascii_case(&value)) {
            Some(found) => Some(found),
            None => {
                self.error(
                    name,
                    format!("must be one of {}, got {value:?}", allowed.join(", ")),
                );
                None
            }
        }
    }

    /// An integer in `min..=max`, or `default` when absent.
    pub fn integer(&mut self, name: &str, default: u64, min: u64, max: u64) -> u64 {
        let Some(value) = self.text(name) else {
            return default;
        };
        match value.parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => n,
            _ => {
                self.error(
                    name,
                    format!("must be an integer from {min} to {max}, got {value:?}"),
                );
                default
            }
        }
    }

    /// An integer of at least `min`; values above `max` are clamped to it (clients such as the
    /// dashboard ask for more than we serve, and expect an answer, not an error).
    pub fn clamped(&mut self, name: &str, default: u64, min: u64, max: u64) -> u64 {
        let Some(value) = self.text(name) else {
            return default;
        };
        match value.parse::<u64>() {
            Ok(n) if n >= min => n.min(max),
            // An integer too large for u64 is still "more than we serve".
            Err(_) if value.bytes().all(|b| b.is_ascii_digit()) => max,
            _ => {
                self.error(
                    name,
                    format!("must be an integer of at least {min}, got {value:?}"),
                );
                default
            }
        }
    }

    /// A finite number in `min..=max`.
    pub fn number(&mut self, name: &str, min: f64, max: f64) -> Option<f64> {
        let value = self.text(name)?;
        match value.parse::<f64>() {
            Ok(n) if n.is_finite() && n >= min && n <= max => Some(n),
            _ => {
                self.error(
                    name,
                    format!("must be a number from {min} to {max}, got {value:?}"),
                );
                None
            }
        }
    }

    /// An ISO-8601 instant: RFC 3339 (`2026-11-25T02:23:52.266Z`), a date-time without offset
    /// (read as UTC, never as the server's zone), or a date (midnight UTC).
    pub fn instant(&mut self, name: &str) -> Option<DateTime<Utc>> {
        let value = self.text(name)?;
        match parse_instant(&value) {
            Some(t) => Some(t),
            None => {
                self.error(
                    name,
                    format!("must be an ISO-8601 date-time such as 2026-11-25T02:23:52.266Z, got {value:?}"),
                );
                None
            }
        }
    }

    /// `from`/`to` with the route's default length, checked `from <= to`.
    pub fn time_range(&mut self, now: DateTime<Utc>, default_minutes: i64) -> TimeRange {
        let from = self.instant("from");
        let to = self.instant("to");
        let to_value = to.unwrap_or(now);
        let from_value = from.unwrap_or(to_value - TimeDelta::minutes(default_minutes));
        if from_value > to_value {
            self.error("from", "must not be after to");
        }
        TimeRange {
            from: from_value,
            to: to_value,
            explicit: from.is_some() || to.is_some(),
        }
    }

    /// `page` and `size` for a search: `size` above `max_size` is clamped, and a page past the
    /// engine's result window is a 400 (not the engine's 500).
    pub fn page(&mut self, default_size: u64, max_size: u64) -> Page {
        let page = self.integer("page", 1, 1, MAX_RESULT_WINDOW);
        let size = self.clamped("size", default_size, 1, max_size);
        if page.saturating_mul(size) > MAX_RESULT_WINDOW {
            self.error(
                "page",
                format!(
                    "page × size must be at most {MAX_RESULT_WINDOW} (got {page} × {size}); narrow the time range or filters instead of paging deeper"
                ),
            );
        }
        Page { page, size }
    }
}

/// Parses the instants [`Params::instant`] accepts.
pub fn parse_instant(value: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(value) {
        return Some(t.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(value, format) {
            return Some(t.and_utc());
        }
    }
    NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

/// A closed time range `[from, to]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Whether the client gave `from` or `to` (otherwise the range slides with now).
    pub explicit: bool,
}

impl TimeRange {
    /// The range rounded down to `quantum` when it ends within two quanta of `now` (a live,
    /// polled range), so that clients polling it share one cache entry; unchanged otherwise.
    pub fn quantised(self, now: DateTime<Utc>, quantum: TimeDelta) -> Self {
        let q = quantum.num_milliseconds().max(1);
        if (now - self.to).num_milliseconds() > 2 * q {
            return self;
        }
        let floor = |t: DateTime<Utc>| {
            let ms = t.timestamp_millis();
            DateTime::from_timestamp_millis(ms - ms.rem_euclid(q)).unwrap_or(t)
        };
        Self {
            from: floor(self.from),
            to: floor(self.to),
            explicit: self.explicit,
        }
    }

    /// `{"range": {"@timestamp": {"gte": from, "lte": to}}}` in epoch milliseconds.
    pub fn filter(&self) -> serde_json::Value {
        serde_json::json!({"range": {"@timestamp": {
            "gte": self.from.timestamp_millis(),
            "lte": self.to.timestamp_millis(),
            "format": "epoch_millis",
        }}})
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub page: u64,
    pub size: u64,
}

impl Page {
    pub fn offset(&self) -> u64 {
        (self.page - 1) * self.size
    }
}

/// Reads `<n>ms|s|m|h|d` (any case) into a positive duration of at least one second.
pub fn parse_interval(value: &str) -> Option<TimeDelta> {
    let value = value.trim().to_ascii_lowercase();
    let split = value.find(|c: char| !c.is_ascii_digit())?;
    let (digits, unit) = value.split_at(split);
    let n: i64 = digits.parse().ok().filter(|n| *n > 0 && *n <= 1_000_000)?;
    let delta = match unit {
        "ms" => TimeDelta::milliseconds(n),
        "s" => TimeDelta::seconds(n),
        "m" => TimeDelta::minutes(n),
        "h" => TimeDelta::hours(n),
        "d" => TimeDelta::days(n),
        _ => return None,
    };
    (delta.num_milliseconds() >= 1000 && delta.num_milliseconds() % 1000 == 0).then_some(delta)
}

/// ISO-8601 with milliseconds and `Z`, as `Date.toISOString()` writes it.
pub fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Escapes `*`, `?` and `\` for a `wildcard` query.
pub fn escape_wildcard(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(q: &str) -> Params {
        Params::parse(Some(q))
    }

    #[test]
    fn instants_in_the_forms_clients_send() {
        let want = DateTime::parse_from_rfc3339("2026-11-25T02:23:52.266Z").unwrap();
        assert_eq!(parse_instant("2026-11-25T02:23:52.266Z").unwrap(), want);
        assert_eq!(
            parse_instant("2026-11-25T11:23:52.266+09:00").unwrap(),
            want
        );
        assert_eq!(parse_instant("2026-11-25T02:23:52.266").unwrap(), want);
        assert_eq!(
            iso(parse_instant("2026-11-25").unwrap()),
            "2026-11-25T00:00:00.000Z"
        );
        assert!(parse_instant("20261125T022352Z").is_none());
        assert!(parse_instant("yesterday").is_none());
    }

    #[test]
    fn intervals() {
        assert_eq!(parse_interval("45s"), Some(TimeDelta::seconds(45)));
        assert_eq!(parse_interval("1m"), Some(TimeDelta::minutes(1)));
        assert_eq!(parse_interval("12H"), Some(TimeDelta::hours(12)));
        assert_eq!(parse_interval("1d"), Some(TimeDelta::days(1)));
        for bad in [
            "0s",
            "s",
            "10",
            "1w",
            "1.5m",
            "-1m",
            "500ms",
            "99999999999m",
        ] {
            assert_eq!(parse_interval(bad), None, "{bad}");
        }
    }

    #[test]
    fn every_bad_parameter_is_named() {
        let mut p = params("size=0&page=x&from=bad&sort=sideways");
        p.page(50, 1000);
        p.instant("from");
        p.one_of("sort", &["asc", "desc"]);
        let Err(ApiError::BadRequest(fields)) = p.finish(()) else {
            panic!("expected a 400");
        };
        let names: Vec<_> = fields.iter().map(|f| f.parameter.as_str()).collect();
        assert_eq!(names, ["page", "size", "from", "sort"]);
    }

    #[test]
    fn size_is_clamped_and_deep_pages_refused() {
        let mut p = params("size=10000");
        assert_eq!(
            p.page(50, 1000),
            Page {
                page: 1,
                size: 1000
            }
        );
        assert!(p.finish(()).is_ok());
        let mut p = params("size=99999999999999999999999");
        assert_eq!(p.page(50, 1000).size, 1000);
        assert!(p.finish(()).is_ok());
        let mut p = params("size=100&page=101");
        p.page(50, 1000);
        let Err(ApiError::BadRequest(fields)) = p.finish(()) else {
            panic!("expected a 400");
        };
        assert_eq!(fields[0].parameter, "page");
        let mut p = params("size=100&page=100");
        assert_eq!(p.page(50, 1000).offset(), 9900);
        assert!(p.finish(()).is_ok());
    }

    #[test]
    fn from_after_to_is_refused() {
        let now = Utc::now();
        let mut p = params("from=2026-11-25T02:00:00Z&to=2026-11-25T01:00:00Z");
        p.time_range(now, 15);
        assert!(p.finish(()).is_err());
        let mut p = params("to=2026-11-25T01:00:00Z");
        let r = p.time_range(now, 15);
        assert_eq!(iso(r.from), "2026-11-25T00:45:00.000Z");
        assert!(r.explicit);
    }

    #[test]
    fn live_ranges_are_quantised_and_past_ones_kept() {
        let now = parse_instant("2026-11-25T02:23:52.266Z").unwrap();
        let live = TimeRange {
            from: now - TimeDelta::minutes(15),
            to: now,
            explicit: true,
        };
        let q = live.quantised(now, TimeDelta::seconds(10));
        assert_eq!(iso(q.to), "2026-11-25T02:23:50.000Z");
        assert_eq!(iso(q.from), "2026-11-25T02:08:50.000Z");
        let past = TimeRange {
            from: now - TimeDelta::hours(2),
            to: now - TimeDelta::hours(1),
            explicit: true,
        };
        assert_eq!(past.quantised(now, TimeDelta::seconds(10)), past);
    }

    #[test]
    fn environments_are_normalised_like_ingest() {
        let mut p = params("environment=%20Prod%20");
        assert_eq!(p.environment().as_deref(), Some("production"));
    }

    #[test]
    fn wildcard_metacharacters_are_escaped() {
        assert_eq!(escape_wildcard(r"a*b?c\d"), r"a\*b\?c\\d");
    }
}
