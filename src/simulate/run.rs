//! One `sluice simulate` invocation: check the inputs, open the metrics, replay every variant,
//! report. Everything that can be wrong with the input is found before the first replay.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;

use super::error::SimulateError;
use super::inputs::{Documents, RawDocuments};
use super::queries::rendered_queries;
use super::recorded::{RecordedMetrics, Recording};
use super::replay::{self, Replay};
use super::report;
use super::what_if::{self, Setting};
use crate::metrics::{MetricsSource, PrometheusSource};

/// Range queries over weeks of history take longer than the operator's 5 s.
const PROMETHEUS_TIMEOUT: Duration = Duration::from_secs(60);

/// Exit code of a replay that promoted the canary.
pub const EXIT_PROMOTED: u8 = 0;
/// Exit code of a replay that rolled back, froze or was held to the end.
pub const EXIT_NOT_PROMOTED: u8 = 1;
/// Exit code of bad input.
pub const EXIT_BAD_INPUT: u8 = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

/// What the command line asked for.
#[derive(Clone, Debug)]
pub struct Request {
    pub files: Vec<PathBuf>,
    pub metrics: Option<PathBuf>,
    pub prometheus: Option<String>,
    pub start: Option<String>,
    pub end: Option<String>,
    pub settings: Vec<String>,
    pub format: Format,
}

/// What to print and the exit code.
#[derive(Clone, Debug, PartialEq)]
pub struct Response {
    pub output: String,
    pub exit_code: u8,
}

/// Where the replay's numbers come from.
enum Metrics {
    Recorded(RecordedMetrics),
    Prometheus(PrometheusSource),
}

pub async fn simulate(request: &Request) -> Result<Response, SimulateError> {
    if request.files.is_empty() {
        return Err(arguments(
            "give the CanaryRollout (and its policies) with -f FILE",
        ));
    }
    let start = request
        .start
        .as_deref()
        .map(|t| parse_time("--start", t))
        .transpose()?;
    let end = request
        .end
        .as_deref()
        .map(|t| parse_time("--end", t))
        .transpose()?;
    let (metrics, span) = open_metrics(request, start, end)?;
    let (start, end) = span;
    if start >= end {
        return Err(arguments(&format!(
            "--start {start} is not before --end {end}"
        )));
    }

    let raw = RawDocuments::read(&request.files)?;
    let settings: Vec<Setting> = request
        .settings
        .iter()
        .map(|s| s.parse())
        .collect::<Result<_, _>>()?;
    let variants = what_if::variants(&settings);
    let runs: Vec<(String, Documents)> = variants
        .iter()
        .map(|variant| {
            Ok((
                what_if::label(variant),
                what_if::documents_for(&raw, variant)?,
            ))
        })
        .collect::<Result<_, SimulateError>>()?;

    let source: Arc<dyn MetricsSource> = match metrics {
        Metrics::Recorded(recorded) => {
            for (_, documents) in &runs {
                check_recorded(&recorded, documents)?;
            }
            Arc::new(recorded)
        }
        Metrics::Prometheus(prometheus) => {
            check_reachable(&prometheus, start).await?;
            Arc::new(prometheus)
        }
    };

    let mut replays: Vec<(String, Replay)> = Vec::with_capacity(runs.len());
    for (label, documents) in runs {
        replays.push((
            label,
            replay::replay(&documents, source.clone(), start, end).await,
        ));
    }
    Ok(respond(request.format, settings.is_empty(), &replays))
}

fn respond(format: Format, single: bool, replays: &[(String, Replay)]) -> Response {
    match (single, replays) {
        (true, [(_, replay)]) => Response {
            output: match format {
                Format::Text => report::text(replay),
                Format::Json => report::json(replay) + "\n",
            },
            exit_code: match replay.outcome.result {
                replay::Ending::Promoted => EXIT_PROMOTED,
                _ => EXIT_NOT_PROMOTED,
            },
        },
        _ => Response {
            output: match format {
                Format::Text => report::what_if_text(replays),
                Format::Json => report::what_if_json(replays) + "\n",
            },
            exit_code: EXIT_PROMOTED,
        },
    }
}

