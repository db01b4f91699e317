//! [`Recording`]: recorded raw series, checked on the way in so a replay never meets a sample
//! out of order, a duplicate, or a hole the 5 m lookback would turn into "no data".

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;

use jiff::Timestamp;

use super::error::{Location, RecordingError};
use super::{LOOKBACK_SECONDS, json, openmetrics};

/// Label name to value, the metric name included as `__name__`.
pub type Labels = BTreeMap<String, String>;

pub const METRIC_NAME: &str = "__name__";

/// Later than the year 5000 in seconds: such a timestamp was written in milliseconds.
const MAX_PLAUSIBLE_SECONDS: f64 = 1e11;

/// One recorded series: its labels and its samples, (unix seconds, value) in time order.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedSeries {
    pub labels: Labels,
    pub samples: Vec<(f64, f64)>,
}

impl RecordedSeries {
    pub fn name(&self) -> &str {
        self.labels.get(METRIC_NAME).map_or("", String::as_str)
    }
}

/// A series' labels as PromQL writes them: `name{a="b", c="d"}`.
pub struct SeriesDisplay<'a>(pub &'a Labels);

impl fmt::Display for SeriesDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(name) = self.0.get(METRIC_NAME) {
            f.write_str(name)?;
        }
        f.write_str("{")?;
        let mut first = true;
        for (name, value) in self.0.iter().filter(|(name, _)| *name != METRIC_NAME) {
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            write!(f, "{name}={value:?}")?;
        }
        f.write_str("}")
    }
}

/// Recorded raw series, as loaded from a file or built in code. Every series has at least one
/// sample; its samples are strictly increasing in time (at millisecond resolution, as
/// Prometheus stores them) with no hole longer than the lookback.
#[derive(Debug, Clone, PartialEq)]
pub struct Recording {
    series: Vec<RecordedSeries>,
}

impl Recording {
    /// Reads `path`, choosing the format by extension (`.json`; `.om`, `.txt`, `.prom`,
    /// `.openmetrics`) or, for any other name, by content. Errors name the file.
    pub fn load(path: &Path) -> Result<Recording, RecordingError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| RecordingError::Read {
            path: file.clone(),
            source,
        })?;
        let extension = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        let parsed = match extension.as_deref() {
            Some("json") => Self::parse_json(&text),
            Some("om" | "txt" | "prom" | "openmetrics") => Self::parse_openmetrics(&text),
            Some("yaml" | "yml") => Err(RecordingError::UnknownFormat {
                at: Location::default(),
            }),
            _ => Self::parse_sniffed(&text),
        };
        parsed.map_err(|e| e.in_file(&file))
    }

    /// Parses OpenMetrics text whose samples all carry a timestamp in seconds.
    pub fn parse_openmetrics(text: &str) -> Result<Recording, RecordingError> {
        openmetrics::parse(text)
    }

    /// Parses the JSON of Prometheus' `/api/v1/query_range`: the whole response, its `data`,
    /// or the `data.result` array.
    pub fn parse_json(text: &str) -> Result<Recording, RecordingError> {
        json::parse(text)
    }

    /// Checks series built in code as a loaded file would be checked.
    pub fn from_series(series: Vec<RecordedSeries>) -> Result<Recording, RecordingError> {
        let mut builder = RecordingBuilder::default();
        for (i, s) in series.into_iter().enumerate() {
            for &(t, v) in &s.samples {
                builder.push(&s.labels, t, v, || Location::entry(format!("series[{i}]")))?;
            }
        }
        builder.finish(Location::default())
    }

    fn parse_sniffed(text: &str) -> Result<Recording, RecordingError> {
        let start = text.trim_start();
        if start.is_empty() {
            return Err(RecordingError::Empty {
                at: Location::default(),
            });
        }
        if start.starts_with('{') || start.starts_with('[') {
            return Self::parse_json(text);
        }
        // A plain comment says nothing (YAML has them too): judge the first metadata or sample.
        let telling = start
            .lines()
            .map(str::trim)
            .find(|line| !line.is_empty() && !is_plain_comment(line))
            .unwrap_or_default();
        if openmetrics::looks_like_openmetrics(telling) && has_numeric_value(telling) {
            return Self::parse_openmetrics(text);
        }
        Err(RecordingError::UnknownFormat {
            at: Location::default(),
        })
    }

    pub fn series(&self) -> &[RecordedSeries] {
        &self.series
    }

    pub fn series_count(&self) -> usize {
        self.series.len()
    }

    /// The first and the last sample time over all series.
    pub fn span(&self) -> Option<(Timestamp, Timestamp)> {
        let first = self
            .series
            .iter()
            .filter_map(|s| s.samples.first().map(|p| p.0))
            .min_by(f64::total_cmp)?;
        let last = self
            .series
            .iter()
            .filter_map(|s| s.samples.last().map(|p| p.0))
            .max_by(f64::total_cmp)?;
        Some((seconds_to_timestamp(first)?, seconds_to_timestamp(last)?))
    }

    /// OpenMetrics text for `promtool tsdb create-blocks-from openmetrics`.
    pub fn to_openmetrics(&self) -> String {
        openmetrics::write(self)
    }
}

