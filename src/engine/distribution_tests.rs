use super::*;
use crate::noise::Noise;

/// Evidence counting `candidate` and `baseline` with an edge at every value: the gaps are then
/// those of the exact empirical distribution functions.
fn exact(candidate: &[f64], baseline: &[f64], tolerance: f64) -> DistributionEvidence {
    let mut edges: Vec<f64> = candidate.iter().chain(baseline).copied().collect();
    edges.sort_by(f64::total_cmp);
    edges.dedup();
    let bins = edges.len() + 1;
    let mut evidence = DistributionEvidence {
        edges,
        candidate: vec![0; bins],
        baseline: vec![0; bins],
        tolerance,
    };
    for c in candidate {
        let bin = evidence.bin(*c);
        evidence.candidate[bin] += 1;
    }
    for b in baseline {
        let bin = evidence.bin(*b);
        evidence.baseline[bin] += 1;
    }
    evidence
}

#[test]
fn the_gaps_are_the_one_sided_kolmogorov_smirnov_statistics_of_scipy() {
    // scipy 1.17.1: ks_2samp(c, b) gives statistic 0.5333333333333333, statistic_sign -1
    // (F_c below F_b: the candidate larger), statistic_location 3.7; ks_2samp(c, b,
    // alternative="greater").statistic (F_c above F_b) is 0.0.
    let candidate = [3.1, 2.7, 5.0, 4.4, 3.9, 6.2, 2.2, 4.8, 5.5, 3.3, 4.1, 6.8];
    let baseline = [
        2.0, 2.9, 3.4, 1.8, 2.6, 3.0, 4.2, 2.4, 3.7, 2.8, 1.5, 3.2, 2.1, 3.9, 2.5,
    ];
    let compared = exact(&candidate, &baseline, 0.0)
        .compare(0.05)
        .expect("samples were counted");
    assert!(
        (compared.above - 0.533_333_333_333_333_3).abs() < 1e-12,
        "{compared:?}"
    );
    assert!(compared.below.abs() < 1e-12, "{compared:?}");
    assert_eq!(compared.at, 3.7);
}

#[test]
fn the_band_is_the_time_uniform_dkw_bound() {
    // 0.85 * sqrt((ln ln(e n) + 0.8 ln(1612 / a)) / n), computed with Python's math module.
    for (n, alpha, expected) in [
        (1, 0.05, 1.0),
        (10, 0.05, 0.828_454_673_971_011_8),
        (100, 0.01, 0.285_933_863_795_174_3),
        (1000, 0.0025, 0.096_050_753_469_250_17),
        (100_000, 0.001, 0.010_043_371_782_512_992),
    ] {
        let got = band(n, alpha);
        assert!(
            (got - expected).abs() < 1e-12,
            "band({n}, {alpha}) = {got}, expected {expected}"
        );
    }
    assert_eq!(band(0, 0.01), 1.0);
}

/// Runs one comparison over `looks` evaluations of `per_look` samples each, and tells at which
/// look (if any) it established a gap.
fn first_failure(
    noise: &mut Noise,
    looks: usize,
    per_look: usize,
    tolerance: f64,
    alpha: f64,
    mut candidate: impl FnMut(&mut Noise) -> f64,
) -> Option<usize> {
    let mut evidence: Option<DistributionEvidence> = None;
    for look in 0..looks {
        let pairs: Vec<(f64, f64)> = (0..per_look)
            .map(|_| (candidate(noise), 100.0 + noise.normal()))
            .collect();
        let evidence = evidence.get_or_insert_with(|| {
            let baseline: Vec<f64> = pairs.iter().map(|p| p.1).collect();
            DistributionEvidence::start(&baseline, tolerance).expect("enough samples")
        });
        for (c, b) in pairs {
            evidence.add(c, b);
        }
        if evidence.compare(alpha).is_some_and(|c| beyond(&c)) {
            return Some(look);
        }
    }
    None
}

#[test]
fn with_no_difference_many_looks_stay_under_alpha() {
    // 400 rollouts of 60 looks at 50 samples each: at most alpha of them may ever fail.
    let (runs, alpha) = (400, 0.05);
    let mut noise = Noise::new(11);
    let failures = (0..runs)
        .filter(|_| first_failure(&mut noise, 60, 50, 0.0, alpha, |n| 100.0 + n.normal()).is_some())
        .count();
    assert!(
        (failures as f64) <= alpha * runs as f64,
        "{failures} of {runs} rollouts failed with no difference"
    );
}

#[test]
fn a_bimodal_candidate_with_the_same_mean_and_spread_is_caught() {
    // Modes at ±0.95 with deviation 0.31 each: mean 100 and variance 0.999, like the baseline.
    let bimodal = |n: &mut Noise| {
        let side = if n.uniform() < 0.5 { -0.95 } else { 0.95 };
        100.0 + side + 0.31 * n.normal()
    };
    let mut noise = Noise::new(5);
    let mut caught = 0;
    for _ in 0..20 {
        if let Some(look) = first_failure(&mut noise, 60, 50, 0.0, 0.01, bimodal) {
            caught += 1;
            assert!(
                look >= 5,
                "caught at look {look}, before the band allows it"
            );
        }
    }
    assert_eq!(
        caught, 20,
        "every bimodal candidate is caught within 3000 samples"
    );
}

#[test]
fn a_shift_within_the_tolerance_passes_and_one_beyond_it_fails_on_its_side() {
    let mut noise = Noise::new(3);
    let within = first_failure(&mut noise, 40, 50, 0.5, 0.01, |n| 100.3 + n.normal());
    assert_eq!(
        within, None,
        "a shift of 0.3 within the tolerance 0.5 never fails"
    );

    let mut evidence: Option<DistributionEvidence> = None;
    for _ in 0..40 {
        let pairs: Vec<(f64, f64)> = (0..50)
            .map(|_| (98.5 + noise.normal(), 100.0 + noise.normal()))
            .collect();
        let evidence = evidence.get_or_insert_with(|| {
            let baseline: Vec<f64> = pairs.iter().map(|p| p.1).collect();
            DistributionEvidence::start(&baseline, 0.5).expect("enough samples")
        });
        for (c, b) in pairs {
            evidence.add(c, b);
        }
    }
    let compared = evidence
        .and_then(|e| e.compare(0.01))
        .expect("samples were counted");
    assert!(beyond(&compared), "{compared:?}");
    assert!(
        compared.below > compared.band && compared.above < compared.band,
        "{compared:?}"
    );
    assert_eq!(compared.samples, 2000);
}

#[test]
fn starting_needs_enough_finite_baseline_samples() {
    let few: Vec<f64> = (0..MIN_SAMPLES - 1).map(|i| i as f64).collect();
    assert_eq!(DistributionEvidence::start(&few, 0.0), None);
    let mut with_nan = few.clone();
    with_nan.push(f64::NAN);
    assert_eq!(DistributionEvidence::start(&with_nan, 0.0), None);
    let mut enough = few;
    enough.push(100.0);
    let evidence = DistributionEvidence::start(&enough, 1.0).expect("enough samples");
    assert!(evidence.edges.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(evidence.candidate.len(), evidence.edges.len() + 1);
    assert_eq!(evidence.samples(), 0);
    assert_eq!(evidence.compare(0.01), None, "nothing counted yet");
}

#[test]
fn counts_of_the_wrong_length_give_no_comparison_rather_than_a_panic() {
    let mut evidence = exact(&[1.0, 2.0], &[1.5, 2.5], 0.0);
    evidence.baseline.pop();
    assert_eq!(evidence.compare(0.01), None);
    evidence.add(1.0, 2.0);
}
