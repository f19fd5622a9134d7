use std::fmt;

/// Why an event was rejected: the field (a JSON path such as `http_status_code`,
/// `labels.region` or `payload`) and the reason. Its `Display` is the dead-letter reason, e.g.
/// `http_status_code: must be an integer between 100 and 599, got 700`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct EventError {
    /// The offending field; `payload` when the message as a whole is wrong.
    pub field: String,
    /// What is wrong with it.
    pub reason: Reason,
}

impl EventError {
    pub(crate) fn new(field: impl Into<String>, reason: Reason) -> Self {
        Self {
            field: field.into(),
            reason,
        }
    }
}

/// The reasons an event can be rejected. [`Reason::code`] is a short, stable label for
/// metrics; `Display` is the human explanation.
#[derive(Debug, Clone, PartialEq)]
pub enum Reason {
    /// The payload is not JSON.
    InvalidJson(String),
    /// The field is required and absent or `null`.
    Missing,
    /// The field has the wrong JSON type.
    WrongType {
        expected: &'static str,
        got: &'static str,
    },
    /// A required string is empty or only white space.
    Empty,
    /// A string is longer than its limit (bytes).
    TooLong { max: usize, len: usize },
    /// There are more labels than the limit (after merging unknown top-level fields).
    TooManyLabels { max: usize, count: usize },
    /// The value is not one of the accepted words.
    NotOneOf { allowed: &'static str, got: String },
    /// The value is outside its range.
    OutOfRange(String),
    /// The value breaks another rule, explained in the message.
    Invalid(String),
    /// The timestamp cannot be read.
    InvalidTimestamp(String),
}

impl Reason {
    /// A short, stable, low-cardinality code (for metric labels and DLQ headers).
    pub fn code(&self) -> &'static str {
        match self {
            Reason::InvalidJson(_) => "invalid_json",
            Reason::Missing => "missing",
            Reason::WrongType { .. } => "wrong_type",
            Reason::Empty => "empty",
            Reason::TooLong { .. } => "too_long",
            Reason::TooManyLabels { .. } => "too_many_labels",
            Reason::NotOneOf { .. } => "not_allowed",
            Reason::OutOfRange(_) => "out_of_range",
            Reason::Invalid(_) => "invalid",
            Reason::InvalidTimestamp(_) => "invalid_timestamp",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::InvalidJson(e) => write!(f, "not valid JSON ({e})"),
            Reason::Missing => f.write_str("is required"),
            Reason::WrongType { expected, got } => write!(f, "must be {expected}, got {got}"),
            Reason::Empty => f.write_str("must not be empty"),
            Reason::TooLong { max, len } => {
                write!(f, "is {len} bytes long, the limit is {max} bytes")
            }
            Reason::TooManyLabels { max, count } => {
                write!(f, "has {count} entries, the limit is {max}")
            }
            Reason::NotOneOf { allowed, got } => write!(f, "must be one of {allowed}, got {got:?}"),
            Reason::OutOfRange(msg) | Reason::InvalidTimestamp(msg) | Reason::Invalid(msg) => {
                f.write_str(msg)
            }
        }
    }
}

/// The JSON type name of a value, for error messages.
pub(crate) fn json_type(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}
