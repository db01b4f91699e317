//! `Duration`: a Prometheus-style duration string ("30s", "1h30m", "30d") as it appears in YAML.
//!
//! The schema carries a pattern so the apiserver rejects "ten minutes" at `kubectl apply`; the
//! parsed value is used by the engine. Units: ms, s, m, h, d (24h), w (7d), y (365d).

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Pattern enforced by the CRD schema; kept in step with [`Duration::from_str`].
pub const DURATION_PATTERN: &str = "^([0-9]+(ms|s|m|h|d|w|y))+$";

/// The schema pattern of a duration that must not be zero (an interval, a window, a deadline):
/// [`DURATION_PATTERN`] with at least one non-zero number. Fields put it in place of the
/// general pattern with `#[schemars(regex(pattern = NON_ZERO_DURATION_PATTERN))]`.
pub const NON_ZERO_DURATION_PATTERN: &str =
    "^([0-9]+(ms|s|m|h|d|w|y))*[0-9]*[1-9][0-9]*(ms|s|m|h|d|w|y)([0-9]+(ms|s|m|h|d|w|y))*$";

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration(std::time::Duration);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid duration {input:?}: expected digits followed by ms, s, m, h, d, w or y, e.g. \"30s\" or \"1h30m\""
)]
pub struct DurationParseError {
    pub input: String,
}

impl Duration {
    pub const fn from_secs(secs: u64) -> Self {
        Self(std::time::Duration::from_secs(secs))
    }

    pub const fn from_millis(ms: u64) -> Self {
        Self(std::time::Duration::from_millis(ms))
    }

    pub const fn as_std(&self) -> std::time::Duration {
        self.0
    }

    pub fn as_secs_f64(&self) -> f64 {
        self.0.as_secs_f64()
    }

    pub fn is_zero(&self) -> bool {
        self.0.is_zero()
    }
}

impl From<std::time::Duration> for Duration {
    fn from(d: std::time::Duration) -> Self {
        Self(d)
    }
}

impl FromStr for Duration {
    type Err = DurationParseError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let err = || DurationParseError {
            input: input.to_string(),
        };
        let bytes = input.as_bytes();
        if bytes.is_empty() {
            return Err(err());
        }
        let mut total_ms: u64 = 0;
        let mut i = 0;
        while i < bytes.len() {
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            if start == i {
                return Err(err());
            }
            let number: u64 = input[start..i].parse().map_err(|_| err())?;
            let unit_start = i;
            while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
                i += 1;
            }
            let unit_ms: u64 = match &input[unit_start..i] {
                "ms" => 1,
                "s" => 1_000,
                "m" => 60_000,
                "h" => 3_600_000,
                "d" => 86_400_000,
                "w" => 604_800_000,
                "y" => 31_536_000_000,
                _ => return Err(err()),
            };
            total_ms = number
                .checked_mul(unit_ms)
                .and_then(|ms| total_ms.checked_add(ms))
                .ok_or_else(err)?;
        }
        Ok(Self(std::time::Duration::from_millis(total_ms)))
    }
}

impl fmt::Display for Duration {
    /// The shortest Prometheus form, so it can be substituted into PromQL range selectors.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ms = self.0.as_millis();
        if ms == 0 {
            return f.write_str("0s");
        }
        for (unit, size) in [
            ("d", 86_400_000u128),
            ("h", 3_600_000),
            ("m", 60_000),
            ("s", 1_000),
            ("ms", 1),
        ] {
            if ms >= size {
                write!(f, "{}{unit}", ms / size)?;
                ms %= size;
            }
        }
        Ok(())
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Duration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": DURATION_PATTERN,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prometheus_durations() {
        for (text, secs) in [
            ("30s", 30.0),
            ("2m", 120.0),
            ("1h30m", 5400.0),
            ("30d", 2_592_000.0),
            ("500ms", 0.5),
        ] {
            assert_eq!(
                text.parse::<Duration>().unwrap().as_secs_f64(),
                secs,
                "{text}"
            );
        }
    }

    #[test]
    fn rejects_free_text() {
        for text in ["", "ten minutes", "10", "m", "10 m", "-5s", "1.5h", "3x"] {
            assert!(
                text.parse::<Duration>().is_err(),
                "{text:?} should be rejected"
            );
        }
    }

    #[test]
    fn displays_shortest_form() {
        for (text, shown) in [
            ("90s", "1m30s"),
            ("120s", "2m"),
            ("1d", "1d"),
            ("0s", "0s"),
            ("1500ms", "1s500ms"),
        ] {
            assert_eq!(text.parse::<Duration>().unwrap().to_string(), shown);
        }
    }

    #[test]
    fn the_non_zero_pattern_accepts_exactly_the_non_zero_durations() {
        let any = regex::Regex::new(DURATION_PATTERN).unwrap();
        let non_zero = regex::Regex::new(NON_ZERO_DURATION_PATTERN).unwrap();
        let samples = [
            "1s", "10m", "1h30m", "2w", "500ms", "1y", "1m0s", "0s1m", "100s", "0s", "00m", "0s0m",
            "0ms", "000h0s",
        ];
        for text in samples {
            let parsed = text.parse::<Duration>().unwrap();
            assert!(any.is_match(text), "{text}");
            assert_eq!(
                non_zero.is_match(text),
                !parsed.as_std().is_zero(),
                "{text}"
            );
        }
        for bad in ["", "1", "s", "1.5s", "-1s", "1 s"] {
            assert!(!non_zero.is_match(bad), "{bad}");
        }
    }

    #[test]
    fn pattern_matches_parser_on_samples() {
        // The schema pattern is checked by the apiserver; keep it accepting what we parse.
        for ok in ["1s", "10m", "1h30m", "2w", "500ms", "1y"] {
            assert!(ok.parse::<Duration>().is_ok());
        }
    }
}
