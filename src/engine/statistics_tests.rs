// Reference values were computed independently with scipy 1.17.1, numpy 2.4.6 and
// statsmodels 0.15.0:
//   scipy.stats.mannwhitneyu(candidate, baseline, alternative='two-sided', use_continuity=True,
//                            method='asymptotic')   -> U (of the candidate) and p
//   z = sign(U - nm/2) * max(|U - nm/2| - 0.5, 0) / sigma_tie_corrected
//   Hodges-Lehmann by brute force: d = np.sort((c[:, None] - b[None, :]).ravel()),
//     estimate = np.median(d), C = floor(nm/2 - norm.ppf(1 - alpha/2) * sqrt(nm(n+m+1)/12) + 0.5),
//     interval = (d[C-1], d[nm-C])
//   statsmodels.stats.proportion.proportions_ztest([g1, g2], [n1, n2])  -> z, p
//   scipy.stats.norm.cdf / norm.ppf

use proptest::prelude::*;

use super::*;

#[track_caller]
fn assert_close(actual: f64, expected: f64, tolerance: f64) {
    assert!(
        (actual - expected).abs() <= tolerance * expected.abs().max(1e-300),
        "{actual} is not {expected} (relative tolerance {tolerance})"
    );
}

const NAN: f64 = f64::NAN;
const INF: f64 = f64::INFINITY;

#[test]
fn normal_distribution_matches_scipy() {
    // statrs' erfc is accurate to about 1e-10 relative (measured against Python's math.erfc),
    // far below what a p-value needs; the reference comparisons allow 1e-9.
    assert_close(normal_cdf(1.96), 0.9750021048517795, 1e-9);
    assert_close(normal_cdf(-3.5), 0.00023262907903552502, 1e-9);
    assert_close(normal_cdf(-8.0), 6.22096057427174e-16, 1e-9);
    assert_close(normal_cdf(0.0), 0.5, 1e-15);
    assert_close(normal_quantile(0.99).unwrap(), 2.3263478740408408, 1e-9);
    assert_close(normal_quantile(0.975).unwrap(), 1.959963984540054, 1e-9);
    assert_close(normal_quantile(1e-10).unwrap(), -6.361340902404056, 1e-9);
    for p in [0.0, 1.0, -0.1, 1.5, NAN] {
        assert_eq!(normal_quantile(p), None, "p {p}");
    }
}

struct RankCase {
    name: &'static str,
    candidate: &'static [f64],
    baseline: &'static [f64],
    u: f64,
    z: f64,
    p: f64,
}

const RANK_CASES: &[RankCase] = &[
    RankCase {
        name: "ties",
        candidate: &[1.2, 3.4, 3.4, 5.0, 7.1, 2.2, 9.8],
        baseline: &[2.2, 3.4, 4.0, 6.6, 0.5, 8.1],
        u: 22.5,
        z: 0.1438485297890913,
        p: 0.8856200801241462,
    },
    RankCase {
        name: "shift",
        candidate: &[10.1, 11.3, 12.7, 9.8, 13.2, 11.9, 12.4, 10.6],
        baseline: &[9.1, 8.7, 10.0, 9.5, 8.2, 9.9, 10.4],
        u: 52.0,
        z: 2.71959654308187,
        p: 0.006536161174242675,
    },
    RankCase {
        // Mostly zeros: |U - nm/2| is exactly the continuity correction.
        name: "zeros",
        candidate: &[0.0, 0.0, 0.0, 1.0, 0.0],
        baseline: &[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 2.0],
        u: 18.0,
        z: 0.0,
        p: 1.0,
    },
    RankCase {
        name: "n=1",
        candidate: &[5.0],
        baseline: &[1.0, 2.0, 3.0],
        u: 3.0,
        z: 0.8944271909999159,
        p: 0.37109336952269756,
    },
    RankCase {
        // scipy on the finite values only: [1.5, 2.5, 3.5, 4.5] vs [1.0, 2.0, 3.0].
        name: "NaN and Inf left out",
        candidate: &[1.5, NAN, 2.5, 3.5, 4.5],
        baseline: &[1.0, 2.0, NAN, INF, 3.0],
        u: 9.0,
        z: 0.8838834764831843,
        p: 0.376759117811582,
    },
];

