//! Checks of a CanaryRollout spec that the CRD schema cannot express on Kubernetes 1.20
//! (no CEL). Each problem is a sentence naming the field; any problem makes the phase Invalid.

use crate::api::canary_rollout::CanaryRolloutSpec;
use crate::metrics::template::validate_promql;

pub fn validate_rollout(spec: &CanaryRolloutSpec) -> Vec<String> {
    let mut problems = Vec::new();

    let routing = &spec.traffic_routing;
    if routing.gateway_api.is_some() == routing.replicas.is_some() {
        problems
            .push("spec.trafficRouting must set exactly one of gatewayAPI or replicas".to_string());
    }
    if let Some(gateway) = &routing.gateway_api
        && gateway.http_routes.iter().any(|r| r.is_empty())
    {
        problems.push("spec.trafficRouting.gatewayAPI.httpRoutes has an empty name".to_string());
    }

    if spec.stages.is_empty() {
        problems.push("spec.stages must not be empty".to_string());
    }
    let weighted: Vec<(usize, u32)> = spec
        .stages
        .iter()
        .enumerate()
        .filter(|(_, stage)| !stage.is_shadow())
        .map(|(i, stage)| (i, stage.weight))
        .collect();
    for pair in weighted.windows(2) {
        let ((before, earlier), (after, later)) = (pair[0], pair[1]);
        if later <= earlier {
            problems.push(format!(
                "spec.stages weights must increase strictly: stages[{after}].weight {later} follows stages[{before}].weight {earlier}"
            ));
        }
    }
    problems.extend(shadow_stage_problems(spec));
    for (i, stage) in spec.stages.iter().enumerate() {
        if stage.weight > 100 {
            problems.push(format!(
                "spec.stages[{i}].weight {} is above 100",
                stage.weight
            ));
        }
        let pause = stage.pause.unwrap_or(spec.analysis.interval);
        if let Some(max) = stage.max_duration
            && max.as_std() < pause.as_std()
        {
            problems.push(format!(
                "spec.stages[{i}].maxDuration {max} is shorter than the stage's pause {pause}"
            ));
        }
        if stage.min_samples.is_some_and(|n| n > 0) && spec.analysis.sample_count_query.is_none() {
            problems.push(format!(
                "spec.stages[{i}].minSamples needs spec.analysis.sampleCountQuery"
            ));
        }
    }

    if spec.analysis.interval.is_zero() {
        problems.push("spec.analysis.interval must be longer than 0s".to_string());
    }
    if spec.progress_deadline.is_zero() {
        problems.push("spec.progressDeadline must be longer than 0s".to_string());
    }
    let confidence = spec.analysis.confidence;
    if !(0.5..1.0).contains(&confidence) {
        problems.push(format!(
            "spec.analysis.confidence {confidence} must be at least 0.5 and below 1"
        ));
    }
    if spec.analysis.failure_limit == 0 {
        problems.push("spec.analysis.failureLimit must be at least 1".to_string());
    }

    let mut names = std::collections::BTreeSet::new();
    for (i, check) in spec.analysis.checks.iter().enumerate() {
        if !names.insert(check.name.as_str()) {
            problems.push(format!(
                "spec.analysis.checks[{i}].name {:?} is used twice",
                check.name
            ));
        }
        if check.min.is_none() && check.max.is_none() && !check.is_relative() {
            problems.push(format!(
                "spec.analysis.checks[{i}] ({}) sets none of min, max, maxIncrease, maxDecrease",
                check.name
            ));
        }
        if check.is_relative() && !mentions_track(&check.query) {
            problems.push(format!(
                "spec.analysis.checks[{i}] ({}) compares with stable (maxIncrease/maxDecrease) but its query has no {{{{track}}}}",
                check.name
            ));
        }
        if let (Some(min), Some(max)) = (check.min, check.max)
            && min > max
        {
            problems.push(format!(
                "spec.analysis.checks[{i}] ({}) has min {min} above max {max}",
                check.name
            ));
        }
        if let Err(error) = validate_promql(&check.query) {
            problems.push(format!(
                "spec.analysis.checks[{i}].query ({}): {error}",
                check.name
            ));
        }
    }
    if let Some(query) = &spec.analysis.sample_count_query
        && let Err(error) = validate_promql(query)
    {
        problems.push(format!("spec.analysis.sampleCountQuery: {error}"));
    }
    problems
}

/// A shadow stage copies requests to a canary that serves no user: only the Gateway API can copy
/// them, its weight is 0, and it comes before any stage that gives the canary traffic.
fn shadow_stage_problems(spec: &CanaryRolloutSpec) -> Vec<String> {
    let mut problems = Vec::new();
    let first_weighted = spec.stages.iter().position(|stage| !stage.is_shadow());
    for (i, stage) in spec.stages.iter().enumerate() {
        let Some(mirror) = stage.mirror else {
            continue;
        };
        if !(1..=100).contains(&mirror) {
            problems.push(format!(
                "spec.stages[{i}].mirror {mirror} is out of range: a percentage from 1 to 100"
            ));
        }
        if stage.weight != 0 {
            problems.push(format!(
                "spec.stages[{i}] sets both mirror and weight {}: a shadow stage serves no user, so its weight is 0",
                stage.weight
            ));
        }
        if let Some(first) = first_weighted.filter(|first| *first < i) {
            problems.push(format!(
                "spec.stages[{i}] is a shadow stage (mirror) after stages[{first}] gave the canary traffic: shadow stages come first"
            ));
        }
        if spec.traffic_routing.replicas.is_some() {
            problems.push(format!(
                "spec.stages[{i}].mirror needs spec.trafficRouting.gatewayAPI: the replicas router cannot copy requests, its canary pods would serve users"
            ));
        }
    }
    problems
}

