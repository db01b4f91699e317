//! The fault campaign: randomized scenarios of rollouts and pipelines (good, bad, slow to become
//! ready; some edited by a GitOps-like writer or deleted mid-rollout) on the local control
//! plane, with faults injected at random moments: the operator killed (kill -9) or failed over,
//! the apiserver and etcd restarted, Prometheus stopped, slow, failing, answering NaN or
//! nothing. After each batch it checks the invariants and counts every violation; it prints the
//! scenarios, the faults by kind, the violations and the seeds, and fails when any invariant was
//! violated.
//!
//! It restarts the control plane under its feet, so it runs on one of its own: `hack/faults`
//! starts it, runs this, and stops it.
//!
//! ```text
//! bash hack/faults                                  # 200 scenarios
//! SLUICE_FAULT_SCENARIOS=30 bash hack/faults        # fewer (what hack/test runs)
//! SLUICE_FAULT_SEEDS=1234,5678 bash hack/faults     # replay these batches
//! ```
//!
//! docs/robustness.md says what each invariant means and how it is observed.

#[path = "faults/injector.rs"]
mod injector;
#[path = "faults/observer.rs"]
mod observer;
#[path = "../tests/pipeline_fixture/mod.rs"]
mod pipeline_fixture;
#[path = "faults/prometheus_starts.rs"]
mod prometheus_starts;
#[path = "faults/proxy.rs"]
mod proxy;
#[path = "../tests/rollout_fixture/mod.rs"]
mod rollout_fixture;
#[path = "faults/scenario.rs"]
mod scenario;
#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use rand::SeedableRng;
use rand::rngs::StdRng;

use injector::{Fault, Operators};
use observer::Observer;
use prometheus_starts::PrometheusStarts;
use proxy::PrometheusProxy;
use scenario::{Edit, Invariant, Kind, Plan, Scenario};
use support::TestEnv;

/// How long the scenarios of a batch may take to settle after the last fault and edit.
const SETTLE: Duration = Duration::from_secs(240);
/// How long a batch's rollouts may take to adopt their targets.
const ADOPTION: Duration = Duration::from_secs(120);

struct Settings {
    scenarios: usize,
    batch: usize,
    seeds: Vec<u64>,
}

impl Settings {
    /// SLUICE_FAULT_SCENARIOS (default 200) in batches of SLUICE_FAULT_BATCH (default 10) run
    /// at once, each batch drawn from a seed; SLUICE_FAULT_SEEDS replays the batches listed.
    fn read() -> Settings {
        let number = |name: &str, default: usize| {
            std::env::var(name)
                .ok()
                .map(|v| v.parse().unwrap_or_else(|e| panic!("{name}={v}: {e}")))
                .unwrap_or(default)
        };
        let batch = number("SLUICE_FAULT_BATCH", 10).max(1);
        let seeds: Vec<u64> = match std::env::var("SLUICE_FAULT_SEEDS") {
            Ok(list) => list
                .split(',')
                .map(|s| {
                    s.trim()
                        .parse()
                        .unwrap_or_else(|e| panic!("SLUICE_FAULT_SEEDS {s}: {e}"))
                })
                .collect(),
            Err(_) => {
                let scenarios = number("SLUICE_FAULT_SCENARIOS", 200);
                let first = jiff::Timestamp::now().as_second() as u64;
                (0..scenarios.div_ceil(batch) as u64)
                    .map(|i| first * 1000 + i)
                    .collect()
            }
        };
        Settings {
            scenarios: seeds.len() * batch,
            batch,
            seeds,
        }
    }
}

#[derive(Default)]
struct Tally {
    scenarios: BTreeMap<String, usize>,
    faults: BTreeMap<Fault, usize>,
    transitions: usize,
    across_gaps: usize,
    lease_exits: usize,
    prometheus_starts: usize,
    violations: Vec<(Invariant, u64, String)>,
}

impl Tally {
    fn violation(&mut self, invariant: Invariant, seed: u64, what: String) {
        println!("  VIOLATION [{}] seed {seed}: {what}", invariant.describe());
        self.violations.push((invariant, seed, what));
    }
}

