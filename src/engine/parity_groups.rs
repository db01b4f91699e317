//! Parity per group (per trading symbol, say), and the aggregate of the groups.
//!
//! The query keeps the `spec.groups.by` labels and returns one series per group and track.
//! Each group is paired, measured and judged as a whole policy would be ([`super::parity`]),
//! with its own thresholds when an override names it. The aggregate is the portfolio's active
//! difference: at each timestamp, `a_t = Σ w_g·a_{g,t} / Σ w_g` over the groups with a usable
//! sample there, `w_g` each group's weight (the mean of `weightQuery` over the window, or 1 for
//! every group). The aggregate's figures are judged with the policy's thresholds.
//!
//! The observed level is the worst of the aggregate's and the groups': a breach in any group
//! counts. A group with fewer than `minSamples` samples is reported Insufficient and does not
//! hold the policy; the aggregate having fewer does.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;

use super::parity::{
    LevelSource, ParityError, ParityFigures, ParityReport, counted_level, figures, is_breach,
    judged_value, level, pair_differences, severity,
};
use crate::api::parity_policy::{
    GroupParity, GroupsSpec, GroupsSummary, ParityEvaluation, ParityPolicySpec, Thresholds,
};
use crate::metrics::LabelledSeries;

/// Groups shown in a status, worst first.
pub const STATUS_GROUPS: usize = 10;

/// One group's series on both tracks, and its weight in the aggregate.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GroupSeries {
    /// The group's `by` labels as text: "symbol=AAPL".
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub candidate: Vec<(f64, f64)>,
    pub baseline: Vec<(f64, f64)>,
    /// The mean of the weight query over the window; None without one (or without a value).
    pub weight: Option<f64>,
}

/// The figure that set the observed level: a group's, or the aggregate's.
#[derive(Clone, Debug, PartialEq)]
pub struct DecidingFigure {
    /// "group symbol=MSFT", or "aggregate".
    pub label: String,
    pub value: Option<f64>,
    pub thresholds: Thresholds,
}

/// What the grouped evaluation adds to a report.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupedOutcome {
    /// Every group, worst first.
    pub groups: Vec<GroupParity>,
    pub breaching: u32,
    pub deciding: DecidingFigure,
}

/// Sorts the query's series into groups by the `by` labels. Why not, when a series lacks one
/// of them, two series share a group, or there are more groups than `maxGroups`.
pub fn group_series(
    groups: &GroupsSpec,
    candidate: Vec<LabelledSeries>,
    baseline: Vec<LabelledSeries>,
    weights: Option<Vec<LabelledSeries>>,
) -> Result<Vec<GroupSeries>, String> {
    let mut by_name: BTreeMap<String, GroupSeries> = BTreeMap::new();
    for (track, series) in [("canary", candidate), ("stable", baseline)] {
        for one in series {
            let (name, labels) = group_of(groups, &one)?;
            let group = by_name.entry(name.clone()).or_insert_with(|| GroupSeries {
                name: name.clone(),
                labels,
                ..GroupSeries::default()
            });
            let slot = match track {
                "canary" => &mut group.candidate,
                _ => &mut group.baseline,
            };
            if !slot.is_empty() {
                return Err(format!(
                    "two series of the {track} query fall in group {name}: aggregate the query by spec.groups.by, e.g. sum by ({}) (...)",
                    groups.by.join(", ")
                ));
            }
            *slot = one.points;
        }
    }
    if by_name.len() > groups.max_groups as usize {
        return Err(format!(
            "the query returned {} groups, more than spec.groups.maxGroups {}",
            by_name.len(),
            groups.max_groups
        ));
    }
    for one in weights.into_iter().flatten() {
        let (name, _) = group_of(groups, &one)?;
        if let Some(group) = by_name.get_mut(&name) {
            let values: Vec<f64> = one.points.iter().map(|p| p.1).collect();
            group.weight =
                (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64);
        }
    }
    Ok(by_name.into_values().collect())
}

