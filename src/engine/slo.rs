//! Error budgets of an SLOBudget: SLIs, budget remaining, burn rates, objective states, the
//! compliance score, the release freeze and the canary gates. Pure: measured good/total figures
//! and the clock in, a report out. Running the queries, remembering earlier states, writing
//! status, recording events and acting on the report belong to the callers.
//!
//! # Inputs
//!
//! For every objective and every window of [`query_windows`] (the SLO window plus each
//! burn-rate pair's long and short window) the caller runs the objective's `good` and `total`
//! queries with `{{window}}` set to the window, and records the two values as a
//! [`WindowMeasurement`]. They may be rates (events per second) or counts, as long as both use
//! the same unit: only their ratio is used. A missing value, NaN, ±Inf, a negative value or a
//! total of 0 is **no data** for that window; no figure is then produced for it, so NaN and
//! infinities never reach the output. A good value above total (the two queries see slightly
//! different scrapes) counts as good = total.
//!
//! # Figures
//!
//! With `target` in percent (strictly between 0 and 100):
//!
//! - SLI over a window `w`: `SLI_w = good_w / total_w`, in 0..=1.
//! - Error budget: `B = 1 - target/100`, computed as `(100 - target) / 100` (for 99.5 % that is
//!   0.005, so the alert thresholds below come out as the round figures they should be).
//! - Budget remaining, on the SLO window: `1 - (1 - SLI) / B`. 1 means nothing spent, 0 the
//!   budget exactly spent; it goes negative once the budget is overspent and is reported so.
//!   It is clamped to 0..=1 only inside the compliance score.
//! - Burn rate over a window `w`: `(1 - SLI_w) / B`: 1 spends the budget exactly over the SLO
//!   window, 14.4 spends 2 % of a 30-day budget in one hour. Status reports the burn rate of
//!   every window with data, the SLO window included (whose burn rate is `1 - remaining`),
//!   keyed by the window's Prometheus form ("1h", "5m", "30d").
//!
//! # Burn-rate pairs
//!
//! A pair `{long, short, factor, severity}` **fires** when both of its windows have data and
//! both burn rates are strictly above `factor`, as in the SRE workbook's alerting rules
//! (`error ratio > factor x (1 - target)`). A window burning at exactly `factor` does not fire.
//! In error-ratio terms the threshold is `factor x B` ([`alert_threshold`]): for 99.5 %,
//! factors 14.4 / 6 / 3 / 1 give 7.2 % / 3 % / 1.5 % / 0.5 % of requests failing. The long
//! window shows that enough budget was burnt to matter; the short one that it is still burning
//! now, so the alert resets soon after the errors stop.
//!
//! # States
//!
//! With `spent` meaning budget remaining ≤ 0, the first rule that holds decides:
//!
//! 1. **Critical**: spent, and a Critical pair fires (spent and still burning fast).
//! 2. **Violated**: spent, or a Critical pair fires.
//! 3. **AtRisk**: a Warning pair fires, or less than 25 % of the budget is left
//!    (remaining < [`AT_RISK_BELOW_REMAINING`]).
//! 4. **Meeting**: the budget remaining is known (the SLO window has data).
//! 5. **Unknown**: otherwise, i.e. the SLO window has no data and no pair fires.
//!
//! So the precedence is Critical > Violated > AtRisk > Meeting, and a firing pair is acted on
//! even while the SLO window has no data (a fast burn is a fact whatever the 30-day figure), but
//! Meeting is never claimed without a budget figure. Across objectives, [`SloReport::worst_state`]
//! ranks Critical > Violated > AtRisk > Unknown > Meeting: one objective without data is
//! enough to stop claiming that all are met.
//!
//! # Compliance score
//!
//! The mean, over the objectives whose budget remaining is known, of
//! `clamp(remaining, 0, 1) x 100`; none when no objective has data. It is 100 only when no
//! budget has been touched and 0 only when every budget is spent, and it moves as budgets are
//! spent, before any state changes, which a share of objectives Meeting (a step of 100/n per
//! objective) would not show. Clamping keeps one overspent objective from dragging the others'
//! healthy budgets below zero: spent is spent.
//!
//! # Freeze
//!
//! `frozen = min(remaining) < policy.freezeBelowRemaining`, the minimum taken over the
//! objectives whose budget remaining is known (the remaining is not clamped, so with
//! `freezeBelowRemaining: 0` only an overspent budget freezes). With no data for any objective
//! the budget is **not** frozen: those objectives are Unknown and the reason says so; holding
//! every release because Prometheus is empty would be a silent policy, so the choice is left to
//! the rollout's `noData` handling.
//!
//! # Canary gates
//!
//! - **Spend** ([`canary_budget_spend`]): the fraction of the SLO window's error budget burnt by
//!   the canary's own errors since the rollout started:
//!   `canary_bad_events / (B x total_events_per_second x window_seconds)`, where
//!   `canary_bad_events` counts the canary track's bad events (total - good) since the start
//!   (see [`canary_bad_events`] to derive it from the objective's rate queries run on the canary
//!   track with `{{window}}` = time since the start) and `total_events_per_second` is the
//!   objective's `total` over the SLO window for the whole service, all tracks. The denominator
//!   is the number of bad events the whole budget allows over the SLO window. Rollback when the
//!   spend is strictly above `policy.canaryMaxBudgetSpend`.
//! - **Canary-scoped burn** ([`canary_burn`]): the burn rates and firing pairs of an objective
//!   computed on measurements of the canary track only, so that 1 % of traffic is judged on its
//!   own errors instead of being diluted by the stable track's. A firing Critical pair there is
//!   a reason to roll back. The canary's windows cover at most its life so far.
//!
//! # Validation
//!
//! [`validate_budget`] checks what the CRD schema cannot on Kubernetes 1.20 (no CEL): each
//! problem is a sentence naming the field; a spec with problems is not evaluated.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use jiff::Timestamp;

