//! The `status` explanation: what the last evaluation found and why the rollout is where it is,
//! from the CanaryRollout and the ParityPolicy and SLOBudget it refers to (pure).

use std::fmt::Write;

use jiff::Timestamp;

use super::format::{age, age_since, bps, instant, number, or_dash, percent, table};
use super::holding::holding;
use super::table::stage_position;
use crate::api::canary_rollout::{
    CanaryRolloutStatus, Check, CheckResult, Evaluation, ParityVerdict, SloVerdict,
};
use crate::api::{CanaryRollout, ParityPolicy, SLOBudget};

/// History entries shown; the status keeps ten.
const HISTORY_SHOWN: usize = 5;

/// What `status` explains: the rollout, the objects it refers to (None when not referenced or
/// not found), and the time to measure ages against.
pub struct Explained<'a> {
    pub rollout: &'a CanaryRollout,
    pub parity_policy: Option<&'a ParityPolicy>,
    pub slo_budget: Option<&'a SLOBudget>,
    pub now: Timestamp,
}

impl Explained<'_> {
    pub fn render(&self) -> String {
        let empty = CanaryRolloutStatus::default();
        let status = self.rollout.status.as_ref().unwrap_or(&empty);
        let mut out = String::new();
        self.summary(&mut out, status);
        match &status.last_evaluation {
            Some(evaluation) => self.evaluation(&mut out, evaluation),
            None => out.push_str("\nLast evaluation: none yet\n"),
        }
        let holding = holding(self.rollout, self.now);
        if !holding.reasons.is_empty() {
            let _ = writeln!(out, "\n{}:", holding.title);
            for reason in holding.reasons {
                let _ = writeln!(out, "  {reason}");
            }
        }
        self.conditions(&mut out, status);
        self.history(&mut out, status);
        out
    }

    fn summary(&self, out: &mut String, status: &CanaryRolloutStatus) {
        let meta = &self.rollout.metadata;
        let _ = writeln!(out, "Name:       {}", or_dash(meta.name.clone()));
        let _ = writeln!(out, "Namespace:  {}", or_dash(meta.namespace.clone()));
        let _ = writeln!(
            out,
            "Phase:      {}",
            or_dash(status.phase.map(|p| format!("{p:?}")))
        );
        if let Some(message) = &status.message {
            let _ = writeln!(out, "Message:    {message}");
        }
        if let Some(position) = stage_position(self.rollout) {
            let weight = match status.canary_mirror {
                Some(mirror) => format!(
                    "{}, mirroring {mirror}% of stable's requests to the canary",
                    or_dash(status.canary_weight.map(|w| format!("{w}%")))
                ),
                None => or_dash(status.canary_weight.map(|w| format!("{w}%"))),
            };
            let since = match status.stage_started_at {
                Some(t) => format!("since {} ({} ago)", instant(t), self.ago(t)),
                None => "not started: the canary is not available yet".to_string(),
            };
            let _ = writeln!(out, "Stage:      {position}, weight {weight}, {since}");
        }
        if status.canary_revision.is_some() || status.stable_revision.is_some() {
            let mut line = format!(
                "Revisions:  canary {}, stable {}",
                or_dash(status.canary_revision.clone()),
                or_dash(status.stable_revision.clone())
            );
            if let Some(started) = status.rollout_started_at {
                let _ = write!(line, " (rollout started {} ago)", self.ago(started));
            }
            let _ = writeln!(out, "{line}");
        }
    }

    fn evaluation(&self, out: &mut String, evaluation: &Evaluation) {
        let _ = writeln!(
            out,
            "\nLast evaluation: {:?}, {} ago ({})",
            evaluation.verdict,
            self.ago(evaluation.time),
            instant(evaluation.time)
        );
        if let Some(message) = &evaluation.message {
            let _ = writeln!(out, "  {message}");
        }
        if let Some(samples) = evaluation.samples {
            let _ = writeln!(out, "  canary samples this interval: {}", number(samples));
        }
        if !evaluation.checks.is_empty() {
            let rows: Vec<Vec<String>> = evaluation
                .checks
                .iter()
                .map(|result| self.check_row(result))
                .collect();
            let text = table(&["CHECK", "VALUE", "BOUNDS", "VERDICT"], &rows);
            for line in text.lines() {
                let _ = writeln!(out, "  {line}");
            }
        }
        if let Some(parity) = &evaluation.parity {
            self.parity(out, parity);
        }
        if let Some(slo) = &evaluation.slo {
            self.slo(out, slo);
        }
    }

    fn check_row(&self, result: &CheckResult) -> Vec<String> {
        let spec = self
            .rollout
            .spec
            .analysis
            .checks
            .iter()
            .find(|c| c.name == result.name);
        let mut verdict = format!("{:?}", result.verdict);
        if let Some(message) = &result.message {
            let _ = write!(verdict, " ({message})");
        }
        vec![
            result.name.clone(),
            result.value.map_or_else(|| "no data".to_string(), number),
            check_bounds(result, spec),
            verdict,
        ]
    }

    fn parity(&self, out: &mut String, parity: &ParityVerdict) {
        let name = self
            .rollout
            .spec
            .analysis
            .parity_policy_ref
            .as_ref()
            .map_or("-", |r| r.name.as_str());
        let _ = writeln!(out, "  Parity ({name}): {}", parity.level);
        let mut figures = vec![];
        if let Some(te) = parity.tracking_error_bps {
            figures.push(format!("tracking error {}", bps(te)));
        }
        if let Some(mean) = parity.mean_difference_bps {
            figures.push(format!("mean difference {}", bps(mean)));
        }
        figures.push(format!("{} samples", parity.samples));
        figures.push(format!("{} breaches in a row", parity.consecutive_breaches));
        let _ = writeln!(out, "    {}", figures.join(", "));
        if !parity.worst_groups.is_empty() {
            let rows: Vec<Vec<String>> = parity
                .worst_groups
                .iter()
                .map(|g| {
                    vec![
                        g.group.clone(),
                        g.level.to_string(),
                        or_dash(g.rms_difference_bps.map(bps)),
                        or_dash(g.tracking_error_bps.map(bps)),
                        or_dash(g.mean_difference_bps.map(bps)),
                        g.samples.to_string(),
                        percent(g.weight),
                    ]
                })
                .collect();
            let headers = [
                "GROUP", "LEVEL", "RMS", "TRACKING", "MEAN", "SAMPLES", "WEIGHT",
            ];
            let _ = writeln!(
                out,
                "    worst groups (the figures above are the aggregate's):"
            );
            for line in table(&headers, &rows).lines() {
                let _ = writeln!(out, "      {line}");
            }
        }
        let Some(policy) = self.parity_policy else {
            let _ = writeln!(out, "    (ParityPolicy {name} not found: no attribution)");
            return;
        };
        let Some(last) = policy
            .status
            .as_ref()
            .and_then(|s| s.last_evaluation.as_ref())
        else {
            return;
        };
        if last.components.is_empty() && last.residual_bps.is_none() {
            return;
        }
        let mut parts: Vec<String> = last
            .components
            .iter()
            .map(|c| match c.share {
                Some(share) => format!("{} {} ({})", c.name, bps(c.difference_bps), percent(share)),
                None => format!("{} {}", c.name, bps(c.difference_bps)),
            })
            .collect();
        if let Some(residual) = last.residual_bps {
            parts.push(format!("residual {}", bps(residual)));
        }
        let _ = writeln!(
            out,
            "    attribution (policy evaluation {} ago): {}",
            self.ago(last.time),
            parts.join(", ")
        );
    }

    fn slo(&self, out: &mut String, slo: &SloVerdict) {
        let name = self
            .rollout
            .spec
            .analysis
            .slo_budget_ref
            .as_ref()
            .map_or("-", |r| r.name.as_str());
        let remaining = slo.budget_remaining.map_or(String::new(), |b| {
            format!(", budget remaining {}", percent(b))
        });
        let _ = writeln!(out, "  SLO ({name}): {}{remaining}", slo.level);
        let Some(budget) = self.slo_budget else {
            let _ = writeln!(out, "    (SLOBudget {name} not found: no burn rates)");
            return;
        };
        let Some(status) = budget.status.as_ref().filter(|s| !s.objectives.is_empty()) else {
            return;
        };
        let rows: Vec<Vec<String>> = status
            .objectives
            .iter()
            .map(|o| {
                let burn_rates: Vec<String> = o
                    .burn_rates
                    .iter()
                    .map(|(window, rate)| format!("{window} {}", number(*rate)))
                    .collect();
                vec![
                    o.name.clone(),
                    o.state.to_string(),
                    or_dash(o.sli.map(|s| format!("{:.2}%", s * 100.0))),
                    or_dash(o.budget_remaining.map(percent)),
                    or_dash((!burn_rates.is_empty()).then(|| burn_rates.join(", "))),
                ]
            })
            .collect();
        let text = table(
            &["OBJECTIVE", "STATE", "SLI", "BUDGET", "BURN RATES"],
            &rows,
        );
        for line in text.lines() {
            let _ = writeln!(out, "    {line}");
        }
        if status.frozen {
            let _ = writeln!(out, "    the budget freezes new rollouts");
        }
    }

    fn conditions(&self, out: &mut String, status: &CanaryRolloutStatus) {
        if status.conditions.is_empty() {
            return;
        }
        let rows: Vec<Vec<String>> = status
            .conditions
            .iter()
            .map(|c| {
                vec![
                    c.type_.clone(),
                    format!("{:?}", c.status),
                    c.reason.clone(),
                    self.ago(c.last_transition_time),
                    c.message.clone(),
                ]
            })
            .collect();
        out.push_str("\nConditions:\n");
        for line in table(&["TYPE", "STATUS", "REASON", "AGE", "MESSAGE"], &rows).lines() {
            let _ = writeln!(out, "  {line}");
        }
    }

    fn history(&self, out: &mut String, status: &CanaryRolloutStatus) {
        if status.history.is_empty() {
            return;
        }
        let skip = status.history.len().saturating_sub(HISTORY_SHOWN);
        let rows: Vec<Vec<String>> = status.history[skip..]
            .iter()
            .map(|h| {
                vec![
                    h.revision.clone(),
                    format!("{:?}", h.result),
                    format!("{} ago", self.ago(h.finished_at)),
                    age(h.finished_at.duration_since(h.started_at)),
                    h.reason.clone(),
                ]
            })
            .collect();
        out.push_str("\nHistory (newest last):\n");
        for line in table(&["REVISION", "RESULT", "FINISHED", "TOOK", "REASON"], &rows).lines() {
            let _ = writeln!(out, "  {line}");
        }
    }

    fn ago(&self, then: Timestamp) -> String {
        age_since(Some(then), self.now)
    }
}

