use super::*;
use crate::noise::Noise;

#[test]
fn mixture_ratio_matches_scipy() {
    // ln(mean over k of (f.pdf(x/(k l), d, d)/(k l)) / (f.pdf(x/l, d, d)/l)) with
    // scipy.stats.f, scipy 1.17.1, k in (2, 4, 8, 16, 64).
    let cases = [
        (400.0, 9.0, 396.0, -1.8937979372417384),
        (2000.0, 9.0, 396.0, 1.928166270221739),
        (1.0, 20.0, 4.0, -6.4306354872629585),
        (30.0, 5.0, 4.0, 1.66385654961418),
        (12.5, 59.0, 4.0, 7.3532570226899825),
    ];
    for (x, d, null, expected) in cases {
        let got = log_mixture_ratio(x, d, null);
        assert!(
            (got - expected).abs() < 1e-9,
            "log ratio({x}, {d}, {null}) = {got}, scipy {expected}"
        );
    }
}

#[test]
fn the_traffic_share_explains_a_noisier_canary_below_half_the_traffic() {
    assert_eq!(explained_ratio(1), 99.0);
    assert_eq!(explained_ratio(25), 3.0);
    assert_eq!(explained_ratio(50), 1.0);
    assert_eq!(explained_ratio(90), 1.0);
    assert_eq!(
        explained_ratio(0),
        99.0,
        "no weight is judged as the smallest"
    );
}

#[test]
fn too_few_pairs_a_constant_track_or_a_value_of_zero_give_no_test() {
    let mut evidence = PairedEvidence::default();
    for i in 1..5 {
        evidence.add(f64::from(i), 1.0 + f64::from(i));
    }
    assert_eq!(test(&evidence, 4.0), None, "4 pairs");
    evidence.add(9.0, 2.0);
    let five = test(&evidence, 4.0).expect("a test after 5 pairs");
    // The variances of the logarithms: canary ln 1, ln 2, ln 3, ln 4, ln 9; stable ln 2 .. ln 5, ln 2.
    let variance = |values: &[f64]| {
        let logs: Vec<f64> = values.iter().map(|v| v.ln()).collect();
        let mean = logs.iter().sum::<f64>() / logs.len() as f64;
        logs.iter().map(|l| (l - mean).powi(2)).sum::<f64>()
    };
    let expected = variance(&[1.0, 2.0, 3.0, 4.0, 9.0]) / variance(&[2.0, 3.0, 4.0, 5.0, 2.0]);
    assert!((five.ratio - expected).abs() < 1e-12, "{five:?}");
    evidence.add(0.0, 2.0);
    assert_eq!(test(&evidence, 4.0), None, "a value of 0 ends the test");
    let mut constant = PairedEvidence::default();
    for i in 1..20 {
        constant.add(f64::from(i), 1.0);
    }
    assert_eq!(test(&constant, 4.0), None, "stable never varied");
}

/// Rollouts of `looks` evaluations of lognormal values where the canary's logarithms have
/// `sd_ratio` times stable's standard deviation; returns how many the test rejected at any
/// look.
fn rejections(seed: u64, rollouts: u32, looks: u32, sd_ratio: f64, alpha: f64) -> u32 {
    let mut noise = Noise::new(seed);
    let null = TOLERANCE;
    (0..rollouts)
        .filter(|_| {
            let mut evidence = PairedEvidence::default();
            (0..looks).any(|_| {
                evidence.add(
                    (0.2 * sd_ratio * noise.normal()).exp(),
                    (0.2 * noise.normal()).exp(),
                );
                test(&evidence, null).is_some_and(|t| t.rejects(alpha))
            })
        })
        .count() as u32
}

/// At the null's boundary (the canary's spread exactly as large as tolerated), looking after
/// every one of 200 evaluations, the test rejects at most alpha of the rollouts.
#[test]
fn looking_at_every_evaluation_keeps_the_false_alarm_rate_below_alpha() {
    let (rollouts, alpha) = (4000, 0.01);
    let rejected = rejections(11, rollouts, 200, TOLERANCE.sqrt(), alpha);
    let rate = f64::from(rejected) / f64::from(rollouts);
    assert!(rate <= alpha, "false alarms {rejected} of {rollouts}");
}

/// A canary whose spread is four times the tolerated one (sixteen times in variance) is caught
/// within 30 evaluations nearly always, even at a per-test level of 0.1 %.
#[test]
fn an_erratic_canary_is_caught() {
    let rollouts = 500;
    let caught = rejections(12, rollouts, 30, 4.0 * TOLERANCE.sqrt(), 0.001);
    assert!(caught >= 490, "caught {caught} of {rollouts}");
}