use crate::api::Duration;
use crate::api::slo_budget::{
    BudgetPolicy, BurnRatePair, Objective, ObjectiveState, ObjectiveStatus, SLOBudgetSpec, Severity,
};
use crate::metrics::template::{TemplateVars, render, validate_promql};

/// An objective with less than this fraction of its budget left is at risk.
pub const AT_RISK_BELOW_REMAINING: f64 = 0.25;

/// `good` and `total` of one objective over one window, as its queries returned them (rates or
/// counts, the same unit for both). `None`: the query returned nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct WindowMeasurement {
    pub good: Option<f64>,
    pub total: Option<f64>,
}

impl WindowMeasurement {
    pub fn new(good: f64, total: f64) -> Self {
        Self {
            good: Some(good),
            total: Some(total),
        }
    }

    /// `good / total` in 0..=1, or `None` when there is no data (see the module doc).
    pub fn sli(&self) -> Option<f64> {
        sli(self.good, self.total)
    }
}

/// `good / total` in 0..=1; `None` when either is missing, not finite or negative, or total
/// is 0. Good above total counts as good = total.
pub fn sli(good: Option<f64>, total: Option<f64>) -> Option<f64> {
    let (good, total) = (good?, total?);
    if !good.is_finite() || !total.is_finite() || good < 0.0 || total <= 0.0 {
        return None;
    }
    Some(good.min(total) / total)
}

/// One objective's measurements (of the whole service or of one track), by window.
pub type WindowMeasurements = BTreeMap<Duration, WindowMeasurement>;

/// Every objective's measurements, keyed by objective name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Measurements {
    objectives: BTreeMap<String, WindowMeasurements>,
}

impl Measurements {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records what `objective`'s queries returned over `window`.
    pub fn record(&mut self, objective: &str, window: Duration, measurement: WindowMeasurement) {
        self.objectives
            .entry(objective.to_string())
            .or_default()
            .insert(window, measurement);
    }

    /// [`Self::record`], by value, for building measurements in one expression.
    pub fn with(
        mut self,
        objective: &str,
        window: Duration,
        good: Option<f64>,
        total: Option<f64>,
    ) -> Self {
        self.record(objective, window, WindowMeasurement { good, total });
        self
    }

