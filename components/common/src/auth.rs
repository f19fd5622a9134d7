//! Bearer tokens for the components that can require one (query, alert).
//!
//! Tokens come from a comma-separated environment variable and/or a file (one per line, `#`
//! comments) that the operator mounts from a Secret. With neither configured, auth is off (the
//! dashboard sends no token); a list or file that is configured but holds no token (`,`, blank,
//! only comments) is an error, so a mistake never turns auth off. A presented token is compared
//! with every accepted one in constant time, so timing tells nothing about how much of it
//! matched. Tokens never appear in `Debug` output.

use anyhow::Context as _;
use axum::http::{HeaderMap, header};
use secrecy::{ExposeSecret as _, SecretString};
use subtle::ConstantTimeEq as _;

/// The accepted tokens.
pub struct Tokens(Vec<SecretString>);

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tokens({} redacted)", self.0.len())
    }
}

impl Tokens {
    /// Reads the comma-separated `list` (the variable `list_var`, present even when blank: read
    /// with `EnvSource::secret_even_blank`) and the file `file` (named by `file_var`); the
    /// variable names only appear in error messages. `None` when neither is configured; an
    /// error when one is configured but holds no token.
    pub fn load(
        list_var: &str,
        list: Option<SecretString>,
        file_var: &str,
        file: Option<&str>,
    ) -> anyhow::Result<Option<Self>> {
        let mut tokens = Vec::new();
        if let Some(list) = list {
            let from_list = parse(&list.expose_secret().replace(',', "\n"));
            if from_list.is_empty() {
                anyhow::bail!(
                    "{list_var} is set but holds no token (only commas or blanks); unset it to turn \
                     auth off, or list the accepted tokens"
                );
            }
            tokens.extend(from_list);
        }
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("{file_var}: cannot read {path}"))?;
            let from_file = parse(&text);
            if from_file.is_empty() {
                anyhow::bail!("{file_var}: {path} holds no token");
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

/// The token of an `Authorization: Bearer <token>` header.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
}

fn parse(text: &str) -> Vec<SecretString> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(SecretString::from)
        .collect()
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

    #[test]
    fn a_configured_list_without_tokens_is_refused_and_an_absent_one_is_off() {
        for blank in ["", " ", ",", ", ,", " ,\t, "] {
            let err = Tokens::load("LIST", Some(SecretString::from(blank)), "FILE", None)
                .expect_err("a set list without tokens must not turn auth off");
            assert!(
                err.to_string()
                    .starts_with("LIST is set but holds no token"),
                "{err}"
            );
        }
        assert!(Tokens::load("LIST", None, "FILE", None).unwrap().is_none());
        let t = Tokens::load("LIST", Some(SecretString::from(" a, b ,")), "FILE", None)
            .unwrap()
            .expect("two tokens");
        assert!(t.accepts("a") && t.accepts("b") && !t.accepts(""));
    }

    #[test]
    fn bearer_header() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, "Bearer abc ".parse().unwrap());
        assert_eq!(bearer(&h), Some("abc"));
        h.insert(header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(bearer(&h), None);
    }
}