#[test]
fn mann_whitney_matches_scipy() {
    for case in RANK_CASES {
        let test = mann_whitney(case.candidate, case.baseline).expect(case.name);
        assert_eq!(test.u_candidate, case.u, "{}", case.name);
        assert_eq!(
            test.u_candidate + test.u_baseline,
            (test.candidate_n * test.baseline_n) as f64,
            "{}",
            case.name
        );
        assert!(
            (test.z - case.z).abs() < 1e-12,
            "{}: z {}",
            case.name,
            test.z
        );
        assert!(
            (test.p_value - case.p).abs() <= 1e-9 * case.p,
            "{}: p {}",
            case.name,
            test.p_value
        );
    }
}

#[test]
fn mann_whitney_direction_and_degenerate_input() {
    let lower = mann_whitney(RANK_CASES[1].baseline, RANK_CASES[1].candidate).expect("samples");
    assert_eq!(lower.u_candidate, 4.0);
    assert!((lower.z + 2.71959654308187).abs() < 1e-12);

    // Every value tied: no variance; scipy 1.17 gives p = 1 and z = NaN, here z is 0.
    let tied = mann_whitney(&[1.0, 1.0, 1.0], &[1.0, 1.0]).expect("samples");
    assert_eq!((tied.u_candidate, tied.z, tied.p_value), (3.0, 0.0, 1.0));
    let zeros = mann_whitney(&[0.0, -0.0], &[0.0]).expect("samples");
    assert_eq!(zeros.p_value, 1.0);

    assert_eq!(mann_whitney(&[], &[1.0]), None);
    assert_eq!(mann_whitney(&[1.0], &[]), None);
    assert_eq!(mann_whitney(&[NAN, INF], &[1.0]), None);
}

struct ShiftCase {
    name: &'static str,
    candidate: &'static [f64],
    baseline: &'static [f64],
    confidence: f64,
    estimate: f64,
    lower: f64,
    upper: f64,
}

const SHIFT_CASES: &[ShiftCase] = &[
    ShiftCase {
        name: "shift 98 %",
        candidate: &[10.1, 11.3, 12.7, 9.8, 13.2, 11.9, 12.4, 10.6],
        baseline: &[9.1, 8.7, 10.0, 9.5, 8.2, 9.9, 10.4],
        confidence: 0.98,
        estimate: 2.1000000000000005,
        lower: 0.3000000000000007,
        upper: 3.700000000000001,
    },
    ShiftCase {
        name: "shift 95 %",
        candidate: &[10.1, 11.3, 12.7, 9.8, 13.2, 11.9, 12.4, 10.6],
        baseline: &[9.1, 8.7, 10.0, 9.5, 8.2, 9.9, 10.4],
        confidence: 0.95,
        estimate: 2.1000000000000005,
        lower: 0.6999999999999993,
        upper: 3.3000000000000007,
    },
    ShiftCase {
        name: "ties 95 %",
        candidate: &[1.2, 3.4, 3.4, 5.0, 7.1, 2.2, 9.8],
        baseline: &[2.2, 3.4, 4.0, 6.6, 0.5, 8.1],
        confidence: 0.95,
        estimate: 0.25,
        lower: -3.1999999999999997,
        upper: 4.5,
    },
    ShiftCase {
        // numpy.random.default_rng(7): round(normal(100, 5, 40), 2) and round(normal(98, 5, 35), 2).
        name: "generated 98 %",
        candidate: &[
            100.01, 101.49, 98.63, 95.55, 97.73, 95.04, 100.3, 106.7, 97.54, 96.9, 102.45, 101.78,
            100.53, 95.35, 99.85, 103.48, 93.28, 97.71, 90.49, 93.55, 90.79, 98.82, 93.66, 101.36,
            100.78, 99.07, 87.42, 97.31, 99.76, 100.57, 92.35, 97.61, 95.11, 95.96, 105.3, 95.96,
            99.84, 104.42, 97.08, 99.44,
        ],
        baseline: &[
            98.55, 98.32, 91.87, 98.38, 104.79, 90.26, 102.3, 98.6, 94.79, 108.0, 101.81, 92.0,
            98.37, 100.88, 97.06, 101.41, 97.67, 101.34, 105.19, 94.62, 99.02, 95.68, 98.64, 92.06,
            95.1, 97.02, 102.49, 103.73, 91.38, 94.03, 101.23, 88.04, 95.68, 97.51, 104.29,
        ],
        confidence: 0.98,
        estimate: 0.03499999999999659,
        lower: -2.4599999999999937,
        upper: 2.4599999999999937,
    },
];

