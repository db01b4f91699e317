//! Judging one evaluation: query results in, verdicts out.
//!
//! Rules (documented in docs/analysis.md):
//! - a value outside [min, max] fails its check;
//! - an empty or NaN result follows `noData` (Hold → NoData, Fail → Fail, Pass → Pass);
//! - a query that could not run (Prometheus unreachable, bad response) is always NoData, whatever
//!   `noData` says: an outage of Prometheus neither promotes nor rolls back;
//! - the evaluation fails if any check or gate fails, else holds (NoData) if any holds, else passes.

use jiff::Timestamp;

use crate::api::canary_rollout::{
    Analysis, Check, CheckResult, Evaluation, NoDataPolicy, ParityVerdict, SloVerdict, Verdict,
};

/// What a query gave: a number, no data, or an error message.
pub type QueryOutcome = Result<Option<f64>, String>;

/// Results of running an analysis's queries once, in the order of `spec.analysis.checks`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AnalysisInput {
    pub samples: Option<QueryOutcome>,
    /// The canary's value for each check.
    pub checks: Vec<QueryOutcome>,
    /// The stable track's value for each relative check (None for checks with fixed bounds);
    /// may be shorter than `checks`.
    pub baselines: Vec<Option<QueryOutcome>>,
    /// Verdicts of ParityPolicy / SLOBudget, when referenced.
    pub gates: Vec<GateVerdict>,
}

/// What an external policy (ParityPolicy, SLOBudget) says about the canary.
#[derive(Clone, Debug, PartialEq)]
pub struct GateVerdict {
    /// Which policy spoke.
    pub source: GateSource,
    pub effect: GateEffect,
    /// Why, in a sentence naming the figure.
    pub reason: String,
    pub parity: Option<ParityVerdict>,
    pub slo: Option<SloVerdict>,
}

/// The kind of policy behind a gate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GateSource {
    /// A ParityPolicy.
    Parity,
    /// An SLOBudget.
    Slo,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GateEffect {
    Pass,
    /// The stage may not pass while this lasts.
    Hold,
    /// Roll back now, regardless of failureLimit.
    Rollback,
    /// Roll back now and freeze the rollout until a person clears it.
    RollbackAndFreeze,
}

/// The judged evaluation plus what the gates demand.
#[derive(Clone, Debug, PartialEq)]
pub struct Judgement {
    pub evaluation: Evaluation,
    /// Strongest gate effect demanding a rollback: (effect, reason, the gate's source).
    pub gate_rollback: Option<(GateEffect, String, GateSource)>,
}

pub fn judge(analysis: &Analysis, input: &AnalysisInput, now: Timestamp) -> Judgement {
    let checks: Vec<CheckResult> = analysis
        .checks
        .iter()
        .enumerate()
        .map(|(i, check)| {
            let not_run = || Err("query was not run".to_string());
            let canary = input.checks.get(i).cloned().unwrap_or_else(not_run);
            let baseline = check.is_relative().then(|| {
                input
                    .baselines
                    .get(i)
                    .cloned()
                    .flatten()
                    .unwrap_or_else(not_run)
            });
            judge_check(check, &canary, baseline.as_ref(), analysis.no_data)
        })
        .collect();

    let mut verdict = combine(checks.iter().map(|c| c.verdict));
    let mut reasons: Vec<String> = checks
        .iter()
        .filter(|c| c.verdict != Verdict::Pass)
        .map(describe_check)
        .collect();
    let mut gate_rollback: Option<(GateEffect, String, GateSource)> = None;
    for gate in &input.gates {
        match gate.effect {
            GateEffect::Pass => {}
            GateEffect::Hold => {
                if verdict == Verdict::Pass {
                    verdict = Verdict::NoData;
                }
                reasons.push(gate.reason.clone());
            }
            GateEffect::Rollback | GateEffect::RollbackAndFreeze => {
                verdict = Verdict::Fail;
                reasons.push(gate.reason.clone());
                let stronger =
                    !matches!(&gate_rollback, Some((GateEffect::RollbackAndFreeze, _, _)));
                if stronger {
                    gate_rollback = Some((gate.effect, gate.reason.clone(), gate.source));
                }
            }
        }
    }

    let samples = match &input.samples {
        Some(Ok(value)) => *value,
        _ => None,
    };
    let evaluation = Evaluation {
        time: now,
        verdict,
        samples,
        checks,
        parity: input.gates.iter().find_map(|g| g.parity.clone()),
        slo: input.gates.iter().find_map(|g| g.slo.clone()),
        message: if reasons.is_empty() {
            None
        } else {
            Some(reasons.join("; "))
        },
    };
    Judgement {
        evaluation,
        gate_rollback,
    }
}