    /// The windows recorded for `objective`.
    pub fn objective(&self, name: &str) -> Option<&WindowMeasurements> {
        self.objectives.get(name)
    }
}

/// The error budget `1 - target/100` as a fraction, or `None` for a target outside (0, 100).
pub fn error_budget(target: f64) -> Option<f64> {
    (target > 0.0 && target < 100.0).then(|| (100.0 - target) / 100.0)
}

/// `1 - (1 - sli) / budget`: negative once overspent.
pub fn budget_remaining(sli: f64, target: f64) -> Option<f64> {
    burn_rate(sli, target).map(|burn| 1.0 - burn)
}

/// `(1 - sli) / budget`: how many times faster than sustainable the budget is spent.
pub fn burn_rate(sli: f64, target: f64) -> Option<f64> {
    let budget = error_budget(target)?;
    let rate = (1.0 - sli) / budget;
    rate.is_finite().then_some(rate)
}

/// The error ratio above which a window burns faster than `factor`: `factor x (1 - target/100)`.
pub fn alert_threshold(factor: f64, target: f64) -> Option<f64> {
    error_budget(target).map(|budget| factor * budget)
}

/// Whether a pair fires: both windows have a burn rate, and both are strictly above `factor`.
pub fn pair_fires(
    pair: &BurnRatePair,
    long_burn_rate: Option<f64>,
    short_burn_rate: Option<f64>,
) -> bool {
    matches!((long_burn_rate, short_burn_rate),
        (Some(long), Some(short)) if long > pair.factor && short > pair.factor)
}

/// The state from the budget remaining and the firing pairs, by the rules of the module doc.
pub fn objective_state(
    budget_remaining: Option<f64>,
    critical_firing: bool,
    warning_firing: bool,
) -> ObjectiveState {
    let spent = budget_remaining.is_some_and(|r| r <= 0.0);
    let low = budget_remaining.is_some_and(|r| r < AT_RISK_BELOW_REMAINING);
    if spent && critical_firing {
        ObjectiveState::Critical
    } else if spent || critical_firing {
        ObjectiveState::Violated
    } else if warning_firing || low {
        ObjectiveState::AtRisk
    } else if budget_remaining.is_some() {
        ObjectiveState::Meeting
    } else {
        ObjectiveState::Unknown
    }
}

/// How bad a state is across objectives: Critical > Violated > AtRisk > Unknown > Meeting.
pub fn state_rank(state: ObjectiveState) -> u8 {
    match state {
        ObjectiveState::Meeting => 0,
        ObjectiveState::Unknown => 1,
        ObjectiveState::AtRisk => 2,
        ObjectiveState::Violated => 3,
        ObjectiveState::Critical => 4,
    }
}

/// The windows to query for every objective: the SLO window and each pair's long and short
/// windows, deduplicated, shortest first. The pairs apply to all objectives, so the list is the
/// same for each.
pub fn query_windows(spec: &SLOBudgetSpec) -> Vec<Duration> {
    let mut windows = BTreeSet::from([spec.window]);
    for pair in &spec.burn_rate_alerts {
        windows.insert(pair.long);
        windows.insert(pair.short);
    }
    windows.into_iter().collect()
}

/// A burn-rate pair firing for an objective.
#[derive(Clone, Debug, PartialEq)]
pub struct FiringPair {
    pub objective: String,
    pub long: Duration,
    pub short: Duration,
    pub factor: f64,
    pub severity: Severity,
    pub long_burn_rate: f64,
    pub short_burn_rate: f64,
}

impl FiringPair {
    /// The lower of the two windows' burn rates: the rate both windows exceed.
    pub fn burn_rate(&self) -> f64 {
        self.long_burn_rate.min(self.short_burn_rate)
    }
}

