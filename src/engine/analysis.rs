//! Judging one evaluation: query results in, verdicts out.
//!
//! Rules (documented in docs/analysis.md):
//! - a value outside [min, max] fails its check, unless the stable track fails it too (a shared
//!   failure, see `analysis.sharedFailures`): then the check holds;
//! - a relative check (maxIncrease, maxDecrease) adds the pair (canary, stable) to the stage's
//!   evidence and is judged on all of it by a confidence sequence ([`super::sequential`]): it
//!   fails when a change beyond its bound is established, passes when staying within it is,
//!   and otherwise holds; one that bounds an increase also fails when the canary's values are
//!   established to vary more than its traffic share explains ([`super::dispersion`]);
//! - an empty or NaN result follows `noData` (Hold → NoData, Fail → Fail, Pass → Pass);
//! - a query that could not run (Prometheus unreachable, bad response) is always NoData, whatever
//!   `noData` says: an outage of Prometheus neither promotes nor rolls back;
//! - the evaluation fails if any check or gate fails, else holds (NoData) if any holds, else passes;
//! - until one lookback after the Prometheus that answered started, its answers may hold samples
//!   of series that went away while it was down ([`PrometheusStart`]): an evaluation then does
//!   not pass (it holds), adds no evidence and ends no failure streak; a failure still counts.

use jiff::Timestamp;

use super::count_test::{self, CountEvidence, Counts};
use super::dispersion::{self, DispersionTest};
use super::sequential::{self, ChangeInterval};
use crate::api::canary_rollout::{
    Analysis, Check, CheckEvidence, CheckResult, Evaluation, NoDataPolicy, PairedEvidence,
    ParityVerdict, SloVerdict, Verdict,
};
use crate::metrics::PrometheusStart;

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
    /// Both tracks' counts over the interval behind each relative check on a ratio of
    /// counters (None for other checks); may be shorter than `checks`.
    pub counts: Vec<Option<Result<Counts, String>>>,
    /// When the Prometheus that answered the checks started, read after they were answered;
    /// None when it could not tell.
    pub prometheus_start: Option<PrometheusStart>,
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
    /// The evidence the policy's sequential tests keep in the stage's evidence.
    pub evidence: Vec<CheckEvidence>,
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
    /// The canary has served no user yet, so its users' figures are missing: hold, except at a
    /// shadow stage, where the canary serves no user and so spends none of their budget.
    HoldForUserTraffic,
    /// Roll back now, regardless of failureLimit.
    Rollback,
    /// Roll back now and freeze the rollout until a person clears it.
    RollbackAndFreeze,
}

/// What an evaluation is judged with besides its query results: the stage's evidence so far.
#[derive(Clone, Debug, PartialEq)]
pub struct StageContext<'a> {
    /// The relative checks' evidence at this stage, from the status.
    pub evidence: &'a [CheckEvidence],
    /// Level of each relative bound's sequential test (the rollout's 1 - confidence, spread).
    pub alpha: f64,
    /// Evaluations after which the confidence sequence is tightest: those a stage expects.
    pub expected_evaluations: f64,
    /// Whether a check failing on both tracks may hold (sharedFailures, within its maxHold).
    pub shared_failures_hold: bool,
    /// The stage's canary weight: how much noisier than stable's its traffic share makes the
    /// canary's values ([`dispersion::explained_ratio`]).
    pub canary_percent: u32,
    /// A shadow stage: the canary serves no user, only copies of stable's requests.
    pub shadow: bool,
}

/// The judged evaluation plus what the gates demand.
#[derive(Clone, Debug, PartialEq)]
pub struct Judgement {
    pub evaluation: Evaluation,
    /// Strongest gate effect demanding a rollback: (effect, reason, the gate's source).
    pub gate_rollback: Option<(GateEffect, String, GateSource)>,
    /// The stage's evidence including this evaluation, one entry per relative check.
    pub evidence: Vec<CheckEvidence>,
    /// Some check failed on the canary and on stable alike (held for it, or no longer).
    pub shared_failure: bool,
    /// Every check measured the canary and none failed, though some may still hold for want
    /// of evidence: a failure streak ends here, as it would at a passing evaluation.
    pub measured_without_failure: bool,
}

