//! Optional bearer-token auth for `/query/*`.
//!
//! Tokens come from `QUERY_AUTH_TOKENS` (comma-separated) and/or the file
//! `QUERY_AUTH_TOKENS_FILE` (one per line, `#` comments), which the operator mounts from a
//! Secret. With none configured, auth is off, as in the seed. A presented token is compared
//! with every accepted one in constant time, so timing tells nothing about how much matched.

use std::sync::Arc;

use anyhow::Context as _;
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use secrecy::{ExposeSecret as _, SecretString};
use subtle::ConstantTimeEq as _;

use crate::error::ApiError;

/// The accepted tokens.
pub struct Tokens(Vec<SecretString>);

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tokens({} redacted)", self.0.len())
    }
}

impl Tokens {
    /// Reads `QUERY_AUTH_TOKENS` and `file`; `None` when neither has a token.
    pub fn load(file: Option<&str>) -> anyhow::Result<Option<Self>> {
        let mut tokens = Vec::new();
        if let Ok(list) = std::env::var("QUERY_AUTH_TOKENS") {
            tokens.extend(parse(&list.replace(',', "\n")));
        }
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("QUERY_AUTH_TOKENS_FILE: cannot read {path}"))?;
            let from_file = parse(&text);
            if from_file.is_empty() {
                anyhow::bail!("QUERY_AUTH_TOKENS_FILE: {path} holds no token");
            }
            tokens.extend(from_file);
        }
        Ok((!tokens.is_empty()).then_some(Self(tokens)))
    }

    pub fn from_list(tokens: &[&str]) -> Self {
        Self(tokens.iter().map(|t| SecretString::from(*t)).collect())
    }

    /// Whether `presented` is one of the tokens. Every token is compared, in constant time.
    pub fn accepts(&self, presented: &str) -> bool {
        let mut accepted = subtle::Choice::from(0);
        for token in &self.0 {
            accepted |= token.expose_secret().as_bytes().ct_eq(presented.as_bytes());
        }
        accepted.into()
    }
}

fn parse(text: &str) -> Vec<SecretString> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(SecretString::from)
        .collect()
}

/// Middleware: 401 unless auth is off or the request carries an accepted bearer token.
pub async fn require(
    State(tokens): State<Option<Arc<Tokens>>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(tokens) = tokens else {
        return next.run(request).await;
    };
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    match presented {
        Some(token) if tokens.accepts(token) => next.run(request).await,
        _ => ApiError::Unauthorized.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_only_configured_tokens() {
        let t = Tokens::from_list(&["alpha-token", "beta"]);
        assert!(t.accepts("beta"));
        assert!(t.accepts("alpha-token"));
        assert!(!t.accepts("alpha"));
        assert!(!t.accepts(""));
        assert!(!t.accepts("beta "));
    }

    #[test]
    fn file_lines_and_comments() {
        let parsed = parse("# rotated 2026-11\nfirst\n\n  second  \n");
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[1].expose_secret(), "second");
        assert!(!format!("{:?}", Tokens(parsed)).contains("first"));
    }
}