impl fmt::Display for FiringPair {
    /// E.g. "objective availability burning 16.2x over 1h/5m (critical pair 14.4)".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let severity = match self.severity {
            Severity::Critical => "critical",
            Severity::Warning => "warning",
        };
        write!(
            f,
            "objective {} burning {:.1}x over {}/{} ({severity} pair {})",
            self.objective,
            self.burn_rate(),
            self.long,
            self.short,
            self.factor
        )
    }
}

/// Burn rates by window and the pairs that fire, for one objective on one set of measurements.
fn burn(
    objective: &Objective,
    windows_to_report: &[Duration],
    pairs: &[BurnRatePair],
    measured: Option<&WindowMeasurements>,
) -> (BTreeMap<Duration, f64>, Vec<FiringPair>) {
    let rate_over = |window: &Duration| {
        measured
            .and_then(|m| m.get(window))
            .and_then(WindowMeasurement::sli)
            .and_then(|sli| burn_rate(sli, objective.target))
    };
    let rates: BTreeMap<Duration, f64> = windows_to_report
        .iter()
        .filter_map(|w| rate_over(w).map(|rate| (*w, rate)))
        .collect();
    let firing = pairs
        .iter()
        .filter_map(|pair| {
            let (long, short) = (rates.get(&pair.long)?, rates.get(&pair.short)?);
            pair_fires(pair, Some(*long), Some(*short)).then(|| FiringPair {
                objective: objective.name.clone(),
                long: pair.long,
                short: pair.short,
                factor: pair.factor,
                severity: pair.severity,
                long_burn_rate: *long,
                short_burn_rate: *short,
            })
        })
        .collect();
    (rates, firing)
}

fn keyed_by_window(rates: BTreeMap<Duration, f64>) -> BTreeMap<String, f64> {
    rates
        .into_iter()
        .map(|(window, rate)| (window.to_string(), rate))
        .collect()
}

/// One objective's status and the pairs firing for it.
#[derive(Clone, Debug, PartialEq)]
pub struct ObjectiveEvaluation {
    pub status: ObjectiveStatus,
    pub firing: Vec<FiringPair>,
}

/// Evaluates one objective of `spec` on its measurements (see the module doc).
pub fn evaluate_objective(
    spec: &SLOBudgetSpec,
    objective: &Objective,
    measured: Option<&WindowMeasurements>,
) -> ObjectiveEvaluation {
    let windows = query_windows(spec);
    let (rates, firing) = burn(objective, &windows, &spec.burn_rate_alerts, measured);
    let sli = measured
        .and_then(|m| m.get(&spec.window))
        .and_then(WindowMeasurement::sli)
        .filter(|_| error_budget(objective.target).is_some());
    let remaining = sli.and_then(|sli| budget_remaining(sli, objective.target));
    let fires = |severity| firing.iter().any(|p| p.severity == severity);
    let state = objective_state(
        remaining,
        fires(Severity::Critical),
        fires(Severity::Warning),
    );
    ObjectiveEvaluation {
        status: ObjectiveStatus {
            name: objective.name.clone(),
            sli,
            budget_remaining: remaining,
            burn_rates: keyed_by_window(rates),
            state,
        },
        firing,
    }
}

/// Mean of `clamp(remaining, 0, 1) x 100` over the objectives with a budget figure; `None`
/// when there is none (see the module doc for why this formula).
pub fn compliance_score(remaining: impl IntoIterator<Item = Option<f64>>) -> Option<f64> {
    let (sum, count) = remaining
        .into_iter()
        .flatten()
        .filter(|r| !r.is_nan())
        .fold((0.0, 0u32), |(sum, n), r| (sum + r.clamp(0.0, 1.0), n + 1));
    (count > 0).then(|| sum / f64::from(count) * 100.0)
}

/// Whether new rollouts are held, and why, in a sentence.
#[derive(Clone, Debug, PartialEq)]
pub struct Freeze {
    pub frozen: bool,
    pub reason: String,
}

