//! A PromQL evaluator over recorded series: queries are compiled once ([`Plan::compile`]) and
//! evaluated at any number of times ([`Plan::instant`], [`Plan::range`]).

mod compile;
mod labels;
pub(super) mod math;
mod node;
mod run;

use super::error::RecordingError;
use super::recording::{Labels, Recording, seconds_to_millis};

/// The recorded series in the layout evaluation wants: times (ms) and values side by side,
/// labels without empty values (Prometheus treats `a=""` as no label `a`).
pub struct SeriesStore {
    series: Vec<StoredSeries>,
    end_ms: i64,
}

pub struct StoredSeries {
    labels: Labels,
    times: Vec<i64>,
    values: Vec<f64>,
}

impl SeriesStore {
    pub fn new(recording: &Recording) -> Self {
        let mut series: Vec<StoredSeries> = recording
            .series()
            .iter()
            .map(|s| StoredSeries {
                labels: s
                    .labels
                    .iter()
                    .filter(|(_, value)| !value.is_empty())
                    .map(|(name, value)| (name.clone(), value.clone()))
                    .collect(),
                times: s.samples.iter().map(|p| seconds_to_millis(p.0)).collect(),
                values: s.samples.iter().map(|p| p.1).collect(),
            })
            .collect();
        // In Prometheus' order (by label set), so sums add up in the same order.
        series.sort_by(|a, b| a.labels.cmp(&b.labels));
        let end_ms = series
            .iter()
            .filter_map(|s| s.times.last().copied())
            .max()
            .unwrap_or(0);
        Self { series, end_ms }
    }

    /// The time of the last sample: "now" for a query without a time.
    pub fn end_ms(&self) -> i64 {
        self.end_ms
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
}

impl BinaryOp {
    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            Self::Eq | Self::Ne | Self::Gt | Self::Lt | Self::Ge | Self::Le
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetOp {
    And,
    Or,
    Unless,
}

/// One output series of a range evaluation: its labels and (unix seconds, value) points.
pub type LabelledPoints = (Labels, Vec<(f64, f64)>);

/// Why an evaluation failed at one time, in Prometheus' words where it has them.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalError(pub String);

/// What a query gives at one time.
pub enum Outcome {
    Scalar(f64),
    /// One entry per output slot; None where there is no sample.
    Vector(Vec<Option<f64>>),
    /// A bare range selector, which only a function may consume.
    Matrix,
}

/// A compiled query, valid for the [`SeriesStore`] it was compiled against.
pub struct Plan {
    root: node::Node,
    /// Each selector as written, with how many recorded series it selects.
    selectors: Vec<(String, usize)>,
}

impl Plan {
    /// Parses `query` and resolves its selectors; fails on PromQL the evaluator does not
    /// implement, never on a selector that matches nothing (that is no data, as in Prometheus).
    pub fn compile(query: &str, store: &SeriesStore) -> Result<Plan, RecordingError> {
        compile::compile(query, store)
    }

    /// The first selector that matches no recorded series.
    pub fn unmatched_selector(&self) -> Option<&str> {
        self.selectors
            .iter()
            .find(|(_, count)| *count == 0)
            .map(|(text, _)| text.as_str())
    }

    /// The result at `time_ms`.
    pub fn instant(&self, store: &SeriesStore, time_ms: i64) -> Result<Outcome, EvalError> {
        run::Evaluator::new(store, time_ms).outcome(&self.root)
    }

    /// The result at `start_ms`, `start_ms + step_ms`, ... up to `end_ms`: one series
    /// (unix seconds, value) per output label set that has a sample at any of those times, with
    /// its labels (none for a scalar).
    pub fn labelled_range(
        &self,
        store: &SeriesStore,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> Result<Vec<LabelledPoints>, EvalError> {
        let mut series: Vec<Vec<(f64, f64)>> = Vec::new();
        let mut time = start_ms;
        while time <= end_ms {
            let seconds = time as f64 / 1000.0;
            match self.instant(store, time)? {
                Outcome::Scalar(value) => {
                    series.resize_with(1, Vec::new);
                    series[0].push((seconds, value));
                }
                Outcome::Vector(values) => {
                    if series.len() < values.len() {
                        series.resize_with(values.len(), Vec::new);
                    }
                    for (slot, value) in values.into_iter().enumerate() {
                        if let Some(value) = value {
                            series[slot].push((seconds, value));
                        }
                    }
                }
                Outcome::Matrix => {
                    return Err(EvalError(
                        "invalid expression type \"range vector\" for range query, must be Scalar or instant Vector"
                            .to_string(),
                    ));
                }
            }
            time += step_ms;
        }
        let slots: &[Labels] = match &self.root {
            node::Node::Vector(vector) => &vector.slots,
            _ => &[],
        };
        Ok(series
            .into_iter()
            .enumerate()
            .filter(|(_, points)| !points.is_empty())
            .map(|(slot, points)| {
                let labels = slots
                    .get(slot)
                    .map(labels::without_name)
                    .unwrap_or_default();
                (labels, points)
            })
            .collect())
    }
}
