//! OpenMetrics text with a timestamp (unix seconds) on every sample: the input of
//! `promtool tsdb create-blocks-from openmetrics`, read and written.
//!
//! Reading is lenient where it costs nothing (blank lines, comments other than `# TYPE`,
//! `# HELP`, `# UNIT`, a missing `# EOF`, exemplars are ignored) and strict where a replay would
//! silently go wrong (no timestamp, timestamps in milliseconds, unparsable values).

use std::collections::BTreeMap;
use std::fmt::Write;

use super::error::{Location, RecordingError};
use super::recording::{Labels, METRIC_NAME, Recording, RecordingBuilder, seconds_to_millis};

const METRIC_TYPES: &[&str] = &[
    "counter",
    "gauge",
    "histogram",
    "gaugehistogram",
    "summary",
    "info",
    "stateset",
    "unknown",
    "untyped",
];

pub(super) fn parse(text: &str) -> Result<Recording, RecordingError> {
    let mut builder = RecordingBuilder::default();
    let mut eof_line = None;
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let syntax = |reason: String| RecordingError::Syntax {
            at: Location::line(number),
            reason,
        };
        if line.trim().is_empty() {
            continue;
        }
        if let Some(eof) = eof_line {
            return Err(syntax(format!("content after `# EOF` (line {eof})")));
        }
        if let Some(comment) = line.strip_prefix('#') {
            if comment.trim() == "EOF" {
                eof_line = Some(number);
            } else {
                check_metadata(comment).map_err(syntax)?;
            }
            continue;
        }
        let sample = parse_sample(line).map_err(syntax)?;
        builder.push(&sample.labels, sample.seconds, sample.value, || {
            Location::line(number)
        })?;
    }
    builder.finish(Location::default())
}

/// Whether `line` could start an OpenMetrics file: a comment or `name`, `name{`, `name value`.
pub(super) fn looks_like_openmetrics(line: &str) -> bool {
    if line.starts_with('#') {
        return true;
    }
    let (name, rest) = split_name(line);
    !name.is_empty() && (rest.starts_with('{') || rest.starts_with(' '))
}

fn check_metadata(comment: &str) -> Result<(), String> {
    let mut words = comment.split_whitespace();
    match words.next() {
        Some("TYPE") => {
            let (Some(name), Some(kind)) = (words.next(), words.next()) else {
                return Err("`# TYPE` needs a metric name and a type".to_string());
            };
            check_metric_name(name)?;
            if !METRIC_TYPES.contains(&kind) {
                return Err(format!(
                    "unknown metric type {kind:?} in `# TYPE`; expected one of {}",
                    METRIC_TYPES.join(", ")
                ));
            }
            Ok(())
        }
        Some("HELP" | "UNIT") => match words.next() {
            Some(name) => check_metric_name(name),
            None => Err("`# HELP` and `# UNIT` need a metric name".to_string()),
        },
        _ => Ok(()),
    }
}

struct Sample {
    labels: Labels,
    value: f64,
    seconds: f64,
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let (name, rest) = split_name(line);
    check_metric_name(name)?;
    let mut labels = Labels::new();
    labels.insert(METRIC_NAME.to_string(), name.to_string());
    let rest = match rest.strip_prefix('{') {
        Some(inner) => parse_labels(inner, &mut labels)?,
        None => rest,
    };
    // An exemplar follows ` # `; it is not part of the series.
    let rest = rest.split(" # ").next().unwrap_or_default();
    let mut fields = rest.split_whitespace();
    let value = fields
        .next()
        .ok_or_else(|| format!("sample of {name} has no value"))?;
    let value = parse_value(value).ok_or_else(|| format!("value {value:?} is not a number"))?;
    let Some(timestamp) = fields.next() else {
        return Err(format!(
            "sample of {name} has no timestamp; a recording needs one (unix seconds) on every sample"
        ));
    };
    let seconds: f64 = timestamp
        .parse()
        .map_err(|_| format!("timestamp {timestamp:?} is not a number of seconds"))?;
    if let Some(extra) = fields.next() {
        return Err(format!("unexpected {extra:?} after the timestamp"));
    }
    Ok(Sample {
        labels,
        value,
        seconds,
    })
}

fn split_name(line: &str) -> (&str, &str) {
    let end = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(line.len());
    line.split_at(end)
}