/// `frozen = min remaining < policy.freezeBelowRemaining` over the objectives with a budget
/// figure; not frozen when none has one.
pub fn freeze(objectives: &[ObjectiveStatus], policy: &BudgetPolicy) -> Freeze {
    let threshold = policy.freeze_below_remaining;
    let lowest = objectives
        .iter()
        .filter_map(|o| o.budget_remaining.map(|r| (o.name.as_str(), r)))
        .min_by(|a, b| a.1.total_cmp(&b.1));
    let without_data: Vec<&str> = objectives
        .iter()
        .filter(|o| o.budget_remaining.is_none())
        .map(|o| o.name.as_str())
        .collect();
    let Some((name, remaining)) = lowest else {
        return Freeze {
            frozen: false,
            reason:
                "not frozen: no objective has data over the SLO window, so every one is Unknown"
                    .to_string(),
        };
    };
    let frozen = remaining < threshold;
    let mut reason = if frozen {
        format!(
            "frozen: objective {name} has {} of its error budget left, under spec.policy.freezeBelowRemaining {}",
            percent(remaining),
            percent(threshold)
        )
    } else {
        format!(
            "not frozen: the lowest error budget left is {} (objective {name}), not under spec.policy.freezeBelowRemaining {}",
            percent(remaining),
            percent(threshold)
        )
    };
    if !without_data.is_empty() {
        reason.push_str(&format!(
            "; no data for objective {}",
            without_data.join(", ")
        ));
    }
    Freeze { frozen, reason }
}

fn percent(fraction: f64) -> String {
    format!("{:.1} %", fraction * 100.0)
}

/// The outcome of one evaluation of an SLOBudget.
#[derive(Clone, Debug, PartialEq)]
pub struct SloReport {
    /// When the evaluation ran (`status.lastEvaluationTime`).
    pub time: Timestamp,
    /// Per objective, in spec order.
    pub objectives: Vec<ObjectiveStatus>,
    pub compliance_score: Option<f64>,
    pub frozen: bool,
    /// Why frozen or not, in a sentence for the condition.
    pub freeze_reason: String,
    /// Every firing pair of every objective, in spec order.
    pub firing: Vec<FiringPair>,
}

impl SloReport {
    /// The objective with the least budget left, among those with a figure.
    pub fn lowest_budget_remaining(&self) -> Option<(&str, f64)> {
        self.objectives
            .iter()
            .filter_map(|o| o.budget_remaining.map(|r| (o.name.as_str(), r)))
            .min_by(|a, b| a.1.total_cmp(&b.1))
    }

    /// The worst state over the objectives, ranked by [`state_rank`]; Unknown when there are
    /// no objectives.
    pub fn worst_state(&self) -> ObjectiveState {
        self.objectives
            .iter()
            .map(|o| o.state)
            .max_by_key(|s| state_rank(*s))
            .unwrap_or(ObjectiveState::Unknown)
    }

    /// The firing pairs of Critical severity.
    pub fn critical_firing(&self) -> impl Iterator<Item = &FiringPair> {
        self.firing
            .iter()
            .filter(|p| p.severity == Severity::Critical)
    }
}

/// Evaluates every objective of `spec` on `measurements` at `now`. `spec` should have passed
/// [`validate_budget`]; an objective with an invalid target gets no figures and is Unknown.
pub fn evaluate(spec: &SLOBudgetSpec, measurements: &Measurements, now: Timestamp) -> SloReport {
    let mut objectives = Vec::with_capacity(spec.objectives.len());
    let mut firing = Vec::new();
    for objective in &spec.objectives {
        let evaluation =
            evaluate_objective(spec, objective, measurements.objective(&objective.name));
        objectives.push(evaluation.status);
        firing.extend(evaluation.firing);
    }
    let compliance_score = compliance_score(objectives.iter().map(|o| o.budget_remaining));
    let Freeze { frozen, reason } = freeze(&objectives, &spec.policy);
    SloReport {
        time: now,
        objectives,
        compliance_score,
        frozen,
        freeze_reason: reason,
        firing,
    }
}