fn judge_check(
    check: &Check,
    canary: &QueryOutcome,
    baseline: Option<&QueryOutcome>,
    no_data: NoDataPolicy,
) -> CheckResult {
    let mut result = CheckResult {
        name: check.name.clone(),
        value: None,
        min: check.min,
        max: check.max,
        baseline: None,
        change: None,
        verdict: Verdict::Pass,
        message: None,
    };
    let value = match value_or_verdict(canary, no_data) {
        Ok(value) => value,
        Err((verdict, message)) => {
            result.verdict = verdict;
            result.message = Some(message);
            return result;
        }
    };
    result.value = Some(value);
    let below = check.min.is_some_and(|min| value < min);
    let above = check.max.is_some_and(|max| value > max);
    if below || above || value.is_nan() {
        result.verdict = Verdict::Fail;
        return result;
    }
    let Some(baseline) = baseline else {
        return result;
    };
    let stable = match value_or_verdict(baseline, no_data) {
        Ok(stable) => stable,
        Err((verdict, message)) => {
            result.verdict = verdict;
            result.message = Some(format!("stable track: {message}"));
            return result;
        }
    };
    result.baseline = Some(stable);
    let change = if stable == 0.0 {
        if value == 0.0 {
            0.0
        } else {
            // No relative change can be computed against 0; hold rather than guess.
            result.verdict = Verdict::NoData;
            result.message = Some("stable track is 0: no relative change".to_string());
            return result;
        }
    } else {
        (value - stable) / stable.abs()
    };
    result.change = Some(change);
    let increased_too_much = check.max_increase.is_some_and(|limit| change > limit);
    let decreased_too_much = check.max_decrease.is_some_and(|limit| change < -limit);
    if increased_too_much || decreased_too_much {
        result.verdict = Verdict::Fail;
    }
    result
}

/// A number to judge, or the verdict that missing data or an error gives.
fn value_or_verdict(
    outcome: &QueryOutcome,
    no_data: NoDataPolicy,
) -> Result<f64, (Verdict, String)> {
    match outcome {
        Err(error) => Err((Verdict::NoData, format!("query failed: {error}"))),
        Ok(None) => {
            let verdict = match no_data {
                NoDataPolicy::Hold => Verdict::NoData,
                NoDataPolicy::Fail => Verdict::Fail,
                NoDataPolicy::Pass => Verdict::Pass,
            };
            Err((verdict, format!("no data (noData: {no_data:?})")))
        }
        Ok(Some(value)) => Ok(*value),
    }
}

fn combine(verdicts: impl Iterator<Item = Verdict>) -> Verdict {
    let mut result = Verdict::Pass;
    for verdict in verdicts {
        match verdict {
            Verdict::Fail => return Verdict::Fail,
            Verdict::NoData => result = Verdict::NoData,
            Verdict::Pass => {}
        }
    }
    result
}

/// "check error-rate = 0.052 > max 0.01", for events and status.
pub fn describe_check(check: &CheckResult) -> String {
    match (check.value, check.verdict) {
        (Some(value), Verdict::Fail) => {
            let bound = match (check.min, check.max, check.change, check.baseline) {
                (Some(min), _, _, _) if value < min => format!("< min {min}"),
                (_, Some(max), _, _) if value > max => format!("> max {max}"),
                (_, _, Some(change), Some(stable)) => format!(
                    "vs stable {} ({:+.1} %)",
                    format_value(stable),
                    change * 100.0
                ),
                _ => "out of bounds".to_string(),
            };
            format!("check {} = {} {bound}", check.name, format_value(value))
        }
        (Some(value), _) => format!("check {} = {}", check.name, format_value(value)),
        (None, _) => format!(
            "check {}: {}",
            check.name,
            check.message.as_deref().unwrap_or("no data")
        ),
    }
}

