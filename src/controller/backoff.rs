//! Per-object retry delays for reconciles that failed: exponential with jitter, so a 504 or a
//! timeout slows that object down instead of retrying it at a fixed pace forever, and objects
//! that failed together do not retry together.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Mutex;
use std::time::Duration;

use kube::api::DynamicObject;
use kube::runtime::reflector::ObjectRef;

/// Failures in a row after which an object is reported as failing in its status.
pub const FAILING_AFTER: u32 = 3;

pub struct ErrorBackoff {
    first: Duration,
    max: Duration,
    failures: Mutex<HashMap<ObjectRef<DynamicObject>, u32>>,
    jitter: std::collections::hash_map::RandomState,
}

impl Default for ErrorBackoff {
    fn default() -> Self {
        Self::new(Duration::from_secs(2), Duration::from_secs(300))
    }
}

impl ErrorBackoff {
    pub fn new(first: Duration, max: Duration) -> Self {
        Self {
            first,
            max,
            failures: Mutex::default(),
            jitter: Default::default(),
        }
    }

    /// Records a failure of `object` and returns how long to wait before its next reconcile:
    /// `first · 2^(n-1)`, capped at `max`, then spread by ±20 %.
    pub fn failed(&self, object: &ObjectRef<DynamicObject>) -> Duration {
        let failures = {
            let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
            let count = map.entry(object.clone()).or_insert(0);
            *count = count.saturating_add(1);
            *count
        };
        let doubled = self
            .first
            .saturating_mul(1u32 << failures.saturating_sub(1).min(20));
        let delay = doubled.min(self.max);
        // A factor in [0.8, 1.2).
        let spread = self.jitter.hash_one((object, failures)) % 10_000;
        let factor = 0.8 + 0.4 * spread as f64 / 10_000.0;
        delay.mul_f64(factor)
    }

    /// Failures in a row so far.
    pub fn failures(&self, object: &ObjectRef<DynamicObject>) -> u32 {
        let map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        map.get(object).copied().unwrap_or(0)
    }

    /// Clears the count after a reconcile that succeeded.
    pub fn succeeded(&self, object: &ObjectRef<DynamicObject>) {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(object);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::Deployment;

    fn object(name: &str) -> ObjectRef<DynamicObject> {
        ObjectRef::<Deployment>::new(name).within("shop").erase()
    }

    #[test]
    fn delays_double_within_jitter_up_to_the_cap_and_reset_on_success() {
        let backoff = ErrorBackoff::new(Duration::from_secs(2), Duration::from_secs(60));
        let checkout = object("checkout");
        let expected = [2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0];
        for (n, nominal) in expected.into_iter().enumerate() {
            let delay = backoff.failed(&checkout).as_secs_f64();
            assert!(
                (0.8 * nominal..1.2 * nominal).contains(&delay),
                "failure {}: {delay} s not within 20 % of {nominal} s",
                n + 1
            );
        }
        assert_eq!(backoff.failures(&checkout), 7);
        // Another object has its own count.
        assert!(backoff.failed(&object("cart")).as_secs_f64() < 2.4);
        backoff.succeeded(&checkout);
        assert_eq!(backoff.failures(&checkout), 0);
        assert!(backoff.failed(&checkout).as_secs_f64() < 2.4);
    }

    #[test]
    fn jitter_spreads_objects_that_failed_together() {
        let backoff = ErrorBackoff::default();
        let delays: std::collections::BTreeSet<u128> = (0..20)
            .map(|i| backoff.failed(&object(&format!("r{i}"))).as_millis())
            .collect();
        assert!(delays.len() > 10, "{delays:?}");
    }
}