/// The canary's bad events since the rollout started, from the objective's queries run on the
/// canary track with `{{window}}` = `since_start`: `(total - good) x seconds`. Rates whose
/// difference is below zero (good above total) count as no bad events.
pub fn canary_bad_events(
    good_per_second: Option<f64>,
    total_per_second: Option<f64>,
    since_start: Duration,
) -> Option<f64> {
    let (good, total) = (good_per_second?, total_per_second?);
    let bad = (total - good).max(0.0) * since_start.as_secs_f64();
    let valid = good.is_finite() && total.is_finite() && good >= 0.0 && total >= 0.0;
    (valid && bad.is_finite()).then_some(bad)
}

/// The fraction of the SLO window's error budget burnt by the canary since the rollout
/// started: `canary_bad_events / (budget x total_events_per_second x slo_window_seconds)`.
/// `None` when an input is missing, not finite or negative, or the service has no traffic.
pub fn canary_budget_spend(
    target: f64,
    slo_window: Duration,
    canary_bad_events: Option<f64>,
    total_events_per_second: Option<f64>,
) -> Option<f64> {
    let (bad, rate) = (canary_bad_events?, total_events_per_second?);
    if !bad.is_finite() || bad < 0.0 || !rate.is_finite() || rate <= 0.0 {
        return None;
    }
    let allowed = error_budget(target)? * rate * slo_window.as_secs_f64();
    let spend = bad / allowed;
    (allowed > 0.0 && spend.is_finite()).then_some(spend)
}

/// The canary's spend of one objective's budget, judged against the policy.
#[derive(Clone, Debug, PartialEq)]
pub struct CanarySpend {
    pub objective: String,
    /// Fraction of the budget burnt by the canary; `None`: no data.
    pub spend: Option<f64>,
    /// `policy.canaryMaxBudgetSpend`.
    pub limit: f64,
    /// True when the spend is strictly above the limit: roll back.
    pub exceeded: bool,
}

impl CanarySpend {
    /// E.g. "the canary burnt 6.2 % of objective availability's error budget, above
    /// spec.policy.canaryMaxBudgetSpend 5.0 %".
    pub fn reason(&self) -> String {
        match self.spend {
            None => format!(
                "no data for the canary's spend of objective {}'s error budget",
                self.objective
            ),
            Some(spend) => format!(
                "the canary burnt {} of objective {}'s error budget, {} spec.policy.canaryMaxBudgetSpend {}",
                percent(spend),
                self.objective,
                if self.exceeded { "above" } else { "within" },
                percent(self.limit)
            ),
        }
    }
}

/// [`canary_budget_spend`] for `objective`, judged against `spec.policy.canaryMaxBudgetSpend`.
pub fn judge_canary_spend(
    spec: &SLOBudgetSpec,
    objective: &Objective,
    canary_bad_events: Option<f64>,
    total_events_per_second: Option<f64>,
) -> CanarySpend {
    let limit = spec.policy.canary_max_budget_spend;
    let spend = canary_budget_spend(
        objective.target,
        spec.window,
        canary_bad_events,
        total_events_per_second,
    );
    CanarySpend {
        objective: objective.name.clone(),
        spend,
        limit,
        exceeded: spend.is_some_and(|s| s > limit),
    }
}

/// An objective's burn on the canary track alone.
#[derive(Clone, Debug, PartialEq)]
pub struct CanaryBurn {
    pub objective: String,
    /// Burn rate per burn-rate window with data, keyed like `ObjectiveStatus::burn_rates`.
    pub burn_rates: BTreeMap<String, f64>,
    pub firing: Vec<FiringPair>,
}

impl CanaryBurn {
    /// The first Critical pair firing on the canary track: a reason to roll back.
    pub fn critical(&self) -> Option<&FiringPair> {
        self.firing
            .iter()
            .find(|p| p.severity == Severity::Critical)
    }

    /// E.g. "objective availability burning 16.2x over 1h/5m (critical pair 14.4) on the
    /// canary track", when a Critical pair fires.
    pub fn reason(&self) -> Option<String> {
        self.critical()
            .map(|pair| format!("{pair} on the canary track"))
    }
}