fn group_of(
    groups: &GroupsSpec,
    series: &LabelledSeries,
) -> Result<(String, BTreeMap<String, String>), String> {
    let mut labels = BTreeMap::new();
    for label in &groups.by {
        let value = series.labels.get(label).ok_or_else(|| {
            format!(
                "a series of the query has no label {label:?} named in spec.groups.by (its labels: {})",
                label_text(&series.labels)
            )
        })?;
        labels.insert(label.clone(), value.clone());
    }
    Ok((label_text(&labels), labels))
}

fn label_text(labels: &BTreeMap<String, String>) -> String {
    if labels.is_empty() {
        return "none".to_string();
    }
    labels
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The thresholds of a group: the first override whose labels it carries, else the policy's.
pub fn thresholds_of<'a>(
    spec: &'a ParityPolicySpec,
    groups: &'a GroupsSpec,
    labels: &BTreeMap<String, String>,
) -> &'a Thresholds {
    groups
        .overrides
        .iter()
        .find(|o| o.group.iter().all(|(k, v)| labels.get(k) == Some(v)))
        .map_or(&spec.thresholds, |o| &o.thresholds)
}

/// Evaluates the policy group by group and in aggregate. `previous_consecutive` is
/// `status.consecutiveBreaches`.
pub fn evaluate_grouped(
    spec: &ParityPolicySpec,
    groups_spec: &GroupsSpec,
    series: &[GroupSeries],
    previous_consecutive: u32,
    now: Timestamp,
) -> ParityReport {
    let annualize = spec.annualize.as_ref().map(|a| a.periods_per_year);
    let weighted = groups_spec.weight_query.is_some();
    let weight_of = |group: &GroupSeries| match (weighted, group.weight) {
        (false, _) => 1.0,
        (true, Some(w)) if w.is_finite() && w > 0.0 => w,
        (true, _) => 0.0,
    };
    let total_weight: f64 = series.iter().map(weight_of).sum();
    // Σ w·a and Σ w per timestamp (ms), over the groups with a usable sample there.
    let mut aggregate: BTreeMap<i64, (f64, f64)> = BTreeMap::new();
    let mut judged = Vec::with_capacity(series.len());
    let mut unpaired = 0u32;
    for group in series {
        let weight = weight_of(group);
        let paired = pair_differences(&group.candidate, &group.baseline).unwrap_or_default();
        unpaired = unpaired.saturating_add(paired.unpaired);
        if weight > 0.0 {
            for (t, a) in paired.timestamps.iter().zip(&paired.values_bps) {
                let slot = aggregate.entry((t * 1000.0).round() as i64).or_default();
                slot.0 += weight * a;
                slot.1 += weight;
            }
        }
        let group_figures = figures(&paired.values_bps, annualize);
        let thresholds = thresholds_of(spec, groups_spec, &group.labels);
        let value = judged_value(&group_figures, spec.measure);
        let group_level = level(value, group_figures.samples, spec.min_samples, thresholds);
        judged.push((
            GroupParity {
                group: group.name.clone(),
                tracking_error_bps: group_figures.stddev_bps,
                mean_difference_bps: group_figures.mean_bps,
                rms_difference_bps: group_figures.rms_bps,
                samples: group_figures.samples,
                level: group_level,
                weight: if total_weight > 0.0 {
                    weight / total_weight
                } else {
                    0.0
                },
            },
            value,
            thresholds.clone(),
        ));
    }
    let aggregate_values: Vec<f64> = aggregate.values().map(|(sum, w)| sum / w).collect();
    let aggregate_figures: ParityFigures = figures(&aggregate_values, annualize);
    let aggregate_value = judged_value(&aggregate_figures, spec.measure);
    let aggregate_level = level(
        aggregate_value,
        aggregate_figures.samples,
        spec.min_samples,
        &spec.thresholds,
    );

    judged.sort_by(|a, b| {
        severity(b.0.level)
            .cmp(&severity(a.0.level))
            .then(b.1.unwrap_or(f64::MIN).total_cmp(&a.1.unwrap_or(f64::MIN)))
            .then(a.0.group.cmp(&b.0.group))
    });
    let breaching = judged.iter().filter(|g| is_breach(g.0.level)).count() as u32;
    let worst_group = judged.first().filter(|g| is_breach(g.0.level));
    let (observed, deciding) = match worst_group {
        Some((group, value, thresholds)) if severity(group.level) > severity(aggregate_level) => (
            group.level,
            DecidingFigure {
                label: format!("group {}", group.group),
                value: *value,
                thresholds: thresholds.clone(),
            },
        ),
        _ => (
            aggregate_level,
            DecidingFigure {
                label: "aggregate".to_string(),
                value: aggregate_value,
                thresholds: spec.thresholds.clone(),
            },
        ),
    };
    let (counted, consecutive_breaches) =
        counted_level(observed, previous_consecutive, spec.consecutive_breaches);
    let groups: Vec<GroupParity> = judged.into_iter().map(|g| g.0).collect();
    ParityReport {
        evaluation: ParityEvaluation {
            time: now,
            tracking_error_bps: aggregate_figures.stddev_bps,
            mean_difference_bps: aggregate_figures.mean_bps,
            rms_difference_bps: aggregate_figures.rms_bps,
            samples: aggregate_figures.samples,
            level: observed,
            components: Vec::new(),
            residual_bps: None,
            statistics: None,
            sequential: None,
            groups: Some(GroupsSummary {
                count: series.len() as u32,
                breaching,
                worst: groups.iter().take(STATUS_GROUPS).cloned().collect(),
            }),
        },
        figures: aggregate_figures,
        unpaired,
        counted_level: counted,
        consecutive_breaches,
        decided_by: LevelSource::Thresholds,
        component_gaps: Vec::new(),
        error: series.is_empty().then_some(ParityError::NoBaseline),
        evidence: Vec::new(),
        grouped: Some(GroupedOutcome {
            groups,
            breaching,
            deciding,
        }),
    }
}

