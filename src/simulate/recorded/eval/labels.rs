//! Label arithmetic done once per query, when it is compiled: which labels an operation keeps,
//! the matching signature of a series, and numbering distinct label sets ("slots") so
//! evaluation works on plain indices.

use std::collections::HashMap;

use super::super::recording::{Labels, METRIC_NAME};

/// Distinct label sets, numbered in the order first seen.
#[derive(Default)]
pub struct SlotTable {
    index: HashMap<Labels, usize>,
    labels: Vec<Labels>,
}

impl SlotTable {
    pub fn slot(&mut self, labels: Labels) -> usize {
        if let Some(&slot) = self.index.get(&labels) {
            return slot;
        }
        let slot = self.labels.len();
        self.index.insert(labels.clone(), slot);
        self.labels.push(labels);
        slot
    }

    pub fn into_labels(self) -> Vec<Labels> {
        self.labels
    }
}

pub fn without_name(labels: &Labels) -> Labels {
    let mut labels = labels.clone();
    labels.remove(METRIC_NAME);
    labels
}

/// The labels an aggregation keeps: only those named by `by (...)`; all but those named and the
/// metric name with `without (...)`.
pub fn grouping(labels: &Labels, names: &[String], by: bool) -> Labels {
    if by {
        labels
            .iter()
            .filter(|(name, _)| names.contains(name))
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect()
    } else {
        labels
            .iter()
            .filter(|(name, _)| *name != METRIC_NAME && !names.contains(name))
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect()
    }
}

/// What two series must share to match in a binary operation: the labels named by `on (...)`,
/// or all but those named by `ignoring (...)` and the metric name.
pub fn signature(labels: &Labels, on: bool, names: &[String]) -> Labels {
    grouping(labels, names, on)
}