pub fn format_value(value: f64) -> String {
    if value != 0.0 && (value.abs() < 0.001 || value.abs() >= 1e6) {
        format!("{value:.4e}")
    } else {
        let text = format!("{value:.6}");
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::canary_rollout::Check;

    fn analysis(no_data: NoDataPolicy) -> Analysis {
        Analysis {
            no_data,
            checks: vec![
                Check {
                    name: "error-rate".into(),
                    query: "q1".into(),
                    min: None,
                    max: Some(0.01),
                    max_increase: None,
                    max_decrease: None,
                },
                Check {
                    name: "success".into(),
                    query: "q2".into(),
                    min: Some(0.9),
                    max: None,
                    max_increase: None,
                    max_decrease: None,
                },
            ],
            ..Analysis::default()
        }
    }

    fn now() -> Timestamp {
        Timestamp::from_second(1_700_000_000).unwrap()
    }

    fn run(no_data: NoDataPolicy, a: QueryOutcome, b: QueryOutcome) -> Verdict {
        let input = AnalysisInput {
            samples: None,
            checks: vec![a, b],
            baselines: vec![],
            gates: vec![],
        };
        judge(&analysis(no_data), &input, now()).evaluation.verdict
    }

    #[test]
    fn verdict_table() {
        use NoDataPolicy as P;
        use Verdict as V;
        let unreachable = || Err::<Option<f64>, String>("connection refused".into());
        let cases: Vec<(NoDataPolicy, QueryOutcome, QueryOutcome, Verdict)> = vec![
            (P::Hold, Ok(Some(0.002)), Ok(Some(0.99)), V::Pass),
            (P::Hold, Ok(Some(0.05)), Ok(Some(0.99)), V::Fail),
            (P::Hold, Ok(Some(0.002)), Ok(Some(0.5)), V::Fail),
            (P::Hold, Ok(Some(0.01)), Ok(Some(0.9)), V::Pass), // bounds are inclusive
            (P::Hold, Ok(None), Ok(Some(0.99)), V::NoData),
            (P::Fail, Ok(None), Ok(Some(0.99)), V::Fail),
            (P::Pass, Ok(None), Ok(Some(0.99)), V::Pass),
            (P::Pass, unreachable(), Ok(Some(0.99)), V::NoData), // an outage never passes
            (P::Fail, unreachable(), Ok(Some(0.99)), V::NoData), // ...nor fails
            (P::Hold, Ok(None), Ok(Some(0.5)), V::Fail),         // a failure outweighs missing data
        ];
        for (i, (policy, a, b, expected)) in cases.into_iter().enumerate() {
            assert_eq!(run(policy, a, b), expected, "case {i}");
        }
    }

    #[test]
    fn failing_check_is_described_with_value_and_bound() {
        let input = AnalysisInput {
            samples: Some(Ok(Some(600.0))),
            checks: vec![Ok(Some(0.052)), Ok(Some(0.99))],
            baselines: vec![],
            gates: vec![],
        };
        let judgement = judge(&analysis(NoDataPolicy::Hold), &input, now());
        assert_eq!(
            judgement.evaluation.message.as_deref(),
            Some("check error-rate = 0.052 > max 0.01")
        );
        assert_eq!(judgement.evaluation.samples, Some(600.0));
    }

    #[test]
    fn relative_checks_compare_the_canary_with_stable() {
        let latency = Check {
            name: "p99-latency".into(),
            query: "q{{track}}".into(),
            min: None,
            max: None,
            max_increase: Some(0.10),
            max_decrease: None,
        };
        let success = Check {
            name: "success".into(),
            max_increase: None,
            max_decrease: Some(0.03),
            ..latency.clone()
        };
        let cases: Vec<(&Check, f64, QueryOutcome, Verdict)> = vec![
            (&latency, 0.115, Ok(Some(0.100)), Verdict::Fail), // 15 % slower
            (&latency, 0.105, Ok(Some(0.100)), Verdict::Pass), // 5 % slower
            (&latency, 0.080, Ok(Some(0.100)), Verdict::Pass), // faster is fine
            (&success, 0.95, Ok(Some(0.99)), Verdict::Fail),   // 4 % lower
            (&success, 0.97, Ok(Some(0.99)), Verdict::Pass),   // 2 % lower
            (&latency, 0.1, Ok(None), Verdict::NoData),        // no stable data holds
            (&latency, 0.1, Err("down".into()), Verdict::NoData),
            (&latency, 0.1, Ok(Some(0.0)), Verdict::NoData), // no relative change against 0
            (&latency, 0.0, Ok(Some(0.0)), Verdict::Pass),
        ];
        for (i, (check, canary, stable, expected)) in cases.into_iter().enumerate() {
            let analysis = Analysis {
                checks: vec![check.clone()],
                ..Analysis::default()
            };
            let input = AnalysisInput {
                checks: vec![Ok(Some(canary))],
                baselines: vec![Some(stable)],
                ..Default::default()
            };
            let evaluation = judge(&analysis, &input, now()).evaluation;
            assert_eq!(
                evaluation.verdict, expected,
                "case {i}: {:?}",
                evaluation.checks
            );
        }
        let analysis = Analysis {
            checks: vec![latency.clone()],
            ..Analysis::default()
        };
        let input = AnalysisInput {
            checks: vec![Ok(Some(0.115))],
            baselines: vec![Some(Ok(Some(0.1)))],
            ..Default::default()
        };
        let message = judge(&analysis, &input, now()).evaluation.message.unwrap();
        assert_eq!(message, "check p99-latency = 0.115 vs stable 0.1 (+15.0 %)");
    }

    #[test]
    fn gates_hold_or_roll_back() {
        let gate = |effect| GateVerdict {
            source: GateSource::Parity,
            effect,
            reason: "parity Critical: 61.2 bps".into(),
            parity: None,
            slo: None,
        };
        let input = AnalysisInput {
            samples: None,
            checks: vec![Ok(Some(0.0)), Ok(Some(1.0))],
            baselines: vec![],
            gates: vec![gate(GateEffect::Hold)],
        };
        assert_eq!(
            judge(&analysis(NoDataPolicy::Hold), &input, now())
                .evaluation
                .verdict,
            Verdict::NoData
        );
        let input = AnalysisInput {
            baselines: vec![],
            gates: vec![gate(GateEffect::Rollback)],
            ..input
        };
        let judgement = judge(&analysis(NoDataPolicy::Hold), &input, now());
        assert_eq!(judgement.evaluation.verdict, Verdict::Fail);
        assert_eq!(
            judgement.gate_rollback.map(|g| g.0),
            Some(GateEffect::Rollback)
        );
    }
}