fn mentions_track(query: &str) -> bool {
    query.replace(' ', "").contains("{{track}}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> CanaryRolloutSpec {
        serde_saphyr::from_str(yaml).expect("test spec parses")
    }

    const BASE: &str = "
targetRef: {name: checkout}
service: {name: checkout, port: 80}
trafficRouting: {replicas: {}}
";

    #[test]
    fn default_spec_is_valid() {
        assert_eq!(validate_rollout(&spec(BASE)), Vec::<String>::new());
    }

    #[test]
    fn problems_name_the_field() {
        let cases = [
            (
                "stages: [{weight: 5}, {weight: 5}]",
                "spec.stages weights must increase strictly",
            ),
            (
                "stages: [{weight: 50}, {weight: 10}]",
                "stages[1].weight 10 follows stages[0].weight 50",
            ),
            (
                "analysis: {checks: [{name: e, query: 'sum(rate(x[5m])'}]}",
                "spec.analysis.checks[0]",
            ),
            (
                "analysis: {checks: [{name: e, query: 'up', max: 1}, {name: e, query: 'up', max: 1}]}",
                "used twice",
            ),
            (
                "analysis: {checks: [{name: e, query: 'up', min: 2, max: 1}]}",
                "min 2 above max 1",
            ),
            (
                "analysis: {checks: [{name: e, query: 'up'}]}",
                "sets none of min, max",
            ),
            (
                "stages: [{weight: 5, minSamples: 10}]",
                "needs spec.analysis.sampleCountQuery",
            ),
            (
                "analysis: {sampleCountQuery: 'sum(x{{nope}})'}",
                "spec.analysis.sampleCountQuery",
            ),
            (
                "analysis: {interval: 0s}",
                "interval must be longer than 0s",
            ),
            (
                "stages: [{weight: 5, pause: 10m, maxDuration: 5m}]",
                "spec.stages[0].maxDuration 5m is shorter than the stage's pause 10m",
            ),
            (
                "analysis: {confidence: 1.0}",
                "spec.analysis.confidence 1 must be at least 0.5 and below 1",
            ),
        ];
        for (extra, expected) in cases {
            let problems = validate_rollout(&spec(&format!("{BASE}{extra}\n")));
            assert!(
                problems.iter().any(|p| p.contains(expected)),
                "{extra}: {problems:?}"
            );
        }
    }

    #[test]
    fn shadow_stages() {
        let gateway = BASE.replace("{replicas: {}}", "{gatewayAPI: {httpRoutes: [r]}}");
        let valid = [
            "stages: [{mirror: 100, pause: 30m}, {weight: 1}, {weight: 100}]",
            "stages: [{mirror: 10}, {mirror: 100}, {weight: 0}, {weight: 5}]",
            "stages: [{mirror: 1}]",
        ];
        for stages in valid {
            let problems = validate_rollout(&spec(&format!("{gateway}{stages}\n")));
            assert_eq!(problems, Vec::<String>::new(), "{stages}");
        }
        let invalid = [
            (
                gateway.as_str(),
                "stages: [{mirror: 0}, {weight: 5}]",
                "spec.stages[0].mirror 0 is out of range: a percentage from 1 to 100",
            ),
            (
                gateway.as_str(),
                "stages: [{mirror: 101}]",
                "spec.stages[0].mirror 101 is out of range",
            ),
            (
                gateway.as_str(),
                "stages: [{mirror: 50, weight: 5}]",
                "spec.stages[0] sets both mirror and weight 5",
            ),
            (
                gateway.as_str(),
                "stages: [{weight: 5}, {mirror: 100}, {weight: 50}]",
                "spec.stages[1] is a shadow stage (mirror) after stages[0] gave the canary traffic",
            ),
            (
                BASE,
                "stages: [{mirror: 100}, {weight: 5}]",
                "spec.stages[0].mirror needs spec.trafficRouting.gatewayAPI",
            ),
        ];
        for (base, stages, expected) in invalid {
            let problems = validate_rollout(&spec(&format!("{base}{stages}\n")));
            assert!(
                problems.iter().any(|p| p.contains(expected)),
                "{stages}: {problems:?}"
            );
        }
    }

    #[test]
    fn both_routers_are_rejected() {
        let yaml = BASE.replace(
            "{replicas: {}}",
            "{replicas: {}, gatewayAPI: {httpRoutes: [r]}}",
        );
        assert!(validate_rollout(&spec(&yaml))[0].contains("exactly one"));
    }
}
