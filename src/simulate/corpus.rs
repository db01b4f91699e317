//! A labelled corpus of release histories for measuring the judge: families of good and bad
//! releases, each a deterministic function of a seed, answering "what would the two tracks
//! show over this window" for whatever weight the rollout has set.
//!
//! The corpus is closed-loop: traffic follows the weight the engine chose, so a held stage
//! keeps seeing 1 % of the requests, as it would live. Per evaluation window a track serves
//! `requests_per_second * share * window` requests (Poisson); its errors are binomial at the
//! track's error ratio; its p99 latency is the true p99 times a lognormal estimation error
//! whose spread grows as the window's requests shrink and whose mean is the true p99.
//! `benches/decision_quality.rs` replays every history through `engine::plan` and counts the
//! outcomes.

use crate::noise::Noise;

/// Whether a release should be promoted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Label {
    Good,
    Bad,
}

/// A kind of release history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// Both tracks alike, modest noise.
    Steady,
    /// Both tracks alike, noisy latency.
    Noisy,
    /// Both tracks alike, 2 requests per second in all.
    LowTraffic,
    /// Both tracks alike; a dependency fails both for 5 minutes.
    SharedIncident,
    /// The canary fails a quarter of its requests from the start.
    SharpFailure,
    /// The canary's p99 grows by 2 % of stable's every minute.
    SlowDrift,
    /// The canary's p99 is 40 % above stable's throughout.
    ConstantBias,
    /// The canary fails 3 % of its requests (stable 0.1 %).
    RareErrors,
    /// The canary's latency keeps its mean but varies four times as much.
    ErraticVariance,
    /// The canary fails 30 % of its requests for one minute in every five.
    IntermittentBursts,
}

impl Family {
    pub const ALL: [Family; 10] = [
        Family::Steady,
        Family::Noisy,
        Family::LowTraffic,
        Family::SharedIncident,
        Family::SharpFailure,
        Family::SlowDrift,
        Family::ConstantBias,
        Family::RareErrors,
        Family::ErraticVariance,
        Family::IntermittentBursts,
    ];

    pub fn label(self) -> Label {
        match self {
            Family::Steady | Family::Noisy | Family::LowTraffic | Family::SharedIncident => {
                Label::Good
            }
            _ => Label::Bad,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Family::Steady => "steady",
            Family::Noisy => "noisy",
            Family::LowTraffic => "low traffic",
            Family::SharedIncident => "shared incident",
            Family::SharpFailure => "sharp failure",
            Family::SlowDrift => "slow drift",
            Family::ConstantBias => "constant bias",
            Family::RareErrors => "rare errors",
            Family::ErraticVariance => "erratic variance",
            Family::IntermittentBursts => "intermittent bursts",
        }
    }
}

/// What one track showed over one evaluation window.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrackWindow {
    pub requests: f64,
    /// errors / requests; None when the track served nothing.
    pub error_ratio: Option<f64>,
    /// Estimated p99 latency in seconds; None when the track served nothing.
    pub p99_seconds: Option<f64>,
}

/// One release history: a family and a seed.
pub struct History {
    pub family: Family,
    pub seed: u64,
    noise: Noise,
    /// Minute at which a shared incident starts.
    incident_at: f64,
}

const STABLE_ERROR_RATIO: f64 = 0.001;
const STABLE_P99: f64 = 0.2;
/// Relative spread of a p99 estimated from 6 000 requests.
const P99_SPREAD: f64 = 0.05;

impl History {
    pub fn new(family: Family, seed: u64) -> Self {
        let mut noise = Noise::new(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ family as u64);
        let incident_at = 3.0 + noise.uniform() * 20.0;
        Self {
            family,
            seed,
            noise,
            incident_at,
        }
    }

    fn requests_per_second(&self) -> f64 {
        match self.family {
            Family::LowTraffic => 2.0,
            _ => 100.0,
        }
    }

    /// Both tracks over the window ending `minute` minutes after the rollout started, with
    /// `canary_percent` of the traffic on the canary.
    pub fn window(
        &mut self,
        minute: f64,
        canary_percent: u32,
        window_seconds: f64,
    ) -> [TrackWindow; 2] {
        let share = f64::from(canary_percent.min(100)) / 100.0;
        let total = self.requests_per_second() * window_seconds;
        let shared_incident = self.family == Family::SharedIncident
            && (self.incident_at..self.incident_at + 5.0).contains(&minute);
        let base_error = if shared_incident {
            0.3
        } else {
            STABLE_ERROR_RATIO
        };
        let canary_error = match self.family {
            Family::SharpFailure => 0.25,
            Family::RareErrors => 0.03,
            Family::IntermittentBursts if minute % 5.0 < 1.0 => 0.3,
            _ => base_error,
        };
        let canary_p99 = match self.family {
            Family::SlowDrift => STABLE_P99 * (1.0 + 0.02 * minute),
            Family::ConstantBias => STABLE_P99 * 1.4,
            _ => STABLE_P99,
        };
        let spread = match self.family {
            Family::Noisy => 3.0,
            _ => 1.0,
        };
        let canary_spread = match self.family {
            Family::ErraticVariance => spread * 4.0,
            _ => spread,
        };
        let canary = self.track(total * share, canary_error, canary_p99, canary_spread);
        let stable = self.track(total * (1.0 - share), base_error, STABLE_P99, spread);
        [canary, stable]
    }

    fn track(
        &mut self,
        expected_requests: f64,
        error_ratio: f64,
        p99: f64,
        spread: f64,
    ) -> TrackWindow {
        let requests = self.noise.poisson(expected_requests);
        if requests == 0.0 {
            return TrackWindow {
                requests,
                error_ratio: None,
                p99_seconds: None,
            };
        }
        let errors = self.noise.binomial(requests, error_ratio);
        let sigma = P99_SPREAD * spread * (6000.0 / requests).sqrt().min(20.0);
        // Mean-unbiased: the estimates average to the true p99 however few the requests.
        let p99_seconds = p99 * (sigma * self.noise.normal() - sigma * sigma / 2.0).exp();
        TrackWindow {
            requests,
            error_ratio: Some(errors / requests),
            p99_seconds: Some(p99_seconds),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_history_is_the_same_for_the_same_seed() {
        let windows = |seed| {
            let mut history = History::new(Family::Noisy, seed);
            (0..20)
                .map(|i| history.window(f64::from(i) * 0.5, 5, 60.0))
                .collect::<Vec<_>>()
        };
        assert_eq!(windows(3), windows(3));
        assert_ne!(windows(3), windows(4));
    }

    #[test]
    fn traffic_follows_the_weight_and_errors_their_ratio() {
        let mut history = History::new(Family::RareErrors, 1);
        let (mut canary, mut stable, mut canary_errors) = (0.0, 0.0, 0.0);
        for i in 0..500 {
            let [c, s] = history.window(f64::from(i), 25, 60.0);
            canary += c.requests;
            stable += s.requests;
            canary_errors += c.error_ratio.unwrap_or(0.0) * c.requests;
        }
        let share = canary / (canary + stable);
        assert!((share - 0.25).abs() < 0.005, "share {share}");
        let ratio = canary_errors / canary;
        assert!((ratio - 0.03).abs() < 0.002, "error ratio {ratio}");
        let [_, nothing] = history.window(0.0, 100, 60.0);
        assert_eq!(nothing.error_ratio, None, "stable serves nothing at 100 %");
    }
}
