//! The `get` table: one row per CanaryRollout, from the objects alone (pure).

use jiff::Timestamp;

use super::format::{age_since, bps, or_dash, percent, table};
use crate::api::canary_rollout::{CanaryRolloutStatus, Phase};
use crate::api::{CanaryRollout, SLOBudget};

/// How much the table shows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableOptions {
    /// Prefix a NAMESPACE column (`-A`).
    pub namespace_column: bool,
    /// Add the revisions and the status message (`-o wide`).
    pub wide: bool,
}

/// The table `kubectl sluice get` prints. `budgets` are the SLOBudgets the rollouts may refer to
/// (their current status is fresher than a rollout's last evaluation).
pub fn rollout_table(
    rollouts: &[CanaryRollout],
    budgets: &[SLOBudget],
    options: TableOptions,
    now: Timestamp,
) -> String {
    let mut headers = vec![];
    if options.namespace_column {
        headers.push("NAMESPACE");
    }
    headers.extend([
        "NAME",
        "PHASE",
        "STAGE",
        "WEIGHT",
        "VERDICT",
        "TRACKING ERR",
        "BUDGET",
        "AGE",
    ]);
    if options.wide {
        headers.extend(["CANARY", "STABLE", "MESSAGE"]);
    }
    let rows: Vec<Vec<String>> = rollouts
        .iter()
        .map(|rollout| row(rollout, budgets, options, now))
        .collect();
    table(&headers, &rows)
}

fn row(
    rollout: &CanaryRollout,
    budgets: &[SLOBudget],
    options: TableOptions,
    now: Timestamp,
) -> Vec<String> {
    let empty = CanaryRolloutStatus::default();
    let status = rollout.status.as_ref().unwrap_or(&empty);
    let evaluation = status.last_evaluation.as_ref();
    let mut cells = vec![];
    if options.namespace_column {
        cells.push(or_dash(rollout.metadata.namespace.clone()));
    }
    cells.extend([
        or_dash(rollout.metadata.name.clone()),
        or_dash(status.phase.map(|p| format!("{p:?}"))),
        or_dash(stage_position(rollout)),
        or_dash(status.canary_traffic()),
        or_dash(evaluation.map(|e| format!("{:?}", e.verdict))),
        or_dash(
            evaluation
                .and_then(|e| e.parity.as_ref())
                .and_then(|p| p.tracking_error_bps)
                .map(bps),
        ),
        or_dash(budget_remaining(rollout, budgets).map(percent)),
        age_since(
            rollout.metadata.creation_timestamp.as_ref().map(|t| t.0),
            now,
        ),
    ]);
    if options.wide {
        cells.extend([
            or_dash(status.canary_revision.clone()),
            or_dash(status.stable_revision.clone()),
            or_dash(status.message.clone()),
        ]);
    }
    cells
}

/// "2/4": the current stage, counted from 1, of the spec's stages. None at rest (Idle,
/// Succeeded), where the stage index left over from the last rollout would read as "stuck".
pub fn stage_position(rollout: &CanaryRollout) -> Option<String> {
    let status = rollout.status.as_ref()?;
    if matches!(status.phase, Some(Phase::Idle | Phase::Succeeded)) {
        return None;
    }
    let stage = status.stage?;
    Some(format!("{}/{}", stage + 1, rollout.spec.stages.len()))
}

/// The lowest budget left over the objectives of the rollout's SLOBudget, from that budget's
/// status when it is in `budgets`, else from the rollout's last evaluation.
pub fn budget_remaining(rollout: &CanaryRollout, budgets: &[SLOBudget]) -> Option<f64> {
    let name = &rollout.spec.analysis.slo_budget_ref.as_ref()?.name;
    let from_budget = budgets
        .iter()
        .find(|b| {
            b.metadata.name.as_ref() == Some(name)
                && b.metadata.namespace == rollout.metadata.namespace
        })
        .and_then(|b| b.status.as_ref())
        .and_then(|s| {
            s.objectives
                .iter()
                .filter_map(|o| o.budget_remaining)
                .reduce(f64::min)
        });
    from_budget.or_else(|| {
        rollout
            .status
            .as_ref()?
            .last_evaluation
            .as_ref()?
            .slo
            .as_ref()?
            .budget_remaining
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::fixtures::{NOW, budget, rollout};

    #[test]
    fn a_progressing_rollout_shows_stage_weight_verdict_parity_and_budget() {
        let text = rollout_table(&[rollout()], &[budget()], TableOptions::default(), NOW);
        assert_eq!(
            text,
            "NAME       PHASE         STAGE   WEIGHT   VERDICT   TRACKING ERR   BUDGET   AGE\n\
             checkout   Progressing   2/4     5%       Pass      12.4 bps       71.0%    2d1h\n"
        );
    }

    #[test]
    fn without_the_budget_object_the_evaluation_figure_is_shown() {
        let text = rollout_table(&[rollout()], &[], TableOptions::default(), NOW);
        assert!(text.contains("   82.0%   "), "{text}");
    }

    #[test]
    fn a_fresh_rollout_without_status_shows_dashes() {
        let mut fresh = rollout();
        fresh.status = None;
        fresh.spec.analysis.slo_budget_ref = None;
        let text = rollout_table(&[fresh], &[], TableOptions::default(), NOW);
        let row = text.lines().nth(1).unwrap();
        assert_eq!(
            row.split_whitespace().collect::<Vec<_>>(),
            ["checkout", "-", "-", "-", "-", "-", "-", "2d1h"]
        );
    }

    #[test]
    fn the_stage_is_shown_in_flight_and_where_a_rollout_stopped_not_at_rest() {
        for (phase, expected) in [
            (Phase::Progressing, Some("2/4")),
            (Phase::Paused, Some("2/4")),
            (Phase::RolledBack, Some("2/4")),
            (Phase::Succeeded, None),
            (Phase::Idle, None),
        ] {
            let mut rollout = rollout();
            rollout.status.as_mut().unwrap().phase = Some(phase);
            assert_eq!(stage_position(&rollout).as_deref(), expected, "{phase:?}");
        }
    }

    #[test]
    fn all_namespaces_and_wide_add_columns() {
        let options = TableOptions {
            namespace_column: true,
            wide: true,
        };
        let text = rollout_table(&[rollout()], &[budget()], options, NOW);
        let mut lines = text.lines();
        let header = lines.next().unwrap();
        assert!(header.starts_with("NAMESPACE   NAME"), "{header}");
        assert!(
            header.ends_with("CANARY       STABLE       MESSAGE"),
            "{header}"
        );
        let row = lines.next().unwrap();
        assert!(row.starts_with("shop        checkout"), "{row}");
        assert!(
            row.ends_with(
                "7f9c6d5a01   6d8f7c9b02   stage 1 (5%): waiting for the pause (42s left)"
            ),
            "{row}"
        );
    }
}