#[test]
fn hodges_lehmann_matches_brute_force_reference() {
    for case in SHIFT_CASES {
        let shift =
            hodges_lehmann(case.candidate, case.baseline, case.confidence).expect(case.name);
        assert_eq!(shift.estimate, case.estimate, "{}", case.name);
        assert_eq!(shift.lower, case.lower, "{}", case.name);
        assert_eq!(shift.upper, case.upper, "{}", case.name);
        assert!(shift.coverage_reached, "{}", case.name);
    }
    // scipy on the generated case, for the record: U = 705, p = 0.9618834773667174.
    let generated = &SHIFT_CASES[3];
    let test = mann_whitney(generated.candidate, generated.baseline).expect("samples");
    assert_eq!(test.u_candidate, 705.0);
    assert_close(test.p_value, 0.9618834773667174, 1e-9);
}

#[test]
fn hodges_lehmann_small_and_degenerate_input() {
    // n = 1, m = 3 cannot reach 98 %: C would be below 1, so the interval is the whole range.
    let tiny = hodges_lehmann(&[5.0], &[1.0, 2.0, 3.0], 0.98).expect("samples");
    assert_eq!((tiny.estimate, tiny.lower, tiny.upper), (3.0, 2.0, 4.0));
    assert!(!tiny.coverage_reached);

    let one = hodges_lehmann(&[2.0], &[0.5], 0.9).expect("samples");
    assert_eq!((one.estimate, one.lower, one.upper), (1.5, 1.5, 1.5));

    let with_nan = hodges_lehmann(&[NAN, 3.0, 4.0], &[1.0, INF], 0.5).expect("samples");
    assert_eq!(with_nan.estimate, 2.5);

    assert_eq!(hodges_lehmann(&[], &[1.0], 0.98), None);
    assert_eq!(hodges_lehmann(&[NAN], &[1.0], 0.98), None);
    for confidence in [0.0, 1.0, NAN, -0.5] {
        assert_eq!(hodges_lehmann(&[1.0], &[1.0], confidence), None);
    }
}

#[test]
fn selection_handles_extremes() {
    // Differences that overflow to infinity are still ordered correctly.
    let shift = hodges_lehmann(&[f64::MAX, 0.0], &[-f64::MAX, 0.0], 0.5).expect("samples");
    // Differences, sorted: 0, MAX, MAX, Inf.
    assert_eq!(
        (shift.lower, shift.estimate, shift.upper),
        (0.0, f64::MAX, INF)
    );
    // Values far apart in magnitude.
    let spread = hodges_lehmann(&[1e-300, 1e300, -1e300], &[0.0, 1e-310], 0.5).expect("samples");
    assert_eq!(spread.estimate, 1e-300 / 2.0 + (1e-300 - 1e-310) / 2.0);
}