#[tokio::main]
async fn main() {
    let settings = Settings::read();
    observer::check_the_judge();
    let env = TestEnv::get().await;
    let began = Instant::now();
    let proxy = Arc::new(PrometheusProxy::start(&env.prometheus_url).await);
    let prometheus_starts = PrometheusStarts::watch(&env.prometheus_url).await;
    let home = env.namespace("faults").await;
    let mut operators = Operators::start(&env, proxy.url(), home.name());
    let observer = Observer::start(env.client.clone());
    let mut tally = Tally::default();
    println!(
        "fault campaign: {} scenarios in {} batches of {}; operator logs: {}",
        settings.scenarios,
        settings.seeds.len(),
        settings.batch,
        operators.log_paths().join(", ")
    );

    for (number, &seed) in settings.seeds.iter().enumerate() {
        let mut rng = StdRng::seed_from_u64(seed);
        let plans: Vec<Plan> = (0..settings.batch).map(|_| Plan::draw(&mut rng)).collect();
        let faults = injector::draw(&mut rng);
        let batch_began = Instant::now();
        println!(
            "\nbatch {}/{} seed {seed}: faults {:?}",
            number + 1,
            settings.seeds.len(),
            faults
                .iter()
                .map(|f| (f.fault, f.at.as_secs()))
                .collect::<Vec<_>>()
        );
        for plan in &plans {
            let routing = if plan.gateway { "gateway" } else { "replicas" };
            *tally
                .scenarios
                .entry(format!("{:?}", plan.kind))
                .or_default() += 1;
            *tally
                .scenarios
                .entry(format!("routing {routing}"))
                .or_default() += 1;
            *tally
                .scenarios
                .entry(format!("edit {:?}", plan.edit))
                .or_default() += 1;
        }
        for timed in &faults {
            *tally.faults.entry(timed.fault).or_default() += 1;
        }

        operators.new_batch();
        let mut scenarios: Vec<Scenario> = join_all(plans.into_iter().map(Scenario::deploy)).await;
        wait_adopted(&scenarios, &mut operators, seed, &mut tally).await;

        let start = Instant::now();
        let injection = tokio::spawn(injector::run(faults, start, operators, proxy.clone()));
        join_all(scenarios.iter_mut().map(|s| s.drive(start))).await;
        operators = injection.await.expect("the fault injector");

        let down = injector::environment_down().await;
        assert!(
            down.is_empty(),
            "the environment lost a component: {down:?}"
        );
        settle(&scenarios, &mut operators, seed, &mut tally).await;
        for scenario in &scenarios {
            let ns = scenario.namespace().name();
            for (invariant, what) in scenario.check().await {
                tally.violation(
                    invariant,
                    seed,
                    format!(
                        "{ns} ({:?}, edit {:?}): {what}",
                        scenario.plan.kind, scenario.plan.edit
                    ),
                );
            }
            let judged = observer.judge(ns, &prometheus_starts.untrusted());
            tally.transitions += judged.transitions;
            tally.across_gaps += judged.across_gaps;
            for what in judged.skipped_or_repeated {
                tally.violation(Invariant::StageSkippedOrRepeated, seed, what);
            }
            for what in judged.without_passing_judgement {
                tally.violation(Invariant::PromotionWithoutPassingJudgement, seed, what);
            }
            observer.forget(ns);
        }
        for exit in std::mem::take(&mut operators.unexpected_exits) {
            tally.violation(Invariant::PanicOrCrash, seed, exit);
        }
        println!(
            "  batch done in {:.0} s",
            batch_began.elapsed().as_secs_f64()
        );
        // Dropping the scenarios deletes their namespaces.
        drop(scenarios);
    }
    tally.lease_exits = operators.lease_exits;
    tally.prometheus_starts = prometheus_starts.count();
    for panic in operators.panics() {
        tally.violation(Invariant::PanicOrCrash, 0, panic);
    }
    report(&settings, &tally, began.elapsed());
    if !tally.violations.is_empty() {
        std::process::exit(1);
    }
}

