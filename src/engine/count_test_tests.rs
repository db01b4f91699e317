use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use super::*;

fn counts(canary: (f64, f64), stable: (f64, f64)) -> Counts {
    Counts {
        canary: TrackCounts {
            events: canary.0,
            requests: canary.1,
        },
        stable: TrackCounts {
            events: stable.0,
            requests: stable.1,
        },
    }
}

/// One evaluation's (canary events, canary requests, stable events, stable requests).
type Evaluation = (f64, f64, f64, f64);

fn evidence_of(bounds: &[f64], evaluations: &[Evaluation]) -> CountEvidence {
    let mut evidence = CountEvidence::new(bounds);
    for &(ec, nc, es, ns) in evaluations {
        assert!(evidence.add(&counts((ec, nc), (es, ns))));
    }
    evidence
}

fn close(actual: f64, expected: f64) -> bool {
    ((actual - expected) / expected).abs() < 1e-9
}

/// Reference values from scipy 1.17 (`scipy.stats.binom.logpmf` of the canary's share of each
/// evaluation's events, the same grid of alternatives, averaged likelihood ratios).
#[test]
fn e_values_agree_with_scipy() {
    let worse = [
        (3.0, 1000.0, 10.0, 19000.0),
        (5.0, 1100.0, 12.0, 18500.0),
        (9.0, 950.0, 8.0, 19400.0),
        (4.0, 1020.0, 11.0, 18900.0),
    ];
    let alike = [
        (1.0, 500.0, 20.0, 9500.0),
        (0.0, 480.0, 18.0, 9600.0),
        (2.0, 510.0, 22.0, 9400.0),
        (1.0, 505.0, 17.0, 9550.0),
        (0.0, 495.0, 21.0, 9480.0),
    ];
    let cases: [(&[Evaluation], f64, f64, f64); 5] = [
        (&worse, 2.0, 173020.60632763745, 0.004586840502083399),
        (&worse, 1.15, 1409278001.7702882, 0.0030567220590843967),
        (&worse, 0.5, 2657356241627491.0, 0.00219980669025866),
        (&alike, 2.0, 0.02610330332585129, 4.7098318834947275),
        (&alike, 1.15, 0.07996677081501197, 0.5143152144203262),
    ];
    for (evaluations, bound, above, below) in cases {
        let evidence = evidence_of(&[bound], evaluations);
        let e = evidence.bounds[0].e_values();
        assert!(
            close(e.above, above),
            "bound {bound}: above {} vs {above}",
            e.above
        );
        assert!(
            close(e.below, below),
            "bound {bound}: below {} vs {below}",
            e.below
        );
    }
}

#[test]
fn unusable_counts_add_nothing() {
    let mut evidence = CountEvidence::new(&[2.0]);
    for bad in [
        counts((1.0, 0.0), (1.0, 100.0)),
        counts((1.0, 100.0), (1.0, 0.0)),
        counts((f64::NAN, 100.0), (1.0, 100.0)),
        counts((-1.0, 100.0), (1.0, 100.0)),
    ] {
        assert!(!evidence.add(&bad), "{bad:?}");
    }
    assert_eq!(evidence, CountEvidence::new(&[2.0]));
    // No events on either side: counted, and no evidence either way.
    assert!(evidence.add(&counts((0.0, 100.0), (0.0, 1900.0))));
    let e = evidence.bounds[0].e_values();
    assert_eq!((e.above, e.below), (1.0, 1.0));
    assert_eq!(evidence.rate_ratio(), None);
}

#[test]
fn a_changed_bound_is_not_the_same_test() {
    let evidence = CountEvidence::new(&[2.0]);
    assert!(evidence.tests(&[2.0]));
    assert!(!evidence.tests(&[1.5]));
    assert!(!evidence.tests(&[2.0, 0.5]));
}

/// A Poisson draw by inversion (means up to a few hundred).
fn poisson(rng: &mut StdRng, mean: f64) -> f64 {
    let (mut k, mut p, mut cumulative) = (0.0, (-mean).exp(), (-mean).exp());
    let u: f64 = rng.random();
    while u > cumulative && k < 10_000.0 {
        k += 1.0;
        p *= mean / k;
        cumulative += p;
    }
    k
}

