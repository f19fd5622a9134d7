use std::str::FromStr;

use secrecy::SecretString;

use super::var::{Secrecy, Var};

/// A configuration value that cannot be used: the variable and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{var}: {reason}")]
pub struct ConfigError {
    /// The environment variable (or `A/B` for a rule between two).
    pub var: String,
    pub reason: String,
}

impl ConfigError {
    pub fn new(var: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            var: var.into(),
            reason: reason.into(),
        }
    }
}

type Lookup<'a> = Box<dyn Fn(&str) -> Option<String> + 'a>;

/// Where variables come from: the process environment in production, a map in tests.
pub struct EnvSource<'a> {
    lookup: Lookup<'a>,
}

impl<'a> EnvSource<'a> {
    /// Reads the process environment.
    pub fn process() -> Self {
        Self::from_fn(|name| std::env::var(name).ok())
    }

    /// Reads through `lookup`.
    pub fn from_fn(lookup: impl Fn(&str) -> Option<String> + 'a) -> Self {
        Self {
            lookup: Box::new(lookup),
        }
    }

    /// Reads from `(name, value)` pairs (tests).
    pub fn from_pairs(pairs: &'a [(&'a str, &'a str)]) -> Self {
        Self::from_fn(move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    /// Reads back what [`ToEnv::to_env`] rendered.
    pub fn from_rendered(vars: &'a [(&'static str, String)]) -> Self {
        Self::from_fn(move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.clone())
        })
    }

    /// The trimmed value, `None` when unset or blank. Secrets are read with [`Self::secret`].
    pub fn value(&self, var: &Var) -> Option<String> {
        debug_assert!(
            var.secrecy != Secrecy::Secret,
            "{} is a secret: read it with EnvSource::secret",
            var.name
        );
        self.raw(var)
    }

    /// Whether `name` is set to a non-blank value; the value itself is not returned, so this
    /// serves variables that are not declared (retired ones).
    pub fn is_set(&self, name: &str) -> bool {
        (self.lookup)(name).is_some_and(|v| !v.trim().is_empty())
    }

    fn raw(&self, var: &Var) -> Option<String> {
        (self.lookup)(var.name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// A secret's value, `None` when unset or blank: the one reader of passwords, keys and
    /// tokens. The value only leaves the redacting type through `expose_secret`, and errors
    /// about it name the variable, never the value.
    pub fn secret(&self, var: &Var) -> Option<SecretString> {
        debug_assert!(
            var.secrecy == Secrecy::Secret,
            "{} is not declared secret",
            var.name
        );
        self.raw(var).map(SecretString::from)
    }

    /// A secret's value whenever the variable is present, blank included (untrimmed): for
    /// lists whose blank value must be refused rather than read as unset (bearer tokens).
    pub fn secret_even_blank(&self, var: &Var) -> Option<SecretString> {
        debug_assert!(
            var.secrecy == Secrecy::Secret,
            "{} is not declared secret",
            var.name
        );
        (self.lookup)(var.name).map(SecretString::from)
    }

    /// The value, else the declared default, else empty.
    pub fn text(&self, var: &Var) -> String {
        self.value(var)
            .or_else(|| var.default_value().map(str::to_owned))
            .unwrap_or_default()
    }

    /// The value (else the declared default) read as `T`.
    pub fn parse<T: FromStr>(&self, var: &Var) -> Result<T, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        let Some(v) = self
            .value(var)
            .or_else(|| var.default_value().map(str::to_owned))
        else {
            return Err(ConfigError::new(var.name, "is required"));
        };
        v.parse()
            .map_err(|e| ConfigError::new(var.name, format!("cannot read {v:?}: {e}")))
    }

    /// The value read as `T`, `None` when unset (the declaration's rule applies).
    pub fn parse_opt<T: FromStr>(&self, var: &Var) -> Result<Option<T>, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        self.value(var).map(|_| self.parse(var)).transpose()
    }

    /// A number of at least `min`.
    pub fn at_least<T>(&self, var: &Var, min: T) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd + std::fmt::Display + Copy,
        T::Err: std::fmt::Display,
    {
        let v = self.parse(var)?;
        check_at_least(var, v, min)
    }

    /// [`Self::at_least`], `None` when unset.
    pub fn at_least_opt<T>(&self, var: &Var, min: T) -> Result<Option<T>, ConfigError>
    where
        T: FromStr + PartialOrd + std::fmt::Display + Copy,
        T::Err: std::fmt::Display,
    {
        self.parse_opt(var)?
            .map(|v| check_at_least(var, v, min))
            .transpose()
    }

    /// A comma-separated list of web origins (`http(s)://host[:port]`, trailing `/` dropped), or
    /// `*` for any. Unset is the empty list.
    pub fn origins(&self, var: &Var) -> Result<Vec<String>, ConfigError> {
        let origins: Vec<String> = self
            .value(var)
            .map(|v| {
                v.split(',')
                    .map(|o| o.trim().trim_end_matches('/').to_owned())
                    .filter(|o| !o.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        for origin in &origins {
            if origin != "*" && !(origin.starts_with("http://") || origin.starts_with("https://")) {
                return Err(ConfigError::new(
                    var.name,
                    format!("{origin:?} is neither * nor an http(s):// origin"),
                ));
            }
        }
        Ok(origins)
    }

    /// `true`/`false` (also `1`/`0`, `yes`/`no`, any case); unset is the declared default.
    pub fn bool(&self, var: &Var) -> Result<bool, ConfigError> {
        let v = self.text(var).to_ascii_lowercase();
        match v.as_str() {
            "true" | "1" | "yes" => Ok(true),
            "false" | "0" | "no" => Ok(false),
            _ => Err(ConfigError::new(
                var.name,
                format!("must be true or false, got {v:?}"),
            )),
        }
    }
}

fn check_at_least<T>(var: &Var, v: T, min: T) -> Result<T, ConfigError>
where
    T: PartialOrd + std::fmt::Display,
{
    if v < min {
        return Err(ConfigError::new(
            var.name,
            format!("must be at least {min}, got {v}"),
        ));
    }
    Ok(v)
}

/// Renders a configuration as the environment variables its `from_env` reads back.
pub trait ToEnv {
    fn to_env(&self) -> Vec<(&'static str, String)>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::var::{Unset, declare};
    use secrecy::ExposeSecret as _;

    declare! {
        /// A number.
        N = Unset::Value("9"), Plain;
        /// A flag.
        B = Unset::Value("true"), Plain;
        /// Text.
        ABSENT = Unset::Value("d"), Plain;
        /// A password.
        PASSWORD = Unset::Empty, Secret;
    }

    #[test]
    fn errors_name_the_variable() {
        let env = EnvSource::from_pairs(&[("N", "abc"), ("B", "maybe")]);
        assert_eq!(env.parse::<u32>(&N).unwrap_err().var, "N");
        assert!(
            env.bool(&B)
                .unwrap_err()
                .to_string()
                .starts_with("B: must be true or false")
        );
        let env = EnvSource::from_pairs(&[("N", " 3 ")]);
        assert_eq!(env.at_least::<u32>(&N, 1), Ok(3));
        assert_eq!(
            env.at_least::<u32>(&N, 5).unwrap_err().to_string(),
            "N: must be at least 5, got 3"
        );
        assert_eq!(env.text(&ABSENT), "d");
    }

    #[test]
    fn unset_is_the_declared_default() {
        let env = EnvSource::from_pairs(&[("N", "  ")]);
        assert_eq!(env.parse::<u32>(&N), Ok(9));
        assert_eq!(env.parse_opt::<u32>(&N), Ok(None));
        assert!(env.bool(&B).unwrap());
    }

    #[test]
    fn secrets_are_redacted_in_debug_output() {
        let env = EnvSource::from_pairs(&[("PASSWORD", "hunter2")]);
        let secret = env.secret(&PASSWORD).unwrap();
        assert!(!format!("{secret:?}").contains("hunter2"));
        assert_eq!(secret.expose_secret(), "hunter2");
        assert!(EnvSource::from_pairs(&[]).secret(&PASSWORD).is_none());
    }
}