fn arguments(reason: &str) -> SimulateError {
    SimulateError::Arguments(reason.to_string())
}

/// The metrics source and the time span to replay: the recording's own span unless narrowed.
fn open_metrics(
    request: &Request,
    start: Option<Timestamp>,
    end: Option<Timestamp>,
) -> Result<(Metrics, (Timestamp, Timestamp)), SimulateError> {
    match (&request.metrics, &request.prometheus) {
        (Some(_), Some(_)) => Err(arguments(
            "--metrics and --prometheus are two sources of the same numbers; give one",
        )),
        (None, None) => Err(arguments(
            "give the metrics: --metrics FILE (recorded series) or --prometheus URL --start T --end T",
        )),
        (Some(path), None) => {
            let recording =
                Recording::load(path).map_err(|e| SimulateError::Recording(e.to_string()))?;
            let (first, last) = recording.span().ok_or_else(|| {
                SimulateError::Recording(format!("{}: no samples", path.display()))
            })?;
            let (start, end) = (start.unwrap_or(first), end.unwrap_or(last));
            if start < first || end > last {
                return Err(arguments(&format!(
                    "--start/--end {start} to {end} reach outside the recording, which spans {first} to {last}"
                )));
            }
            Ok((
                Metrics::Recorded(RecordedMetrics::new(recording)),
                (start, end),
            ))
        }
        (None, Some(url)) => {
            let (Some(start), Some(end)) = (start, end) else {
                return Err(arguments("--prometheus needs --start and --end"));
            };
            let source = PrometheusSource::new(url, PROMETHEUS_TIMEOUT)
                .map_err(|e| SimulateError::Prometheus(e.to_string()))?;
            Ok((Metrics::Prometheus(source), (start, end)))
        }
    }
}

/// Every query the replay will ask must be understood and select recorded series.
fn check_recorded(recorded: &RecordedMetrics, documents: &Documents) -> Result<(), SimulateError> {
    let queries =
        rendered_queries(documents).map_err(|e| SimulateError::InvalidSpec(vec![e.to_string()]))?;
    for query in queries {
        recorded
            .check_query(&query)
            .map_err(|e| SimulateError::Recording(e.to_string()))?;
    }
    Ok(())
}

async fn check_reachable(source: &PrometheusSource, at: Timestamp) -> Result<(), SimulateError> {
    source
        .query_value("vector(1)", Some(at))
        .await
        .map(|_| ())
        .map_err(|e| SimulateError::Prometheus(e.to_string()))
}

/// RFC 3339 (`2026-01-05T10:00:00Z`) or unix seconds, as Prometheus' API takes them.
pub fn parse_time(flag: &str, text: &str) -> Result<Timestamp, SimulateError> {
    let parsed = match text.parse::<i64>() {
        Ok(seconds) => Timestamp::from_second(seconds).map_err(|e| e.to_string()),
        Err(_) => text.parse::<Timestamp>().map_err(|e| e.to_string()),
    };
    parsed.map_err(|reason| {
        arguments(&format!(
            "{flag} {text:?} is neither an RFC 3339 time (2026-01-05T10:00:00Z) nor unix seconds: {reason}"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_or_unix_seconds() {
        let expected = Timestamp::from_second(1_767_607_200).unwrap();
        assert_eq!(
            parse_time("--start", "2026-01-05T10:00:00Z").unwrap(),
            expected
        );
        assert_eq!(parse_time("--start", "1767607200").unwrap(), expected);
        let error = parse_time("--end", "yesterday").unwrap_err().to_string();
        assert!(
            error.starts_with("--end \"yesterday\" is neither"),
            "{error}"
        );
    }
}
