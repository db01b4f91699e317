//! What can be wrong with a recording or with a query asked of it.

use std::fmt;

use super::LOOKBACK_SECONDS;

/// Where a problem was found: the file (when the recording came from one) and the line (when
/// the format has lines that mean something). Displays as a prefix, `"metrics.om line 812: "`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Location {
    pub file: Option<String>,
    pub line: Option<usize>,
    /// For formats without meaningful lines (JSON): which entry, e.g. `result[3]`.
    pub entry: Option<String>,
}

impl Location {
    pub fn line(line: usize) -> Self {
        Self {
            line: Some(line),
            ..Self::default()
        }
    }

    pub fn entry(entry: impl Into<String>) -> Self {
        Self {
            entry: Some(entry.into()),
            ..Self::default()
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(file) = &self.file {
            parts.push(file.clone());
        }
        if let Some(line) = self.line {
            parts.push(format!("line {line}"));
        }
        if let Some(entry) = &self.entry {
            parts.push(entry.clone());
        }
        if parts.is_empty() {
            Ok(())
        } else {
            write!(f, "{}: ", parts.join(" "))
        }
    }
}

/// A timestamp in unix seconds, shown as the number and as a UTC time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SecondsDisplay(pub f64);

impl fmt::Display for SecondsDisplay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let millis = (self.0 * 1000.0).round();
        if let Ok(time) = jiff::Timestamp::from_millisecond(millis as i64) {
            write!(f, " ({time})")?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    #[error("cannot read recorded metrics from {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "{at}unknown format for recorded metrics: expected OpenMetrics text with timestamps \
         (.om, .txt, .prom; `# TYPE`, `name{{labels}} value timestamp`, `# EOF`) or the JSON of \
         Prometheus' /api/v1/query_range (.json; `{{\"data\": {{\"result\": [{{\"metric\": ..., \"values\": ...}}]}}}}`)"
    )]
    UnknownFormat { at: Location },
    #[error("{at}no samples: the recording is empty")]
    Empty { at: Location },
    #[error("{at}{reason}")]
    Syntax { at: Location, reason: String },
    #[error(
        "{at}timestamp {timestamp} is not after {previous} for {series}: samples of a series must be in time order"
    )]
    OutOfOrder {
        at: Location,
        series: String,
        timestamp: f64,
        previous: f64,
    },
    #[error("{at}duplicate timestamp {timestamp} for {series}")]
    DuplicateTimestamp {
        at: Location,
        series: String,
        timestamp: f64,
    },
    #[error(
        "{at}gap in {series}: no sample from {} to {}, {seconds} s, longer than the {LOOKBACK_SECONDS} s lookback; \
         record without holes or split the recording",
        SecondsDisplay(*.from), SecondsDisplay(*.to), seconds = .to - .from
    )]
    Gap {
        at: Location,
        series: String,
        from: f64,
        to: f64,
    },
    #[error("query {query:?} does not parse: {reason}")]
    InvalidQuery { query: String, reason: String },
    #[error(
        "query {query:?}: {construct} is not supported in replay from a file; use --prometheus"
    )]
    Unsupported { query: String, construct: String },
    #[error("query {query:?}: selector {selector} matches no recorded series")]
    NoMatchingSeries { query: String, selector: String },
}

impl RecordingError {
    /// The same error, said to be in `file`.
    pub(crate) fn in_file(mut self, file: &str) -> Self {
        match &mut self {
            Self::UnknownFormat { at }
            | Self::Empty { at }
            | Self::Syntax { at, .. }
            | Self::OutOfOrder { at, .. }
            | Self::DuplicateTimestamp { at, .. }
            | Self::Gap { at, .. } => at.file = Some(file.to_string()),
            Self::Read { .. }
            | Self::InvalidQuery { .. }
            | Self::Unsupported { .. }
            | Self::NoMatchingSeries { .. } => {}
        }
        self
    }

    /// A static label for metrics and event reasons.
    pub fn category(&self) -> &'static str {
        match self {
            Self::Read { .. } => "read",
            Self::UnknownFormat { .. } => "unknown_format",
            Self::Empty { .. } => "empty",
            Self::Syntax { .. } => "syntax",
            Self::OutOfOrder { .. } => "out_of_order",
            Self::DuplicateTimestamp { .. } => "duplicate_timestamp",
            Self::Gap { .. } => "gap",
            Self::InvalidQuery { .. } => "invalid_query",
            Self::Unsupported { .. } => "unsupported",
            Self::NoMatchingSeries { .. } => "no_matching_series",
        }
    }
}
