/// Normalises an environment name, at ingest and in query filters alike, so that stored data and
/// filters agree: trimmed, lower-cased, and the usual aliases folded onto one name.
///
/// | given (any case)                 | stored        |
/// |----------------------------------|---------------|
/// | `prod`, `prd`, `production`      | `production`  |
/// | `dev`, `develop`, `development`  | `development` |
/// | `stage`, `stg`, `staging`        | `staging`     |
/// | `test`, `testing`                | `test`        |
/// | `qa`                             | `qa`          |
/// | anything else                    | itself, trimmed and lower-cased |
///
/// ```
/// assert_eq!(panopticon_model::normalize_environment(" Prod "), "production");
/// assert_eq!(panopticon_model::normalize_environment("Develop"), "development");
/// assert_eq!(panopticon_model::normalize_environment("eu-West"), "eu-west");
/// ```
pub fn normalize_environment(raw: &str) -> String {
    let lower = raw.trim().to_lowercase();
    let canonical = match lower.as_str() {
        "prod" | "prd" | "production" => "production",
        "dev" | "develop" | "development" => "development",
        "stage" | "stg" | "staging" => "staging",
        "test" | "testing" => "test",
        _ => return lower,
    };
    canonical.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn aliases_fold_onto_canonical_names() {
        for (raw, want) in [
            ("prod", "production"),
            ("PROD", "production"),
            ("production", "production"),
            ("prd", "production"),
            ("dev", "development"),
            ("Develop", "development"),
            ("stage", "staging"),
            ("Staging", "staging"),
            ("stg", "staging"),
            ("qa", "qa"),
            ("testing", "test"),
            ("  local ", "local"),
            ("Local", "local"),
        ] {
            assert_eq!(normalize_environment(raw), want, "{raw:?}");
        }
    }

    proptest! {
        #[test]
        fn normalising_is_idempotent(raw in "\\PC{0,20}") {
            let once = normalize_environment(&raw);
            prop_assert_eq!(normalize_environment(&once), once.clone());
        }

        #[test]
        fn case_and_surrounding_space_never_matter(raw in "[a-zA-Z-]{1,12}", pad in " {0,3}") {
            let padded = format!("{pad}{}{pad}", raw.to_uppercase());
            prop_assert_eq!(normalize_environment(&padded), normalize_environment(&raw));
        }
    }
}
