//! The declaration of an environment variable: its name, what applies when it is unset, what it
//! means and whether its value is a secret. Every variable a component reads is declared once,
//! in [`super::vars`]; the component's `from_env` reads through the declaration, its `to_env`
//! and the operator render by the declaration's name, and `--help`, the configuration reference
//! and the CRD's defaults are generated from it. Tests compare these with the declarations.
//!
//! The form is a small declarative macro ([`declare!`]) over `const` items rather than clap's
//! `env` attributes or a runtime table: the variables are read by library code (the operator
//! reads them back through the components' own parsers, tests read them from maps), not only by
//! the binary's argument parser, so the declarations must live in the model crate, next to
//! `from_env`. The macro makes the constant's identifier the variable's name and its doc comment
//! the meaning, so neither is written twice, and a misspelt reference is a compile error.

/// What a component does when a variable is unset or blank.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unset {
    /// Nothing: the setting is off or absent.
    Empty,
    /// This value, exactly as a user would write it.
    Value(&'static str),
    /// A rule that depends on other variables or the environment, as a phrase.
    Rule(&'static str),
}

/// Whether a value may be shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secrecy {
    /// Ordinary configuration: rendered into ConfigMaps, shown in logs.
    Plain,
    /// Not secret in itself (a user name) but kept in a Secret next to its password: the
    /// operator passes it as a `secretKeyRef` variable, never through a ConfigMap.
    Credential,
    /// A password, key or token: read only through [`super::EnvSource::secret`] into a
    /// redacting type, never logged, never in a ConfigMap.
    Secret,
}

/// One environment variable.
#[derive(Debug, PartialEq, Eq)]
pub struct Var {
    pub name: &'static str,
    pub unset: Unset,
    /// One or a few sentences, as shown in `--help` and the configuration reference.
    pub meaning: &'static str,
    pub secrecy: Secrecy,
}

impl Var {
    /// The value used when the variable is unset, when it is a plain value.
    pub fn default_value(&self) -> Option<&'static str> {
        match self.unset {
            Unset::Value(v) => Some(v),
            Unset::Empty | Unset::Rule(_) => None,
        }
    }

    /// The declared default parsed as `T`. Panics when it does not parse: declarations are
    /// constants, and a test parses every one of them.
    pub fn typed_default<T: std::str::FromStr>(&self) -> T {
        match self.default_value().map(str::parse) {
            Some(Ok(v)) => v,
            _ => panic!(
                "{} declares no default readable as the type asked",
                self.name
            ),
        }
    }

    /// The default as shown to people: the value, the rule, or `unset`.
    pub fn default_phrase(&self) -> String {
        match self.unset {
            Unset::Empty => "unset".to_owned(),
            Unset::Value("") => "empty".to_owned(),
            Unset::Value(v) => v.to_owned(),
            Unset::Rule(r) => r.to_owned(),
        }
    }

    /// The meaning without the leading space each doc-comment line carries.
    pub fn meaning(&self) -> String {
        self.meaning
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Declares variables as `pub const` items: `NAME = unset, secrecy;` after a doc comment (the
/// meaning); `IDENT as "NAME"` when two components give one name different defaults.
macro_rules! declare {
    ($( $(#[doc = $doc:literal])+ $ident:ident $(as $name:literal)? = $unset:expr, $secrecy:ident; )+) => {
        $(
            $(#[doc = $doc])+
            pub const $ident: Var = Var {
                name: declare!(@name $ident $($name)?),
                unset: $unset,
                meaning: concat!($($doc),+),
                secrecy: Secrecy::$secrecy,
            };
        )+
    };
    (@name $ident:ident) => { stringify!($ident) };
    (@name $ident:ident $name:literal) => { $name };
}
pub(crate) use declare;

/// Variables that belong together (Kafka, Elasticsearch, one component's own).
#[derive(Debug)]
pub struct Group {
    pub title: &'static str,
    pub vars: &'static [&'static Var],
}

/// Everything one `panopticon` subcommand reads.
#[derive(Debug)]
pub struct Reads {
    /// The subcommand.
    pub command: &'static str,
    pub groups: &'static [&'static Group],
}

impl Reads {
    pub fn vars(&self) -> impl Iterator<Item = &'static Var> + '_ {
        self.groups.iter().flat_map(|g| g.vars.iter().copied())
    }

    /// The declaration of `name`, if this subcommand reads it.
    pub fn find(&self, name: &str) -> Option<&'static Var> {
        self.vars().find(|v| v.name == name)
    }

    /// The text `--help` shows after the flags: every variable, its default and meaning.
    pub fn help(&self) -> String {
        let mut out = String::from(
            "Environment variables (a blank value counts as unset; secrets are never logged):\n",
        );
        for group in self.groups {
            out.push_str(&format!("\n{}:\n", group.title));
            for var in group.vars {
                let secret = match var.secrecy {
                    Secrecy::Secret => ", secret",
                    Secrecy::Credential | Secrecy::Plain => "",
                };
                out.push_str(&format!(
                    "  {} [default: {}{secret}]\n{}\n",
                    var.name,
                    var.default_phrase(),
                    wrap(&var.meaning(), 6, 96)
                ));
            }
        }
        out
    }
}

/// `text` broken into lines of at most `width` characters, each indented by `indent`.
fn wrap(text: &str, indent: usize, width: usize) -> String {
    let pad = " ".repeat(indent);
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && indent + line.len() + 1 + word.len() > width {
            lines.push(format!("{pad}{line}"));
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(format!("{pad}{line}"));
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    declare! {
        /// Documents per request,
        /// at most a million.
        EXAMPLE_SIZE = Unset::Value("5000"), Plain;
        /// The client id.
        EXAMPLE_ID as "EXAMPLE_CLIENT_ID" = Unset::Empty, Secret;
    }

    #[test]
    fn the_identifier_is_the_name_and_the_doc_the_meaning() {
        assert_eq!(EXAMPLE_SIZE.name, "EXAMPLE_SIZE");
        assert_eq!(
            EXAMPLE_SIZE.meaning(),
            "Documents per request, at most a million."
        );
        assert_eq!(EXAMPLE_SIZE.typed_default::<u32>(), 5000);
        assert_eq!(EXAMPLE_ID.name, "EXAMPLE_CLIENT_ID");
        assert_eq!(EXAMPLE_ID.default_phrase(), "unset");
    }

    #[test]
    fn help_lists_name_default_and_meaning() {
        static G: Group = Group {
            title: "Example",
            vars: &[&EXAMPLE_SIZE, &EXAMPLE_ID],
        };
        static READS: Reads = Reads {
            command: "example",
            groups: &[&G],
        };
        let help = READS.help();
        assert!(help.contains("  EXAMPLE_SIZE [default: 5000]\n      Documents per request"));
        assert!(help.contains("EXAMPLE_CLIENT_ID [default: unset, secret]"));
        assert!(help.lines().all(|l| l.len() <= 96), "{help}");
    }
}