/// One evaluation's counts: 5 % of 2 000 requests on the canary, stable's error rate 1 %, the
/// canary's `theta` times that.
fn draw_evaluation(rng: &mut StdRng, theta: f64) -> Counts {
    let canary_requests = poisson(rng, 100.0);
    let stable_requests = poisson(rng, 1900.0);
    let stable_events = poisson(rng, stable_requests * 0.01);
    let canary_events = poisson(rng, canary_requests * 0.01 * theta);
    counts(
        (canary_events, canary_requests),
        (stable_events, stable_requests),
    )
}

/// Stages of `looks` evaluations whose canary rate is `theta` times stable's; the fraction in
/// which the test ever said "above" (and "below") at level `alpha`.
fn rejection_rates(theta: f64, bound: f64, looks: u32, stages: u32, alpha: f64) -> (f64, f64) {
    let mut rng = StdRng::seed_from_u64(7);
    let (mut above, mut below) = (0, 0);
    for _ in 0..stages {
        let mut evidence = CountEvidence::new(&[bound]);
        let (mut said_above, mut said_below) = (false, false);
        for _ in 0..looks {
            evidence.add(&draw_evaluation(&mut rng, theta));
            let e = evidence.bounds[0].e_values();
            said_above |= e.above >= 1.0 / alpha;
            said_below |= e.below >= 1.0 / alpha;
        }
        above += u32::from(said_above);
        below += u32::from(said_below);
    }
    let rate = |n: u32| f64::from(n) / f64::from(stages);
    (rate(above), rate(below))
}

/// At the bound itself, the hardest null for both directions, over 60 looks: neither "above"
/// nor "below" is said in more than alpha of the stages (with three standard errors of slack).
#[test]
fn at_the_bound_the_error_rate_stays_within_alpha_over_every_look() {
    let (alpha, stages) = (0.05, 2000);
    let slack = 3.0 * (alpha * (1.0 - alpha) / f64::from(stages)).sqrt();
    let (above, below) = rejection_rates(2.0, 2.0, 60, stages, alpha);
    assert!(above <= alpha + slack, "above: {above}");
    assert!(below <= alpha + slack, "below: {below}");
}

#[test]
fn a_rate_well_beyond_the_bound_is_established_and_one_well_within_too() {
    let alpha = 0.01;
    let (above, _) = rejection_rates(6.0, 2.0, 30, 200, alpha);
    assert!(
        above >= 0.99,
        "six times stable's rate, bound twice: {above}"
    );
    let (wrong_way, within) = rejection_rates(1.0, 2.0, 60, 200, alpha);
    assert!(within >= 0.9, "stable's rate, bound twice: {within}");
    assert!(wrong_way <= alpha, "{wrong_way}");
}

#[test]
fn the_excluded_ratios_lie_on_either_side_of_the_estimate() {
    let worse = [
        (3.0, 1000.0, 10.0, 19000.0),
        (5.0, 1100.0, 12.0, 18500.0),
        (9.0, 950.0, 8.0, 19400.0),
        (4.0, 1020.0, 11.0, 18900.0),
    ];
    for bound in [2.0, 1.15, 0.5] {
        let evidence = evidence_of(&[bound], &worse);
        let estimate = evidence.rate_ratio().expect("a ratio");
        let (lower, upper) = evidence.bounds[0].excluded(0.01);
        let lower = lower.expect("low ratios are excluded");
        assert!(lower < estimate, "bound {bound}: {lower} < {estimate}");
        assert!(
            upper.is_none_or(|u| u > estimate),
            "bound {bound}: {upper:?}"
        );
    }
}

/// Over many stages whose true ratio, 3, lies between grid points, the ratio is excluded (below
/// the lower end or above the upper one) in no more than twice alpha of them, at any look.
#[test]
fn the_true_ratio_is_rarely_excluded() {
    let (alpha, stages, looks) = (0.05, 1000, 40);
    let mut rng = StdRng::seed_from_u64(11);
    let mut excluded = 0;
    for _ in 0..stages {
        let mut evidence = CountEvidence::new(&[2.0]);
        let mut ever = false;
        for _ in 0..looks {
            evidence.add(&draw_evaluation(&mut rng, 3.0));
            let (lower, upper) = evidence.bounds[0].excluded(alpha);
            ever |= lower.is_some_and(|l| l > 3.0) || upper.is_some_and(|u| u < 3.0);
        }
        excluded += u32::from(ever);
    }
    let rate = f64::from(excluded) / f64::from(stages);
    let slack = 3.0 * (2.0 * alpha * (1.0 - 2.0 * alpha) / f64::from(stages)).sqrt();
    assert!(
        rate <= 2.0 * alpha + slack,
        "excluded in {rate} of the stages"
    );
}
