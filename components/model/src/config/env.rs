use std::str::FromStr;

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

    /// The trimmed value, `None` when unset or blank.
    pub fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    pub fn string(&self, name: &str, default: &str) -> String {
        self.get(name).unwrap_or_else(|| default.to_owned())
    }

    pub fn parse<T: FromStr>(&self, name: &str, default: T) -> Result<T, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|e| ConfigError::new(name, format!("cannot read {v:?}: {e}"))),
        }
    }

    /// An integer of at least `min`.
    pub fn at_least<T>(&self, name: &str, default: T, min: T) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd + std::fmt::Display + Copy,
        T::Err: std::fmt::Display,
    {
        let v = self.parse(name, default)?;
        if v < min {
            return Err(ConfigError::new(
                name,
                format!("must be at least {min}, got {v}"),
            ));
        }
        Ok(v)
    }

    /// A comma-separated list of web origins (`http(s)://host[:port]`, trailing `/` dropped), or
    /// `*` for any. Unset is the empty list.
    pub fn origins(&self, name: &str) -> Result<Vec<String>, ConfigError> {
        let origins: Vec<String> = self
            .get(name)
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
                    name,
                    format!("{origin:?} is neither * nor an http(s):// origin"),
                ));
            }
        }
        Ok(origins)
    }

    /// `true`/`false` (also `1`/`0`, `yes`/`no`, any case).
    pub fn bool(&self, name: &str, default: bool) -> Result<bool, ConfigError> {
        match self.get(name).map(|v| v.to_ascii_lowercase()) {
            None => Ok(default),
            Some(v) => match v.as_str() {
                "true" | "1" | "yes" => Ok(true),
                "false" | "0" | "no" => Ok(false),
                _ => Err(ConfigError::new(
                    name,
                    format!("must be true or false, got {v:?}"),
                )),
            },
        }
    }
}

/// Renders a configuration as the environment variables its `from_env` reads back.
pub trait ToEnv {
    fn to_env(&self) -> Vec<(&'static str, String)>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_variable() {
        let env = EnvSource::from_pairs(&[("N", "abc"), ("B", "maybe"), ("S", " 3 ")]);
        assert_eq!(env.parse::<u32>("N", 1).unwrap_err().var, "N");
        assert!(
            env.bool("B", true)
                .unwrap_err()
                .to_string()
                .starts_with("B: must be true or false")
        );
        assert_eq!(env.at_least::<u32>("S", 9, 1), Ok(3));
        assert_eq!(
            env.at_least::<u32>("S", 9, 5).unwrap_err().to_string(),
            "S: must be at least 5, got 3"
        );
        assert_eq!(env.string("ABSENT", "d"), "d");
    }
}
