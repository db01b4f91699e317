//! examples/pipeline parses into Sluice's types and passes the operator's own validation:
//! the pipeline, both rollouts, and the rollouts' stages against the risk budgets.

use std::path::Path;

use sluice::api::CanaryRollout;
use sluice::api::release_pipeline::ReleasePipeline;
use sluice::engine::pipeline;
use sluice::engine::validate::validate_rollout;

fn read(file: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/pipeline")
        .join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_pipeline_example_is_valid_and_its_rollouts_fit_the_risk_budgets() {
    let pipeline: ReleasePipeline = serde_saphyr::from_str(&read("releasepipeline.yaml")).unwrap();
    assert!(pipeline::validate(&pipeline.spec, "shop").is_empty());
    let environments = &pipeline.spec.environments;
    assert_eq!(environments[0].soak.to_string(), "7d");
    assert_eq!(environments[0].risk_budget.max_canary_weight, Some(1));
    assert_eq!(environments[1].risk_budget.max_canary_weight, Some(5));
    for (index, file) in [
        "staging-canaryrollout.yaml",
        "production-canaryrollout.yaml",
    ]
    .into_iter()
    .enumerate()
    {
        let rollout: CanaryRollout = serde_saphyr::from_str(&read(file)).unwrap();
        assert_eq!(
            validate_rollout(&rollout.spec),
            Vec::<String>::new(),
            "{file}"
        );
        let budget = environments[index].risk_budget.max_canary_weight;
        let problems = pipeline::rollout_problems(index, budget, &rollout.spec.stages);
        assert!(problems.is_empty(), "{file}: {problems:?}");
        let reference = &environments[index].rollout_ref;
        assert_eq!(rollout.metadata.namespace, reference.namespace, "{file}");
    }
}