/// What a check concluded, besides its result.
struct CheckOutcome {
    result: CheckResult,
    evidence: Option<PairedEvidence>,
    counts: Option<CountEvidence>,
    shared_failure: bool,
}

pub fn judge(
    analysis: &Analysis,
    input: &AnalysisInput,
    stage: &StageContext,
    now: Timestamp,
) -> Judgement {
    let outcomes: Vec<CheckOutcome> = analysis
        .checks
        .iter()
        .enumerate()
        .map(|(i, check)| {
            let not_run = || Err("query was not run".to_string());
            let canary = input.checks.get(i).cloned().unwrap_or_else(not_run);
            let baseline = input.baselines.get(i).cloned().flatten();
            let baseline = match check.is_relative() {
                true => Some(baseline.unwrap_or_else(not_run)),
                false => baseline,
            };
            let prior = stage.evidence.iter().find(|e| e.name == check.name);
            let counted = Counted {
                now: input.counts.get(i).and_then(|c| c.as_ref()),
                prior: prior.and_then(|e| e.counts.clone()),
            };
            judge_check(
                check,
                &canary,
                baseline.as_ref(),
                analysis.no_data,
                prior.map(|e| e.evidence.clone()).unwrap_or_default(),
                counted,
                stage,
            )
        })
        .collect();
    let shared_failure = outcomes.iter().any(|o| o.shared_failure);
    let evidence = analysis
        .checks
        .iter()
        .zip(&outcomes)
        .filter_map(|(check, outcome)| {
            Some(CheckEvidence {
                name: check.name.clone(),
                evidence: outcome.evidence.clone()?,
                through: None,
                distribution: None,
                counts: outcome.counts.clone(),
            })
        })
        .chain(input.gates.iter().flat_map(|g| g.evidence.iter().cloned()))
        .collect();
    let checks: Vec<CheckResult> = outcomes.into_iter().map(|o| o.result).collect();

    let mut verdict = combine(checks.iter().map(|c| c.verdict));
    let mut reasons: Vec<String> = checks
        .iter()
        .zip(&analysis.checks)
        .filter(|(c, _)| c.verdict != Verdict::Pass)
        .map(|(c, spec)| describe_check(c, Some(spec), stage.alpha))
        .collect();
    let mut gate_rollback: Option<(GateEffect, String, GateSource)> = None;
    for gate in &input.gates {
        match gate.effect {
            GateEffect::Pass => {}
            GateEffect::HoldForUserTraffic if stage.shadow => {}
            GateEffect::Hold | GateEffect::HoldForUserTraffic => {
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

    let warming = input
        .prometheus_start
        .as_ref()
        .filter(|start| now < start.trusted_from());
    let evidence = match warming {
        Some(start) => {
            if verdict == Verdict::Pass {
                verdict = Verdict::NoData;
            }
            if verdict == Verdict::NoData {
                reasons.push(describe_warming(start, now));
            }
            stage.evidence.to_vec()
        }
        None => evidence,
    };

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
    let measured_without_failure = !shared_failure
        && warming.is_none()
        && evaluation
            .checks
            .iter()
            .all(|c| c.verdict != Verdict::Fail && c.value.is_some());
    Judgement {
        evaluation,
        gate_rollback,
        evidence,
        shared_failure,
        measured_without_failure,
    }
}

/// Why answers of a Prometheus that started less than a lookback ago do not pass a stage.
fn describe_warming(start: &PrometheusStart, now: Timestamp) -> String {
    let since = now.duration_since(start.started);
    let ago = crate::api::Duration::from_secs(since.as_secs().max(0).unsigned_abs());
    format!(
        "Prometheus at {} started {ago} ago and may answer with samples of series that went \
         away while it was down until {} (its start plus query.lookback-delta {}): no pass \
         counts before then",
        start.address,
        start.trusted_from().strftime("%Y-%m-%dT%H:%M:%SZ"),
        crate::api::Duration::from(start.lookback),
    )
}

/// Whether the stable track's value of an absolute `check` is wanted after the canary's gave
/// `canary`: when the canary fails it and a shared failure may hold.
pub fn wants_stable_value(analysis: &Analysis, check: &Check, canary: &QueryOutcome) -> bool {
    analysis.shared_failures.hold
        && !check.is_relative()
        && check.query.contains("{{track}}")
        && matches!(canary, Ok(Some(value)) if out_of_bounds(check, *value))
}

fn out_of_bounds(check: &Check, value: f64) -> bool {
    value.is_nan()
        || check.min.is_some_and(|min| value < min)
        || check.max.is_some_and(|max| value > max)
}

/// A relative check's counts: this evaluation's, and the stage's so far.
struct Counted<'a> {
    now: Option<&'a Result<Counts, String>>,
    prior: Option<CountEvidence>,
}

fn judge_check(
    check: &Check,
    canary: &QueryOutcome,
    baseline: Option<&QueryOutcome>,
    no_data: NoDataPolicy,
    mut evidence: PairedEvidence,
    counted: Counted,
    stage: &StageContext,
) -> CheckOutcome {
    let mut result = CheckResult {
        name: check.name.clone(),
        value: None,
        min: check.min,
        max: check.max,
        baseline: None,
        change: None,
        change_interval: None,
        evaluations: None,
        verdict: Verdict::Pass,
        message: None,
    };
    let relative = check.is_relative();
    let bounds = count_test::bounds(check);
    let mut counts = counted.prior.filter(|c| c.tests(&bounds));
    let outcome = |result, evidence: PairedEvidence, counts, shared_failure| CheckOutcome {
        result,
        evidence: relative.then_some(evidence),
        counts,
        shared_failure,
    };
    let value = match value_or_verdict(canary, no_data) {
        Ok(value) => value,
        Err((verdict, message)) => {
            result.verdict = verdict;
            result.message = Some(message);
            return outcome(result, evidence, counts, false);
        }
    };
    result.value = Some(value);
    let out_of_bounds = |v: f64| out_of_bounds(check, v);
    if out_of_bounds(value) {
        result.verdict = Verdict::Fail;
        let stable = baseline.and_then(|b| b.clone().ok().flatten());
        let Some(stable) = stable.filter(|s| !s.is_nan() && out_of_bounds(*s)) else {
            return outcome(result, evidence, counts, false);
        };
        // Stable fails too: an incident both tracks share, which holds while it may.
        result.baseline = Some(stable);
        let stable = format_value(stable);
        result.message = Some(match stage.shared_failures_hold {
            true => {
                result.verdict = Verdict::NoData;
                format!("shared failure: stable fails too ({stable})")
            }
            false => {
                format!("stable fails too ({stable}), for longer than a shared failure may hold")
            }
        });
        return outcome(result, evidence, counts, true);
    }
    if !relative {
        return outcome(result, evidence, counts, false);
    }
    let Some(baseline) = baseline else {
        return outcome(result, evidence, counts, false);
    };
    let stable = match value_or_verdict(baseline, no_data) {
        Ok(stable) => stable,
        Err((verdict, message)) => {
            result.verdict = verdict;
            result.message = Some(format!("stable track: {message}"));
            return outcome(result, evidence, counts, false);
        }
    };
    if value.is_finite() && stable.is_finite() {
        evidence.add(value, stable);
    }
    if let Some(Ok(now)) = counted.now {
        counts
            .get_or_insert_with(|| CountEvidence::new(&bounds))
            .add(now);
    }
    match counts.as_ref().filter(|c| c.evaluations > 0) {
        Some(counted) => judge_counts(check, &mut result, counted, stage.alpha),
        None => judge_relative(check, &mut result, &evidence, stage),
    }
    outcome(result, evidence, counts, false)
}

/// A relative check on a ratio of counters, judged on the counts behind it
/// ([`count_test`]): the rates per request over the stage, and the sequential test's verdict.
fn judge_counts(check: &Check, result: &mut CheckResult, counts: &CountEvidence, alpha: f64) {
    result.value = Some(counts.canary_events / counts.canary_requests);
    result.baseline = Some(counts.stable_events / counts.stable_requests);
    result.change = counts.rate_ratio().map(|ratio| ratio - 1.0);
    result.evaluations = Some(counts.evaluations);
    let (verdict, message) = count_test::judge(check, counts, alpha);
    result.verdict = verdict;
    result.message = (verdict != Verdict::Pass).then_some(message);
}

/// A relative check on the stage's evidence: fails when a change beyond a bound is established,
/// passes when staying within every bound is, holds otherwise.
fn judge_relative(
    check: &Check,
    result: &mut CheckResult,
    evidence: &PairedEvidence,
    stage: &StageContext,
) {
    result.value = Some(evidence.canary_mean);
    result.baseline = Some(evidence.stable_mean);
    result.evaluations = Some(evidence.pairs);
    result.change = evidence.change();
    let erratic = check
        .max_increase
        .and_then(|_| {
            let null = dispersion::TOLERANCE * dispersion::explained_ratio(stage.canary_percent);
            dispersion::test(evidence, null)
        })
        .filter(|test| test.rejects(stage.alpha));
    if let Some(test) = erratic {
        result.verdict = Verdict::Fail;
        result.message = Some(describe_dispersion(&test, evidence.pairs, stage));
    }
    let (lower, upper) =
        match sequential::change_interval(evidence, stage.alpha, stage.expected_evaluations) {
            ChangeInterval::TooFewPairs => {
                result.verdict = Verdict::NoData;
                result.message = Some(format!(
                    "collecting evidence: {} of {} evaluations with both tracks",
                    evidence.pairs,
                    sequential::MIN_PAIRS
                ));
                return;
            }
            ChangeInterval::Unbounded if erratic.is_some() => return,
            ChangeInterval::Unbounded => {
                result.verdict = Verdict::NoData;
                result.message = Some(
                    "stable's mean is not distinguishable from 0: no relative change yet"
                        .to_string(),
                );
                return;
            }
            ChangeInterval::Within { lower, upper } => (lower, upper),
        };
    result.change_interval = Some([lower, upper]);
    let above = check.max_increase.filter(|limit| lower > *limit);
    let below = check.max_decrease.filter(|limit| upper < -limit);
    let within = check.max_increase.is_none_or(|limit| upper <= limit)
        && check.max_decrease.is_none_or(|limit| lower >= -limit);
    if above.is_some() || below.is_some() {
        result.verdict = Verdict::Fail;
        result.message = None;
    } else if !within && erratic.is_none() {
        result.verdict = Verdict::NoData;
        result.message = Some("not yet established within its bounds".to_string());
    }
}

/// "spread 2510.3 times stable's (variance of the logarithms) over 7 evaluations, beyond the
/// 396 times that 1 % of the traffic explains with a tolerance of 4 (sequential F test:
/// e-value 1709 >= 1/alpha 1600)".
fn describe_dispersion(test: &DispersionTest, pairs: u32, stage: &StageContext) -> String {
    let ratio = format!("{:.1}", test.ratio);
    format!(
        "spread {ratio} times stable's (variance of the logarithms) over {pairs} evaluations, \
         beyond the {} times that {} % of the traffic explains with a tolerance of {} \
         (sequential F test: e-value {} >= 1/alpha {})",
        format_value(test.null_ratio),
        stage.canary_percent,
        format_value(dispersion::TOLERANCE),
        format_large(test.log_e_value.exp()),
        format_large(1.0 / stage.alpha),
    )
}

/// 1234.5 -> "1235", 2.5e7 -> "2.50e7".
fn format_large(value: f64) -> String {
    match value < 1e6 {
        true => format!("{value:.0}"),
        false => format!("{value:.2e}"),
    }
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

/// "check error-rate = 0.052 > max 0.01", for events and status. A relative check names its
/// evidence: the tracks' means over the stage, the change, its confidence sequence at
/// `1 - alpha`, and the bound it was judged against.
pub fn describe_check(check: &CheckResult, bounds: Option<&Check>, alpha: f64) -> String {
    let judged_on_evidence = bounds.filter(|b| b.is_relative() && check.change_interval.is_some());
    if let Some(spec) = judged_on_evidence {
        let [lower, upper] = check.change_interval.unwrap_or([f64::NAN, f64::NAN]);
        let beyond = spec.max_increase.is_some_and(|limit| lower > limit)
            || spec.max_decrease.is_some_and(|limit| upper < -limit);
        if let (Verdict::Fail, false, Some(message)) = (check.verdict, beyond, &check.message) {
            return format!("check {}: {message}", check.name);
        }
        let outcome = match check.verdict {
            Verdict::Fail => "established beyond",
            Verdict::Pass => "established within",
            Verdict::NoData => "not yet established within",
        };
        return format!(
            "check {}: {}; {outcome} {}",
            check.name,
            describe_evidence(check, alpha),
            describe_bounds(spec)
        );
    }
    match (check.value, check.verdict) {
        (Some(value), Verdict::Fail) => {
            let bound = match (check.min, check.max) {
                (Some(min), _) if value < min => Some(format!("< min {min}")),
                (_, Some(max)) if value > max => Some(format!("> max {max}")),
                _ => None,
            };
            let (name, value) = (&check.name, format_value(value));
            match (bound, &check.message) {
                (Some(bound), Some(message)) => {
                    format!("check {name} = {value} {bound}: {message}")
                }
                (Some(bound), None) => format!("check {name} = {value} {bound}"),
                // Failed for another reason than its bounds (the spread of a relative check).
                (None, Some(message)) => format!("check {name} = {value}: {message}"),
                (None, None) => format!("check {name} = {value} out of bounds"),
            }
        }
        (Some(value), _) => match &check.message {
            Some(message) => format!("check {} = {}: {message}", check.name, format_value(value)),
            None => format!("check {} = {}", check.name, format_value(value)),
        },
        (None, _) => format!(
            "check {}: {}",
            check.name,
            check.message.as_deref().unwrap_or("no data")
        ),
    }
}

/// "canary mean 0.23 vs stable 0.2 over 6 evaluations, change +15.0 % (confidence sequence at
/// 99.75 %: +15.0 % to +15.0 %)".
fn describe_evidence(check: &CheckResult, alpha: f64) -> String {
    let percent = |x: f64| format!("{:+.1} %", x * 100.0);
    let [lower, upper] = check.change_interval.unwrap_or([f64::NAN, f64::NAN]);
    format!(
        "canary mean {} vs stable {} over {} evaluations, change {} (confidence sequence at {}: {} to {})",
        format_value(check.value.unwrap_or(f64::NAN)),
        format_value(check.baseline.unwrap_or(f64::NAN)),
        check.evaluations.unwrap_or(0),
        check.change.map_or_else(|| "n/a".to_string(), percent),
        format_confidence(1.0 - alpha),
        percent(lower),
        percent(upper),
    )
}

fn describe_bounds(check: &Check) -> String {
    let mut bounds = Vec::new();
    if let Some(limit) = check.max_increase {
        bounds.push(format!("maxIncrease +{:.1} %", limit * 100.0));
    }
    if let Some(limit) = check.max_decrease {
        bounds.push(format!("maxDecrease -{:.1} %", limit * 100.0));
    }
    bounds.join(" and ")
}

/// 0.9975 -> "99.75 %".
pub fn format_confidence(confidence: f64) -> String {
    let text = format!("{:.4}", confidence * 100.0);
    format!("{} %", text.trim_end_matches('0').trim_end_matches('.'))
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
#[path = "analysis_tests.rs"]
mod tests;
