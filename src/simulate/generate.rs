//! The recordings of the example scenarios in `examples/simulate/`, generated, not measured.
//!
//! `sluice simulate generate` (hidden) writes each scenario's `metrics.om`. Traffic is
//! synthetic and deterministic: a scenario gives the request rate, the canary's share of it over
//! time (the weights a live rollout would have set), the error ratio of each track and the drift
//! of the canary's average order value; counters are whole numbers carried forward exactly, and
//! the only "noise" is a fixed pseudo-random sequence. Same code, same bytes.

use std::collections::BTreeMap;
use std::path::Path;

use super::recorded::{RecordedSeries, Recording};

/// 2026-01-05T11:00:00Z: every example's rollout starts here (`--start`), after a stretch of
/// history with all traffic on stable.
pub const ROLLOUT_START: &str = "2026-01-05T11:00:00Z";
const ROLLOUT_START_SECONDS: f64 = 1_767_610_800.0;
/// Seconds between two samples, a common scrape interval.
const STEP_SECONDS: u32 = 10;
const STABLE_ORDER_VALUE: f64 = 50.0;
/// Share of requests that place an order.
const ORDER_RATIO: f64 = 0.3;

/// A scenario's traffic; times are seconds since the start of the recording.
pub struct Scenario {
    pub name: &'static str,
    /// History before the rollout starts: the service-wide denominators of an SLO budget.
    history_minutes: u32,
    /// Recording after the rollout starts.
    minutes: u32,
    requests_per_second: f64,
    /// (from second, canary percent): the weights the rollout sets, in time order.
    weights: &'static [(u32, f64)],
    canary_error_ratio: fn(u32) -> f64,
    stable_error_ratio: f64,
    /// How far the canary's average order value is above stable's, in basis points.
    canary_value_drift_bps: fn(u32) -> f64,
}

fn steady(_: u32) -> f64 {
    0.002
}

fn failing(_: u32) -> f64 {
    0.25
}

fn no_drift(_: u32) -> f64 {
    0.0
}

/// From the third minute the canary prices orders a little higher every second.
fn slow_drift(t: u32) -> f64 {
    f64::from(t.saturating_sub(180)) * 0.25
}

pub const SCENARIOS: [Scenario; 4] = [
    Scenario {
        name: "good-release",
        history_minutes: 60,
        minutes: 30,
        requests_per_second: 100.0,
        weights: &[
            (0, 0.0),
            (2, 1.0),
            (122, 5.0),
            (302, 25.0),
            (602, 100.0),
            (904, 0.0),
        ],
        canary_error_ratio: steady,
        stable_error_ratio: 0.002,
        canary_value_drift_bps: no_drift,
    },
    Scenario {
        name: "slow-regression",
        history_minutes: 10,
        minutes: 40,
        requests_per_second: 100.0,
        weights: &[(0, 0.0), (2, 1.0), (122, 5.0), (302, 25.0)],
        canary_error_ratio: steady,
        stable_error_ratio: 0.002,
        canary_value_drift_bps: slow_drift,
    },
    Scenario {
        name: "sharp-failure",
        history_minutes: 10,
        minutes: 20,
        requests_per_second: 100.0,
        weights: &[(0, 0.0), (2, 1.0)],
        canary_error_ratio: failing,
        stable_error_ratio: 0.002,
        canary_value_drift_bps: no_drift,
    },
    Scenario {
        name: "low-traffic",
        history_minutes: 10,
        minutes: 15,
        requests_per_second: 3.0,
        weights: &[(0, 0.0), (2, 1.0)],
        canary_error_ratio: steady,
        stable_error_ratio: 0.002,
        canary_value_drift_bps: no_drift,
    },
];

/// A fixed pseudo-random sequence in [-1, 1] (xorshift64).
struct Jitter(u64);

impl Jitter {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }
}

/// A counter fed fractional increments that exposes whole counts, carrying the remainder.
#[derive(Default)]
struct Counter {
    exact: f64,
    whole: f64,
    samples: Vec<(f64, f64)>,
}

impl Counter {
    /// Adds `amount` and returns by how much the whole count grew.
    fn add(&mut self, amount: f64) -> f64 {
        self.exact += amount.max(0.0);
        let grown = self.exact.floor() - self.whole;
        self.whole = self.exact.floor();
        grown
    }

    fn sample(&mut self, seconds: f64) {
        self.samples.push((seconds, self.whole));
    }
}

/// The counters of one track.
#[derive(Default)]
struct Track {
    ok: Counter,
    errors: Counter,
    orders: Counter,
    /// In cents, so values are exact.
    order_cents: Counter,
}

impl Scenario {
    /// The canary's weight at `t` seconds after the rollout's start (negative: before it).
    fn weight_at(&self, t: i64) -> f64 {
        self.weights
            .iter()
            .rev()
            .find(|(from, _)| i64::from(*from) <= t)
            .map_or(0.0, |(_, weight)| *weight)
    }

