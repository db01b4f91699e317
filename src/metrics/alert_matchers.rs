//! Label matchers of an incident gate (`name=value`, `name!=value`, `name=~regex`,
//! `name!~regex`), rendered for the Alertmanager API v2 `filter` parameter and for a PromQL
//! selector on `ALERTS`, which share the syntax `name="value"`.

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Matcher {
    pub name: String,
    pub operator: &'static str,
    pub value: String,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a label matcher: {0:?}")]
pub struct MatcherError(String);

pub fn parse(text: &str) -> Result<Matcher, MatcherError> {
    let error = || MatcherError(text.to_string());
    let at = text.find(['=', '!']).ok_or_else(error)?;
    let name = text[..at].trim();
    let rest = &text[at..];
    let operator = ["=~", "!~", "!=", "="]
        .into_iter()
        .find(|op| rest.starts_with(op))
        .ok_or_else(error)?;
    let value = rest[operator.len()..].trim();
    let value = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value);
    let valid_name = !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if !valid_name {
        return Err(error());
    }
    if operator.ends_with('~') && regex::Regex::new(value).is_err() {
        return Err(error());
    }
    Ok(Matcher {
        name: name.to_string(),
        operator,
        value: value.to_string(),
    })
}

impl Matcher {
    /// `name="value"` with the value quoted as PromQL and Alertmanager read it.
    pub fn render(&self) -> String {
        let quoted = serde_json::to_string(&self.value).unwrap_or_default();
        format!("{}{}{quoted}", self.name, self.operator)
    }
}

/// The PromQL fallback: firing `ALERTS` series matching every matcher, one per alert.
pub fn alerts_query(matchers: &[Matcher]) -> String {
    let mut selectors = vec![r#"alertstate="firing""#.to_string()];
    selectors.extend(matchers.iter().map(Matcher::render));
    format!("ALERTS{{{}}}", selectors.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matchers_parse_and_render_as_promql() {
        let cases = [
            ("severity=critical", r#"severity="critical""#),
            ("service != \"checkout\"", r#"service!="checkout""#),
            ("alertname=~Checkout.*", r#"alertname=~"Checkout.*""#),
            ("team!~pay|risk", r#"team!~"pay|risk""#),
        ];
        for (text, rendered) in cases {
            assert_eq!(parse(text).unwrap().render(), rendered, "{text}");
        }
        for bad in ["", "severity", "=x", "1a=b", "a b=c", "x=~(", "a<b"] {
            assert!(parse(bad).is_err(), "{bad:?} should be refused");
        }
        let query = alerts_query(&[parse("service=checkout").unwrap()]);
        assert_eq!(query, r#"ALERTS{alertstate="firing",service="checkout"}"#);
    }
}