/// "max 0.01", "min 0.9, max 1.1", or for a relative check "stable 0.2, change +5.0% (max
/// +10.0%), interval +1.2% to +8.8%, 12 evaluations" (stage means and the confidence sequence).
fn check_bounds(result: &CheckResult, spec: Option<&Check>) -> String {
    let mut parts = vec![];
    if let Some(min) = result.min {
        parts.push(format!("min {}", number(min)));
    }
    if let Some(max) = result.max {
        parts.push(format!("max {}", number(max)));
    }
    if let Some(baseline) = result.baseline {
        parts.push(format!("stable {}", number(baseline)));
    }
    if let Some(change) = result.change {
        let mut limits = vec![];
        if let Some(up) = spec.and_then(|c| c.max_increase) {
            limits.push(format!("max +{:.1}%", up * 100.0));
        }
        if let Some(down) = spec.and_then(|c| c.max_decrease) {
            limits.push(format!("max -{:.1}%", down * 100.0));
        }
        let limits = if limits.is_empty() {
            String::new()
        } else {
            format!(" ({})", limits.join(", "))
        };
        parts.push(format!("change {:+.1}%{limits}", change * 100.0));
    }
    if let Some([lower, upper]) = result.change_interval {
        parts.push(format!(
            "interval {:+.1}% to {:+.1}%",
            lower * 100.0,
            upper * 100.0
        ));
    }
    if let Some(evaluations) = result.evaluations {
        parts.push(format!("{evaluations} evaluations"));
    }
    or_dash((!parts.is_empty()).then(|| parts.join(", ")))
}

#[cfg(test)]
#[path = "explain_tests.rs"]
mod tests;