    /// The scenario's series, sampled every [`STEP_SECONDS`] from its start to its end.
    pub fn recording(&self) -> Recording {
        let mut jitter = Jitter(0x5eed_1234_abcd_0001);
        let (mut canary, mut stable) = (Track::default(), Track::default());
        let (first, last) = (
            -i64::from(self.history_minutes) * 60,
            i64::from(self.minutes) * 60,
        );
        for t in (first..=last).step_by(STEP_SECONDS as usize) {
            if t > first {
                let requests = self.requests_per_second
                    * f64::from(STEP_SECONDS)
                    * (1.0 + 0.05 * jitter.next());
                let share = self.weight_at(t) / 100.0;
                let since_start = u32::try_from(t).unwrap_or(0);
                let drift = (self.canary_value_drift_bps)(since_start) + jitter.next();
                let canary_errors = (self.canary_error_ratio)(since_start);
                feed(&mut canary, requests * share, canary_errors, drift);
                feed(
                    &mut stable,
                    requests * (1.0 - share),
                    self.stable_error_ratio,
                    0.0,
                );
            }
            let seconds = ROLLOUT_START_SECONDS + t as f64;
            for track in [&mut canary, &mut stable] {
                for counter in [
                    &mut track.ok,
                    &mut track.errors,
                    &mut track.orders,
                    &mut track.order_cents,
                ] {
                    counter.sample(seconds);
                }
            }
        }
        let mut series = Vec::new();
        for (name, track) in [("canary", canary), ("stable", stable)] {
            series.push(recorded(
                "http_requests_total",
                name,
                Some("200"),
                track.ok.samples,
            ));
            series.push(recorded(
                "http_requests_total",
                name,
                Some("500"),
                track.errors.samples,
            ));
            series.push(recorded(
                "checkout_orders_total",
                name,
                None,
                track.orders.samples,
            ));
            let value = track
                .order_cents
                .samples
                .into_iter()
                .map(|(t, cents)| (t, cents / 100.0));
            series.push(recorded(
                "checkout_order_value_total",
                name,
                None,
                value.collect(),
            ));
        }
        Recording::from_series(series)
            .unwrap_or_else(|e| unreachable!("generated series are ordered: {e}"))
    }
}

/// One step of traffic; the order value follows the whole orders counted, so the average order
/// value is exactly the scenario's.
fn feed(track: &mut Track, requests: f64, error_ratio: f64, drift_bps: f64) {
    track.ok.add(requests * (1.0 - error_ratio));
    track.errors.add(requests * error_ratio);
    let orders = track.orders.add(requests * ORDER_RATIO);
    let cents = orders * STABLE_ORDER_VALUE * 100.0 * (1.0 + drift_bps / 10_000.0);
    track.order_cents.add(cents);
}

fn recorded(
    name: &str,
    track: &str,
    code: Option<&str>,
    samples: Vec<(f64, f64)>,
) -> RecordedSeries {
    let mut labels = BTreeMap::from([
        ("__name__".to_string(), name.to_string()),
        ("namespace".to_string(), "shop".to_string()),
        ("app".to_string(), "checkout".to_string()),
        ("track".to_string(), track.to_string()),
    ]);
    if let Some(code) = code {
        labels.insert("code".to_string(), code.to_string());
    }
    RecordedSeries { labels, samples }
}

/// Writes `<dir>/<scenario>/metrics.om` for every scenario.
pub fn write_all(dir: &Path) -> std::io::Result<()> {
    for scenario in &SCENARIOS {
        let folder = dir.join(scenario.name);
        std::fs::create_dir_all(&folder)?;
        std::fs::write(
            folder.join("metrics.om"),
            scenario.recording().to_openmetrics(),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scenario_gives_the_same_bytes_every_time() {
        let once = SCENARIOS[0].recording().to_openmetrics();
        assert_eq!(once, SCENARIOS[0].recording().to_openmetrics());
        assert_eq!(SCENARIOS[0].recording().series_count(), 8);
    }

    #[test]
    fn the_canary_gets_its_weights_share_of_the_traffic() {
        let recording = SCENARIOS[0].recording();
        let rollout_start = 60 * 60 / STEP_SECONDS as usize;
        let total = |track: &str| {
            recording
                .series()
                .iter()
                .filter(|s| s.name() == "http_requests_total" && s.labels["track"] == track)
                .map(|s| s.samples[rollout_start + 13].1 - s.samples[rollout_start].1)
                .sum::<f64>()
        };
        // 130 s in: 12 steps at 1 % and one at 5 % of ~1000 requests per step.
        let canary = total("canary");
        assert!((150.0..200.0).contains(&canary), "{canary}");
        assert!(total("stable") > 12_000.0);
    }
}
