//! Every custom resource's spec, as JSON and as YAML, through serde and the validators the
//! operator runs: an error is fine, a panic is not.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice::api::{CanaryRolloutSpec, ParityPolicySpec, ReleasePipelineSpec, SLOBudgetSpec};
use sluice::engine::{parity, pipeline, slo, validate};

fn check(text: &str, parse: impl Fn(&str) -> bool) {
    parse(text);
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let rollout = |spec: CanaryRolloutSpec| {
        validate::validate_rollout(&spec);
    };
    let policy = |spec: ParityPolicySpec| {
        parity::validate_policy(&spec);
    };
    let budget = |spec: SLOBudgetSpec| {
        slo::validate_budget(&spec);
    };
    let release = |spec: ReleasePipelineSpec| {
        pipeline::validate(&spec, "default");
    };
    check(text, |t| serde_json::from_str(t).map(rollout).is_ok());
    check(text, |t| serde_saphyr::from_str(t).map(rollout).is_ok());
    check(text, |t| serde_json::from_str(t).map(policy).is_ok());
    check(text, |t| serde_saphyr::from_str(t).map(policy).is_ok());
    check(text, |t| serde_json::from_str(t).map(budget).is_ok());
    check(text, |t| serde_saphyr::from_str(t).map(budget).is_ok());
    check(text, |t| serde_json::from_str(t).map(release).is_ok());
    check(text, |t| serde_saphyr::from_str(t).map(release).is_ok());
});