async fn wait_adopted(
    scenarios: &[Scenario],
    operators: &mut Operators,
    seed: u64,
    tally: &mut Tally,
) {
    for scenario in wait_for(scenarios, operators, ADOPTION, Scenario::adopted).await {
        let ns = scenario.namespace().name();
        let what = format!("{ns}: not adopted: {}", scenario.whereabouts().await);
        tally.violation(Invariant::Stuck, seed, what);
    }
}

async fn settle(scenarios: &[Scenario], operators: &mut Operators, seed: u64, tally: &mut Tally) {
    for scenario in wait_for(scenarios, operators, SETTLE, Scenario::settled).await {
        let ns = scenario.namespace().name();
        let (kind, edit) = (scenario.plan.kind, scenario.plan.edit);
        let what = format!(
            "{ns} ({kind:?}, edit {edit:?}) not settled after {SETTLE:?}: {}",
            scenario.whereabouts().await
        );
        tally.violation(Invariant::Stuck, seed, what);
        println!("    Deployments:\n      {}", scenario.deployments().await);
    }
}

/// Looks at every scenario each second, and at the operators in between, until `done` holds for
/// all or `patience` ran out; returns those for which it does not.
async fn wait_for<'a, Done, Fut>(
    scenarios: &'a [Scenario],
    operators: &mut Operators,
    patience: Duration,
    done: Done,
) -> Vec<&'a Scenario>
where
    Done: Fn(&'a Scenario) -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + patience;
    loop {
        let finished = join_all(scenarios.iter().map(&done)).await;
        if finished.iter().all(|f| *f) || Instant::now() >= deadline {
            return scenarios
                .iter()
                .zip(finished)
                .filter(|(_, f)| !f)
                .map(|(s, _)| s)
                .collect();
        }
        operators.look().await;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn report(settings: &Settings, tally: &Tally, took: Duration) {
    println!("\n== fault campaign ==");
    println!(
        "{} scenarios in {} batches of {} at once, {:.1} min",
        settings.scenarios,
        settings.seeds.len(),
        settings.batch,
        took.as_secs_f64() / 60.0
    );
    let kinds = [
        Kind::Good,
        Kind::Bad,
        Kind::Slow,
        Kind::PipelineGood,
        Kind::PipelineBad,
    ]
    .map(|k| format!("{k:?}"));
    let edits = [
        Edit::None,
        Edit::Template,
        Edit::Spec,
        Edit::Route,
        Edit::Delete,
    ]
    .map(|e| format!("edit {e:?}"));
    for group in [
        &kinds[..],
        &edits[..],
        &["routing replicas".into(), "routing gateway".into()][..],
    ] {
        let line: Vec<String> = group
            .iter()
            .map(|k| format!("{k} {}", tally.scenarios.get(k).copied().unwrap_or(0)))
            .collect();
        println!("  {}", line.join(", "));
    }
    let faults: Vec<String> = Fault::ALL
        .iter()
        .map(|f| format!("{f:?} {}", tally.faults.get(f).copied().unwrap_or(0)))
        .collect();
    println!(
        "faults ({} in all): {}",
        tally.faults.values().sum::<usize>(),
        faults.join(", ")
    );
    println!(
        "stage changes observed: {} ({} right after a watch relist, not judged)",
        tally.transitions, tally.across_gaps
    );
    println!(
        "Prometheus starts seen: {} (no stage may pass on an evaluation within one lookback of one)",
        tally.prometheus_starts
    );
    println!(
        "operator exits on a lost lease (by design, restarted): {}",
        tally.lease_exits
    );
    println!("invariant violations: {}", tally.violations.len());
    for invariant in Invariant::ALL {
        let count = tally
            .violations
            .iter()
            .filter(|(i, _, _)| *i == invariant)
            .count();
        println!("  {:<50} {count}", invariant.describe());
    }
    let seeds: Vec<String> = settings.seeds.iter().map(u64::to_string).collect();
    println!(
        "seeds (replay with SLUICE_FAULT_SEEDS=...): {}",
        seeds.join(",")
    );
}
