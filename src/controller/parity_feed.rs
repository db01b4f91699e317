//! Parity measured by rollouts, on its way to the ParityPolicy's own reconcile, which is the
//! only writer of the policy's status: a rollout that evaluates a policy hands its report here
//! and wakes the policy's controller, which folds the waiting reports into the status.

use std::collections::HashMap;
use std::sync::Mutex;

use futures::Stream;
use kube::runtime::reflector::ObjectRef;
use tokio::sync::mpsc;

use crate::api::parity_policy::{ParityEvaluation, ParityPolicy};

/// Reports kept per policy while its reconcile has not taken them: as many as the status
/// history holds, so nothing the status could show is dropped.
const PENDING_LIMIT: usize = 30;

/// One evaluation a rollout made of a policy.
#[derive(Clone, Debug, PartialEq)]
pub struct Measured {
    pub evaluation: ParityEvaluation,
    /// Evaluations in a row at a breaching level, as the rollout counted them.
    pub consecutive_breaches: u32,
}

pub struct ParityFeed {
    pending: Mutex<HashMap<ObjectRef<ParityPolicy>, Vec<Measured>>>,
    wake: mpsc::UnboundedSender<ObjectRef<ParityPolicy>>,
    woken: Mutex<Option<mpsc::UnboundedReceiver<ObjectRef<ParityPolicy>>>>,
}

impl Default for ParityFeed {
    fn default() -> Self {
        let (wake, woken) = mpsc::unbounded_channel();
        Self {
            pending: Mutex::default(),
            wake,
            woken: Mutex::new(Some(woken)),
        }
    }
}

impl ParityFeed {
    /// Leaves a rollout's measurement for `policy` and wakes the policy's reconcile.
    pub fn submit(&self, policy: &ParityPolicy, measured: Measured) {
        let key = ObjectRef::from_obj(policy);
        {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            let waiting = pending.entry(key.clone()).or_default();
            waiting.push(measured);
            let excess = waiting.len().saturating_sub(PENDING_LIMIT);
            waiting.drain(..excess);
        }
        // No receiver only while shutting down: nothing is waiting for the status then.
        let _ = self.wake.send(key);
    }

    /// The measurements waiting for `policy`, oldest first; they are the caller's from now on.
    pub fn take(&self, policy: &ObjectRef<ParityPolicy>) -> Vec<Measured> {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        pending.remove(policy).unwrap_or_default()
    }

    /// Puts measurements back when the status that was to carry them could not be written.
    pub fn restore(&self, policy: &ObjectRef<ParityPolicy>, mut measured: Vec<Measured>) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let waiting = pending.entry(policy.clone()).or_default();
        measured.append(waiting);
        let excess = measured.len().saturating_sub(PENDING_LIMIT);
        measured.drain(..excess);
        *waiting = measured;
    }

    /// The policies to reconcile because a rollout measured them; the first caller gets the
    /// stream, later callers an empty one.
    pub fn wakes(&self) -> impl Stream<Item = ObjectRef<ParityPolicy>> + Send + 'static {
        let receiver = self.woken.lock().unwrap_or_else(|e| e.into_inner()).take();
        futures::stream::unfold(receiver, |receiver| async move {
            let mut receiver = receiver?;
            let next = receiver.recv().await?;
            Some((next, Some(receiver)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::parity_policy::ParityLevel;
    use futures::StreamExt;

    fn policy(name: &str) -> ParityPolicy {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "sluice.dev/v1alpha1", "kind": "ParityPolicy",
            "metadata": {"name": name, "namespace": "shop"},
            "spec": {"query": "q{track=\"{{track}}\"}"},
        }))
        .expect("policy")
    }

    fn measured(second: i64) -> Measured {
        Measured {
            evaluation: ParityEvaluation {
                time: jiff::Timestamp::from_second(second).unwrap(),
                tracking_error_bps: Some(1.0),
                mean_difference_bps: Some(0.5),
                rms_difference_bps: Some(1.1),
                samples: 20,
                level: ParityLevel::Pass,
                components: vec![],
                residual_bps: None,
                statistics: None,
            },
            consecutive_breaches: 0,
        }
    }

    #[tokio::test]
    async fn measurements_wait_per_policy_in_order_and_wake_its_reconcile() {
        let feed = ParityFeed::default();
        let (checkout, cart) = (policy("checkout"), policy("cart"));
        let mut wakes = Box::pin(feed.wakes());
        feed.submit(&checkout, measured(1));
        feed.submit(&checkout, measured(2));
        feed.submit(&cart, measured(3));
        let key = ObjectRef::from_obj(&checkout);
        assert_eq!(wakes.next().await, Some(key.clone()));
        let taken = feed.take(&key);
        assert_eq!(taken, vec![measured(1), measured(2)]);
        assert!(feed.take(&key).is_empty(), "taken once");
        feed.submit(&checkout, measured(4));
        feed.restore(&key, taken);
        let times: Vec<i64> = feed
            .take(&key)
            .iter()
            .map(|m| m.evaluation.time.as_second())
            .collect();
        assert_eq!(times, vec![1, 2, 4]);
        assert_eq!(feed.take(&ObjectRef::from_obj(&cart)), vec![measured(3)]);
    }

    #[test]
    fn a_policy_nobody_reconciles_keeps_only_what_its_history_could_show() {
        let feed = ParityFeed::default();
        let checkout = policy("checkout");
        for second in 0..100 {
            feed.submit(&checkout, measured(second));
        }
        let taken = feed.take(&ObjectRef::from_obj(&checkout));
        assert_eq!(taken.len(), PENDING_LIMIT);
        assert_eq!(taken[0].evaluation.time.as_second(), 70);
    }
}
