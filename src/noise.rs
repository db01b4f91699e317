//! Deterministic pseudo-random numbers for simulated data (the decision-quality corpus, the
//! statistical property tests): the same seed gives the same numbers on every machine and in
//! every version, which a generator from a crate does not promise.

use std::f64::consts::TAU;

/// xorshift64* with Box-Muller normals: small, deterministic, and the same on every machine.
pub struct Noise(u64);

impl Noise {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    pub fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let bits = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11;
        (bits as f64 + 0.5) / (1u64 << 53) as f64
    }

    pub fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (TAU * v).cos()
    }

    /// Poisson by inversion for small means, normal approximation above 50.
    pub fn poisson(&mut self, mean: f64) -> f64 {
        if mean <= 0.0 {
            return 0.0;
        }
        if mean > 50.0 {
            return (mean + mean.sqrt() * self.normal()).round().max(0.0);
        }
        let (mut k, mut p, target) = (0.0, (-mean).exp(), self.uniform());
        let mut cumulative = p;
        while cumulative < target && k < 1000.0 {
            k += 1.0;
            p *= mean / k;
            cumulative += p;
        }
        k
    }

    /// Binomial: Poisson for rare events, normal approximation when both sides are large.
    pub fn binomial(&mut self, n: f64, p: f64) -> f64 {
        let mean = n * p;
        if mean < 30.0 {
            return self.poisson(mean).min(n);
        }
        let sd = (n * p * (1.0 - p)).sqrt();
        (mean + sd * self.normal()).round().clamp(0.0, n)
    }
}