#[test]
fn median_of_finite_values() {
    assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
    assert_eq!(median(&[4.0, 1.0, NAN, 2.0, 3.0]), Some(2.5));
    assert_eq!(median(&[NAN]), None);
    assert_eq!(median(&[]), None);
}

#[test]
fn tolerance_band_verdicts() {
    // Band of 0.25 x 100 = 25 around 0.
    assert!(shift_within_tolerance((-5.0, 30.0), 100.0, 0.25));
    assert!(shift_within_tolerance((20.0, 30.0), 100.0, 0.25));
    assert!(!shift_within_tolerance((26.0, 30.0), 100.0, 0.25));
    assert!(!shift_within_tolerance((-40.0, -25.5), -100.0, 0.25));
    assert!(shift_within_tolerance((0.0, 0.0), 0.0, 0.25));
    assert!(!shift_within_tolerance((0.1, 0.2), 0.0, 0.25));

    let shift = |estimate, lower, upper| ShiftEstimate {
        estimate,
        lower,
        upper,
        confidence: 0.98,
        coverage_reached: true,
    };
    assert_eq!(
        kayenta_class(&shift(10.0, 3.0, 15.0), 0.25),
        ShiftClass::High
    );
    assert_eq!(
        kayenta_class(&shift(10.0, 2.0, 15.0), 0.25),
        ShiftClass::Pass
    );
    assert_eq!(
        kayenta_class(&shift(-10.0, -15.0, -3.0), 0.25),
        ShiftClass::Low
    );
    assert_eq!(
        kayenta_class(&shift(0.0, -1.0, 1.0), 0.25),
        ShiftClass::Pass
    );
}

#[test]
fn compare_tracks_combines_the_tests() {
    let case = &SHIFT_CASES[0];
    let comparison = compare_tracks(
        &[case.candidate, &[NAN]].concat(),
        &[case.baseline, &[INF, NAN]].concat(),
        0.98,
        0.25,
    )
    .expect("samples");
    assert_eq!(comparison.dropped, 3);
    assert_eq!(comparison.rank_sum.u_candidate, 52.0);
    assert_eq!(comparison.shift.lower, case.lower);
    assert_eq!(comparison.baseline_median, 9.5);
    // The interval [0.3, 3.7] reaches into the band of 0.25 x 9.5.
    assert!(comparison.within_tolerance);
    assert!(
        !compare_tracks(case.candidate, case.baseline, 0.98, 0.01)
            .expect("samples")
            .within_tolerance
    );
    assert_eq!(compare_tracks(&[], case.baseline, 0.98, 0.25), None);
}

#[test]
fn two_proportions_match_statsmodels() {
    let p = |good, total| Proportion { good, total };
    let cases = [
        (
            p(990.0, 1000.0),
            p(980.0, 1000.0),
            1.8395909204638767,
            0.06582831837519049,
        ),
        (
            p(9950.0, 10000.0),
            p(9990.0, 10000.0),
            -5.1717412337464435,
            2.3192261042407768e-07,
        ),
        (
            p(995.5, 1000.25),
            p(990.2, 1001.7),
            1.6783752710659448,
            0.09327386204088332,
        ),
        (
            p(3.0, 4.0),
            p(1.0, 5.0),
            1.6500000000000001,
            0.09894293606729615,
        ),
    ];
    for (candidate, baseline, z, p_value) in cases {
        let test = two_proportion_test(candidate, baseline).expect("valid counts");
        assert_close(test.z, z, 1e-12);
        assert_close(test.p_value, p_value, 1e-9);
        assert_eq!(test.difference, test.candidate_rate - test.baseline_rate);
    }
}