/// Problems of `spec.groups`: labels, overrides, the weight query, and what it cannot be
/// combined with yet.
pub fn problems(spec: &ParityPolicySpec, groups: &GroupsSpec) -> Vec<String> {
    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, label) in groups.by.iter().enumerate() {
        if label.trim().is_empty() {
            problems.push(format!("spec.groups.by[{i}] must not be empty"));
        } else if !seen.insert(label.as_str()) {
            problems.push(format!("spec.groups.by[{i}] {label:?} is named twice"));
        }
    }
    if groups.by.is_empty() {
        problems.push("spec.groups.by must name at least one label".to_string());
    }
    if !(1..=1000).contains(&groups.max_groups) {
        problems.push(format!(
            "spec.groups.maxGroups {} must be from 1 to 1000",
            groups.max_groups
        ));
    }
    if let Some(query) = &groups.weight_query
        && let Err(error) = crate::metrics::validate_promql(query)
    {
        problems.push(format!("spec.groups.weightQuery: {error}"));
    }
    for (i, over) in groups.overrides.iter().enumerate() {
        if let Some(label) = over.group.keys().find(|k| !groups.by.contains(k)) {
            problems.push(format!(
                "spec.groups.overrides[{i}].group names label {label:?}, which is not in spec.groups.by"
            ));
        }
        if let Err(problem) = super::parity::validate_thresholds(&over.thresholds) {
            problems.push(format!(
                "spec.groups.overrides[{i}]: {}",
                problem.replace("spec.thresholds", "thresholds")
            ));
        }
    }
    if !spec.components.is_empty() {
        problems.push(
            "spec.components cannot be combined with spec.groups yet: attribute one group per policy"
                .to_string(),
        );
    }
    if spec.statistics.is_some() {
        problems.push(
            "spec.statistics cannot be combined with spec.groups yet: the thresholds judge each group"
                .to_string(),
        );
    }
    problems
}

#[cfg(test)]
#[path = "parity_groups_tests.rs"]
mod tests;
