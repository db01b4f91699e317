//! PromQL templates: `{{name}}` placeholders in the queries of the CRDs.
//!
//! Rendering is plain substitution: values are inserted as they are, without quoting, so
//! `track="{{track}}"` needs the quotes in the template. Only the names in [`KNOWN_VARIABLES`]
//! exist; any other name is a spec error, reported with the name and the query.

use std::collections::BTreeMap;

/// Every placeholder name a query may use.
pub const KNOWN_VARIABLES: &[&str] = &[
    "namespace",
    "target",
    "service",
    "interval",
    "track",
    "canaryRevision",
    "stableRevision",
    "podTemplateHash",
    "window",
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error(
        "unknown template variable {{{{{name}}}}} in query {query:?}; known variables: {}",
        KNOWN_VARIABLES.join(", ")
    )]
    UnknownVariable { name: String, query: String },
    #[error("template variable {{{{{name}}}}} has no value here, in query {query:?}")]
    MissingValue { name: String, query: String },
    #[error("unclosed \"{{{{\" at byte {position} in query {query:?}")]
    Unclosed { position: usize, query: String },
    #[error("PromQL does not parse: {message} (query {query:?})")]
    InvalidPromql { message: String, query: String },
}

impl TemplateError {
    /// A static label for operator metrics and event reasons.
    pub fn category(&self) -> &'static str {
        match self {
            Self::UnknownVariable { .. } => "unknown_variable",
            Self::MissingValue { .. } => "missing_value",
            Self::Unclosed { .. } => "unclosed_braces",
            Self::InvalidPromql { .. } => "invalid_promql",
        }
    }
}

/// The values the placeholders of one query expand to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TemplateVars(BTreeMap<String, String>);

impl TemplateVars {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn set(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.0.insert(name.into(), value.into());
        self
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// Plausible values for every known name, for checking that a template parses.
    pub fn placeholders() -> Self {
        Self::new()
            .set("namespace", "default")
            .set("target", "app")
            .set("service", "app")
            .set("interval", "30s")
            .set("track", "canary")
            .set("canaryRevision", "7f9c6d5a")
            .set("stableRevision", "6d8f7c9b")
            .set("podTemplateHash", "7f9c6d5a")
            .set("window", "30s")
    }
}

/// Replaces every `{{name}}` (spaces inside the braces allowed) by its value in `vars`.
pub fn render(query: &str, vars: &TemplateVars) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(query.len());
    let mut rest = query;
    while let Some(open) = rest.find("{{") {
        let position = query.len() - rest.len() + open;
        let unclosed = || TemplateError::Unclosed {
            position,
            query: query.to_string(),
        };
        let after = &rest[open + 2..];
        let close = after.find("}}").ok_or_else(unclosed)?;
        let inner = &after[..close];
        // A brace or line break before the closing braces means this one was never closed.
        if inner.contains(['{', '}', '\n']) {
            return Err(unclosed());
        }
        let name = inner.trim();
        if !KNOWN_VARIABLES.contains(&name) {
            return Err(TemplateError::UnknownVariable {
                name: name.to_string(),
                query: query.to_string(),
            });
        }
        let value = vars.get(name).ok_or_else(|| TemplateError::MissingValue {
            name: name.to_string(),
            query: query.to_string(),
        })?;
        out.push_str(&rest[..open]);
        out.push_str(value);
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Checks that `query` renders and parses as PromQL with plausible values for every name.
pub fn validate_promql(query: &str) -> Result<(), TemplateError> {
    let rendered = render(query, &TemplateVars::placeholders())?;
    promql_parser::parser::parse(&rendered)
        .map(|_| ())
        .map_err(|message| TemplateError::InvalidPromql {
            message: message.trim().to_string(),
            query: query.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> TemplateVars {
        TemplateVars::new()
            .set("namespace", "shop")
            .set("track", "canary")
            .set("interval", "1m")
    }

    #[test]
    fn renders_every_placeholder() {
        let query = r#"sum(rate(x{namespace="{{namespace}}",track="{{track}}"}[{{interval}}]))"#;
        assert_eq!(
            render(query, &vars()).unwrap(),
            r#"sum(rate(x{namespace="shop",track="canary"}[1m]))"#
        );
    }

    #[test]
    fn allows_spaces_inside_the_braces() {
        assert_eq!(
            render("a{{ track }}b{{track  }}", &vars()).unwrap(),
            "acanarybcanary"
        );
    }

    #[test]
    fn leaves_a_query_without_placeholders_alone() {
        let query = r#"sum(rate(x{a="b"}[5m]))"#;
        assert_eq!(render(query, &TemplateVars::new()).unwrap(), query);
    }

    #[test]
    fn rejects_an_unknown_name() {
        let err = render("x{a=\"{{foo}}\"}", &vars()).unwrap_err();
        assert!(matches!(&err, TemplateError::UnknownVariable { name, .. } if name == "foo"));
        assert!(
            err.to_string()
                .starts_with("unknown template variable {{foo}} in query")
        );
    }

    #[test]
    fn rejects_a_known_name_without_value() {
        let err = render("rate(x[{{window}}])", &vars()).unwrap_err();
        assert!(matches!(&err, TemplateError::MissingValue { name, .. } if name == "window"));
        assert!(err.to_string().contains("{{window}}"));
    }

    #[test]
    fn rejects_unclosed_braces() {
        for query in [
            "rate(x[{{interval])",
            "rate(x[{{interval]) + {{track}}",
            "a {{ track } b",
        ] {
            let err = render(query, &vars()).unwrap_err();
            assert!(
                matches!(err, TemplateError::Unclosed { position, .. } if position == query.find("{{").unwrap()),
                "{query}: {err}"
            );
        }
    }

    #[test]
    fn accepts_valid_promql_templates() {
        for query in [
            "sum(rate(x[{{interval}}]))",
            r#"rate(x{a="{{track}}"}[{{interval}}])"#,
            r#"sum(rate(good{ns="{{namespace}}"}[{{window}}])) / sum(rate(total[{{ window }}]))"#,
            r#"sum(up{pod_template_hash="{{podTemplateHash}}",rev!="{{stableRevision}}"})"#,
        ] {
            assert_eq!(validate_promql(query), Ok(()), "{query}");
        }
    }

    #[test]
    fn rejects_invalid_promql_with_the_parser_message() {
        let err = validate_promql("sum(rate(x[5m])").unwrap_err();
        assert!(matches!(err, TemplateError::InvalidPromql { .. }));
        assert!(
            err.to_string().starts_with("PromQL does not parse: "),
            "{err}"
        );
    }

    #[test]
    fn validation_reports_template_errors_first() {
        let err = validate_promql("rate(x[{{nope}}])").unwrap_err();
        assert!(matches!(err, TemplateError::UnknownVariable { .. }));
    }
}