#[test]
fn two_proportions_degenerate_input() {
    let p = |good, total| Proportion { good, total };
    let all_good = two_proportion_test(p(10.0, 10.0), p(5.0, 5.0)).expect("valid counts");
    assert_eq!((all_good.z, all_good.p_value), (0.0, 1.0));
    let all_bad = two_proportion_test(p(0.0, 10.0), p(0.0, 5.0)).expect("valid counts");
    assert_eq!((all_bad.z, all_bad.p_value), (0.0, 1.0));
    for (candidate, baseline) in [
        (p(0.0, 0.0), p(5.0, 10.0)),
        (p(5.0, 10.0), p(0.0, 0.0)),
        (p(11.0, 10.0), p(5.0, 10.0)),
        (p(-1.0, 10.0), p(5.0, 10.0)),
        (p(NAN, 10.0), p(5.0, 10.0)),
        (p(5.0, INF), p(5.0, 10.0)),
    ] {
        assert_eq!(two_proportion_test(candidate, baseline), None);
    }
}

#[test]
fn ten_thousand_samples_per_track() {
    let baseline: Vec<f64> = (0..10_000)
        .map(|i| ((i * 7919) % 10_007) as f64 / 10.0)
        .collect();
    let candidate: Vec<f64> = baseline.iter().map(|v| v + 3.25).collect();
    let comparison = compare_tracks(&candidate, &baseline, 0.98, 0.25).expect("samples");
    assert_close(comparison.shift.estimate, 3.25, 1e-9);
    assert!(comparison.shift.lower < 3.25 && comparison.shift.upper > 3.25);
    assert_eq!(
        comparison.rank_sum.u_candidate + comparison.rank_sum.u_baseline,
        1e8
    );
}

/// All differences, sorted.
fn all_differences(candidate: &[f64], baseline: &[f64]) -> Vec<f64> {
    let mut all: Vec<f64> = candidate
        .iter()
        .flat_map(|c| baseline.iter().map(move |b| c - b))
        .collect();
    all.sort_by(f64::total_cmp);
    all
}

fn sample() -> impl Strategy<Value = Vec<f64>> {
    prop::collection::vec(
        prop_oneof![
            (-5i32..5).prop_map(f64::from),
            -1e3..1e3_f64,
            -1e-3..1e-3_f64
        ],
        1..25,
    )
}

proptest! {
    #[test]
    fn selection_agrees_with_sorting_all_differences(candidate in sample(), baseline in sample()) {
        let (c, _) = finite_sorted(&candidate);
        let (b, _) = finite_sorted(&baseline);
        // One selector for every rank (sharing its passes), and a fresh one per rank.
        let mut shared = PairwiseDifferences::new(&c, &b);
        for (k, expected) in all_differences(&c, &b).into_iter().enumerate() {
            let k = k as u64 + 1;
            prop_assert_eq!(shared.kth(k, Some(0.0)), expected, "k = {}", k);
            prop_assert_eq!(PairwiseDifferences::new(&c, &b).kth(k, None), expected, "k = {}", k);
        }
    }

    #[test]
    fn u_and_its_complement_add_up_to_nm(candidate in sample(), baseline in sample()) {
        let test = mann_whitney(&candidate, &baseline).unwrap();
        prop_assert_eq!(test.u_candidate + test.u_baseline, (candidate.len() * baseline.len()) as f64);
        prop_assert!(test.u_candidate >= 0.0 && test.u_baseline >= 0.0);
        prop_assert!((0.0..=1.0).contains(&test.p_value));
        let swapped = mann_whitney(&baseline, &candidate).unwrap();
        prop_assert_eq!(swapped.u_candidate, test.u_baseline);
        prop_assert_eq!(swapped.p_value, test.p_value);
    }

    #[test]
    fn shifted_copy_gives_the_shift(
        y in prop::collection::vec(-1e3..1e3_f64, 1..300),
        delta in -1e3..1e3_f64,
    ) {
        let shifted: Vec<f64> = y.iter().map(|v| v + delta).collect();
        let shift = hodges_lehmann(&shifted, &y, 0.98).unwrap();
        prop_assert!((shift.estimate - delta).abs() <= 1e-9, "{} vs {}", shift.estimate, delta);
        prop_assert!(shift.lower <= shift.estimate && shift.estimate <= shift.upper);
    }
}
