//! The JSON of Prometheus' `/api/v1/query_range`: the whole response, its `data` object, or
//! the `data.result` array of `{"metric": {...}, "values": [[t, "v"], ...]}`; an instant
//! vector's `"value": [t, "v"]` counts as one sample. `curl .../query_range` output, e.g. of
//! `{__name__=~"http_.+"}`, can be loaded as it is.

use serde_json::{Map, Value};

use super::error::{Location, RecordingError};
use super::openmetrics::parse_value;
use super::recording::{Labels, Recording, RecordingBuilder};

pub(super) fn parse(text: &str) -> Result<Recording, RecordingError> {
    if text.trim().is_empty() {
        return Err(RecordingError::Empty {
            at: Location::default(),
        });
    }
    let document: Value = serde_json::from_str(text).map_err(|e| RecordingError::Syntax {
        at: Location::line(e.line()),
        reason: format!("invalid JSON: {e}"),
    })?;
    let result = result_array(&document)?;
    let mut builder = RecordingBuilder::default();
    for (i, entry) in result.iter().enumerate() {
        let at = |what: &str| Location::entry(format!("result[{i}]{what}"));
        let entry = entry
            .as_object()
            .ok_or_else(|| shape(at(""), "is not an object"))?;
        let labels = labels(entry.get("metric"), || at(".metric"))?;
        let samples: Vec<&Value> = match (entry.get("values"), entry.get("value")) {
            (Some(Value::Array(values)), _) => values.iter().collect(),
            (None, Some(one)) => vec![one],
            _ => {
                return Err(shape(
                    at(""),
                    "has no \"values\" array (expected a query_range matrix)",
                ));
            }
        };
        for (j, sample) in samples.into_iter().enumerate() {
            let at = || at(&format!(".values[{j}]"));
            let (seconds, value) = sample_pair(sample).map_err(|reason| shape(at(), &reason))?;
            builder.push(&labels, seconds, value, at)?;
        }
    }
    builder.finish(Location::default())
}

fn shape(at: Location, reason: &str) -> RecordingError {
    RecordingError::Syntax {
        at,
        reason: reason.to_string(),
    }
}

/// The `result` array, wherever the document keeps it.
fn result_array(document: &Value) -> Result<&Vec<Value>, RecordingError> {
    let top = Location::default();
    match document {
        Value::Array(result) => Ok(result),
        Value::Object(object) => {
            if let Some(status) = object.get("status").and_then(Value::as_str)
                && status != "success"
            {
                let error = object.get("error").and_then(Value::as_str).unwrap_or("");
                return Err(shape(
                    top,
                    &format!("the saved Prometheus response is an error ({status}): {error}"),
                ));
            }
            let data = object.get("data").unwrap_or(document);
            if let Some(kind) = data.get("resultType").and_then(Value::as_str)
                && kind != "matrix"
                && kind != "vector"
            {
                return Err(shape(
                    top,
                    &format!("resultType is {kind:?}; expected \"matrix\" (a query_range answer)"),
                ));
            }
            match data.get("result") {
                Some(Value::Array(result)) => Ok(result),
                _ => Err(RecordingError::UnknownFormat { at: top }),
            }
        }
        _ => Err(RecordingError::UnknownFormat { at: top }),
    }
}

fn labels(metric: Option<&Value>, at: impl Fn() -> Location) -> Result<Labels, RecordingError> {
    let empty = Map::new();
    let metric = match metric {
        None => &empty,
        Some(Value::Object(metric)) => metric,
        Some(_) => return Err(shape(at(), "is not an object of label names to values")),
    };
    metric
        .iter()
        .map(|(name, value)| match value {
            Value::String(value) => Ok((name.clone(), value.clone())),
            _ => Err(shape(at(), &format!("label {name} is not a string"))),
        })
        .collect()
}

/// `[1700000000.5, "1.25"]` (values may also be plain numbers, timestamps strings).
fn sample_pair(sample: &Value) -> Result<(f64, f64), String> {
    let Some([time, value]) = sample.as_array().map(Vec::as_slice) else {
        return Err("is not a [timestamp, \"value\"] pair".to_string());
    };
    let seconds = number(time).ok_or_else(|| format!("timestamp {time} is not a number"))?;
    let value = number(value).ok_or_else(|| format!("value {value} is not a number"))?;
    Ok((seconds, value))
}

fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(text) => parse_value(text),
        _ => None,
    }
}