fn check_metric_name(name: &str) -> Result<(), String> {
    let valid = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
    if valid {
        Ok(())
    } else {
        Err(format!("{name:?} is not a valid metric name"))
    }
}

fn is_label_name(name: &str) -> bool {
    name.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Parses `a="x",b="y"}` into `labels`; returns what follows the closing brace.
fn parse_labels<'a>(mut rest: &'a str, labels: &mut Labels) -> Result<&'a str, String> {
    loop {
        rest = rest.trim_start();
        if let Some(after) = rest.strip_prefix('}') {
            return Ok(after);
        }
        let Some((name, after_name)) = rest.split_once('=') else {
            return Err("unterminated label set: expected `name=\"value\"` or `}`".to_string());
        };
        let name = name.trim();
        if !is_label_name(name) {
            return Err(format!("{name:?} is not a valid label name"));
        }
        let Some(quoted) = after_name.trim_start().strip_prefix('"') else {
            return Err(format!(
                "the value of label {name} must be in double quotes"
            ));
        };
        let (value, after_value) = unescape_until_quote(quoted)
            .ok_or_else(|| format!("the value of label {name} has no closing quote"))?;
        if labels.insert(name.to_string(), value).is_some() {
            return Err(format!("label {name} appears twice"));
        }
        rest = after_value.trim_start();
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
}

/// The label value up to the closing quote, with `\\`, `\"` and `\n` unescaped.
fn unescape_until_quote(text: &str) -> Option<(String, &str)> {
    let mut value = String::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((value, &text[i + 1..])),
            '\\' => match chars.next()?.1 {
                'n' => value.push('\n'),
                other => value.push(other),
            },
            _ => value.push(c),
        }
    }
    None
}

/// A sample value as Prometheus writes it (`NaN`, `+Inf`, `-Inf`) or any float.
pub(super) fn parse_value(text: &str) -> Option<f64> {
    match text {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => text.parse().ok(),
    }
}

fn format_value(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_string()
    } else if value == f64::INFINITY {
        "+Inf".to_string()
    } else if value == f64::NEG_INFINITY {
        "-Inf".to_string()
    } else {
        // Debug is the shortest text that reads back to the same f64.
        format!("{value:?}")
    }
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A metric family as OpenMetrics groups series: counters under the name without `_total`,
/// histograms' `_bucket`, `_sum` and `_count` under their base name; anything else `unknown`.
fn family_of(recording: &Recording) -> BTreeMap<(String, &'static str), Vec<usize>> {
    let histograms: Vec<&str> = recording
        .series()
        .iter()
        .filter(|s| s.labels.contains_key("le"))
        .filter_map(|s| s.name().strip_suffix("_bucket"))
        .collect();
    let mut families: BTreeMap<(String, &'static str), Vec<usize>> = BTreeMap::new();
    for (i, series) in recording.series().iter().enumerate() {
        let name = series.name();
        let histogram = ["_bucket", "_sum", "_count"]
            .iter()
            .filter_map(|suffix| name.strip_suffix(suffix))
            .find(|base| histograms.contains(base));
        let key = match (histogram, name.strip_suffix("_total")) {
            (Some(base), _) => (base.to_string(), "histogram"),
            (None, Some(base)) if !base.is_empty() => (base.to_string(), "counter"),
            _ => (name.to_string(), "unknown"),
        };
        families.entry(key).or_default().push(i);
    }
    families
}

pub(super) fn write(recording: &Recording) -> String {
    let mut out = String::new();
    for ((family, kind), members) in family_of(recording) {
        let _ = writeln!(out, "# TYPE {family} {kind}");
        for i in members {
            let series = &recording.series()[i];
            let mut head = series.name().to_string();
            let labels: Vec<String> = series
                .labels
                .iter()
                .filter(|(name, _)| *name != METRIC_NAME)
                .map(|(name, value)| format!("{name}=\"{}\"", escape(value)))
                .collect();
            if !labels.is_empty() {
                let _ = write!(head, "{{{}}}", labels.join(","));
            }
            for &(seconds, value) in &series.samples {
                let seconds = seconds_to_millis(seconds) as f64 / 1000.0;
                let _ = writeln!(out, "{head} {} {seconds}", format_value(value));
            }
        }
    }
    out.push_str("# EOF\n");
    out
}