/// Unix seconds to milliseconds, the resolution at which Prometheus stores sample times.
pub fn seconds_to_millis(seconds: f64) -> i64 {
    (seconds * 1000.0).round() as i64
}

fn seconds_to_timestamp(seconds: f64) -> Option<Timestamp> {
    Timestamp::from_millisecond(seconds_to_millis(seconds)).ok()
}

/// Collects samples series by series (the same labels seen again continue a series), checking
/// order, duplicates and holes as each sample arrives so errors point at where it was read.
#[derive(Default)]
pub(super) struct RecordingBuilder {
    index: HashMap<Labels, usize>,
    series: Vec<RecordedSeries>,
    last_millis: Vec<i64>,
}

impl RecordingBuilder {
    pub(super) fn push(
        &mut self,
        labels: &Labels,
        seconds: f64,
        value: f64,
        at: impl Fn() -> Location,
    ) -> Result<(), RecordingError> {
        if !seconds.is_finite() {
            return Err(RecordingError::Syntax {
                at: at(),
                reason: format!("timestamp {seconds} is not a finite number of seconds"),
            });
        }
        if seconds.abs() >= MAX_PLAUSIBLE_SECONDS {
            return Err(RecordingError::Syntax {
                at: at(),
                reason: format!(
                    "timestamp {seconds} looks like milliseconds; recorded timestamps are unix seconds"
                ),
            });
        }
        let millis = seconds_to_millis(seconds);
        let Some(&i) = self.index.get(labels) else {
            self.index.insert(labels.clone(), self.series.len());
            self.series.push(RecordedSeries {
                labels: labels.clone(),
                samples: vec![(seconds, value)],
            });
            self.last_millis.push(millis);
            return Ok(());
        };
        let last = self.last_millis[i];
        let series = &mut self.series[i];
        let previous = series.samples.last().map_or(seconds, |p| p.0);
        let name = || SeriesDisplay(&series.labels).to_string();
        if millis == last {
            return Err(RecordingError::DuplicateTimestamp {
                at: at(),
                series: name(),
                timestamp: seconds,
            });
        }
        if millis < last {
            return Err(RecordingError::OutOfOrder {
                at: at(),
                series: name(),
                timestamp: seconds,
                previous,
            });
        }
        if millis.saturating_sub(last) > LOOKBACK_SECONDS * 1000 {
            return Err(RecordingError::Gap {
                at: at(),
                series: name(),
                from: previous,
                to: seconds,
            });
        }
        series.samples.push((seconds, value));
        self.last_millis[i] = millis;
        Ok(())
    }

    pub(super) fn finish(self, at_end: Location) -> Result<Recording, RecordingError> {
        if self.series.is_empty() {
            return Err(RecordingError::Empty { at: at_end });
        }
        Ok(Recording {
            series: self.series,
        })
    }
}

/// A `#` line that is not OpenMetrics metadata (`# TYPE`, `# HELP`, `# UNIT`, `# EOF`).
fn is_plain_comment(line: &str) -> bool {
    let Some(comment) = line.strip_prefix('#') else {
        return false;
    };
    let word = comment.split_whitespace().next().unwrap_or_default();
    !matches!(word, "TYPE" | "HELP" | "UNIT" | "EOF")
}

/// Whether a sample line's value parses as a number (`apiVersion: v1` looks like a metric name
/// followed by a value, since names may hold colons). Metadata lines pass.
fn has_numeric_value(line: &str) -> bool {
    if line.starts_with('#') {
        return true;
    }
    let after_labels = match line.rfind('}') {
        Some(end) => &line[end + 1..],
        None => line
            .split_once(char::is_whitespace)
            .map_or("", |(_, rest)| rest),
    };
    after_labels
        .split_whitespace()
        .next()
        .is_some_and(|value| value.parse::<f64>().is_ok())
}