/// Burn rates and firing pairs of `objective` computed on the canary track's measurements
/// only (its queries run with `{{track}}` = canary, `{{window}}` = each pair window).
pub fn canary_burn(
    spec: &SLOBudgetSpec,
    objective: &Objective,
    canary: &WindowMeasurements,
) -> CanaryBurn {
    let mut windows: Vec<Duration> = spec
        .burn_rate_alerts
        .iter()
        .flat_map(|p| [p.long, p.short])
        .collect();
    windows.sort();
    windows.dedup();
    let (rates, firing) = burn(objective, &windows, &spec.burn_rate_alerts, Some(canary));
    CanaryBurn {
        objective: objective.name.clone(),
        burn_rates: keyed_by_window(rates),
        firing,
    }
}

/// Problems the CRD schema cannot express on Kubernetes 1.20, each a sentence naming the field.
pub fn validate_budget(spec: &SLOBudgetSpec) -> Vec<String> {
    let mut problems = Vec::new();

    if spec.window.is_zero() {
        problems.push("spec.window must be longer than 0s".to_string());
    }
    if spec.interval.is_zero() {
        problems.push("spec.interval must be longer than 0s".to_string());
    }
    if spec.objectives.is_empty() {
        problems.push("spec.objectives must list at least one objective".to_string());
    }

    let mut names = BTreeSet::new();
    for (i, objective) in spec.objectives.iter().enumerate() {
        let field = format!("spec.objectives[{i}]");
        if objective.name.trim().is_empty() {
            problems.push(format!("{field}.name must not be empty"));
        } else if !names.insert(objective.name.as_str()) {
            problems.push(format!(
                "{field}.name {:?} is used by an earlier objective",
                objective.name
            ));
        }
        if !(objective.target > 0.0 && objective.target < 100.0) {
            problems.push(format!(
                "{field}.target {} must be between 0 and 100 (exclusive)",
                objective.target
            ));
        }
        for (query_field, query) in [("good", &objective.good), ("total", &objective.total)] {
            if query.trim().is_empty() {
                problems.push(format!("{field}.{query_field} must not be empty"));
            } else if let Err(error) = validate_promql(query) {
                problems.push(format!("{field}.{query_field}: {error}"));
            } else if !mentions_window(query) {
                problems.push(format!(
                    "{field}.{query_field} has no {{{{window}}}} placeholder, so the SLO window and every burn-rate window would measure the same range"
                ));
            }
        }
    }

    for (i, pair) in spec.burn_rate_alerts.iter().enumerate() {
        let field = format!("spec.burnRateAlerts[{i}]");
        if !(pair.factor > 0.0 && pair.factor.is_finite()) {
            problems.push(format!("{field}.factor {} must be above 0", pair.factor));
        }
        for (name, window) in [("long", pair.long), ("short", pair.short)] {
            if window.is_zero() {
                problems.push(format!("{field}.{name} must be longer than 0s"));
            } else if window > spec.window {
                problems.push(format!(
                    "{field}.{name} {window} is longer than spec.window {}",
                    spec.window
                ));
            }
        }
        if pair.short >= pair.long {
            problems.push(format!(
                "{field}.short {} must be shorter than {field}.long {}",
                pair.short, pair.long
            ));
        }
    }

    for (name, value) in [
        ("freezeBelowRemaining", spec.policy.freeze_below_remaining),
        ("canaryMaxBudgetSpend", spec.policy.canary_max_budget_spend),
    ] {
        if !(0.0..=1.0).contains(&value) {
            problems.push(format!(
                "spec.policy.{name} {value} must be between 0 and 1"
            ));
        }
    }

    problems
}

/// Whether the query changes with `{{window}}` (spaces inside the braces allowed).
fn mentions_window(query: &str) -> bool {
    let with = |window: &str| render(query, &TemplateVars::placeholders().set("window", window));
    matches!((with("1h"), with("2h")), (Ok(a), Ok(b)) if a != b)
}

#[cfg(test)]
#[path = "slo_tests.rs"]
mod tests;
