//! Parity measured by rollouts, on its way to the ParityPolicy's own reconcile, which is the
//! only writer of the policy's status: a rollout that evaluates a policy hands its report here
//! and wakes the policy's controller, which folds the waiting reports into the status.

use std::collections::HashMap;
use std::sync::Mutex;

use futures::Stream;
use kube::runtime::reflector::ObjectRef;
use tokio::sync::mpsc;

use crate::api::parity_policy::ParityPolicy;
use crate::engine::parity::ParityReport;

/// Reports kept per policy while its reconcile has not taken them: as many as the status
/// history holds, so nothing the status could show is dropped.
const PENDING_LIMIT: usize = 30;

/// What rollouts measured, per policy: by default each evaluation's [`ParityReport`].
pub struct ParityFeed<Measured = ParityReport> {
    pending: Mutex<HashMap<ObjectRef<ParityPolicy>, Vec<Measured>>>,
    wake: mpsc::UnboundedSender<ObjectRef<ParityPolicy>>,
    woken: Mutex<Option<mpsc::UnboundedReceiver<ObjectRef<ParityPolicy>>>>,
}

impl<Measured> Default for ParityFeed<Measured> {
    fn default() -> Self {
        let (wake, woken) = mpsc::unbounded_channel();
        Self {
            pending: Mutex::default(),
            wake,
            woken: Mutex::new(Some(woken)),
        }
    }
}

impl<Measured> ParityFeed<Measured> {
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
    use futures::StreamExt;

    fn policy(name: &str) -> ParityPolicy {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "sluice.dev/v1alpha1", "kind": "ParityPolicy",
            "metadata": {"name": name, "namespace": "shop"},
            "spec": {"query": "q{track=\"{{track}}\"}"},
        }))
        .expect("policy")
    }

    #[tokio::test]
    async fn measurements_wait_per_policy_in_order_and_wake_its_reconcile() {
        let feed = ParityFeed::<i64>::default();
        let (checkout, cart) = (policy("checkout"), policy("cart"));
        let mut wakes = Box::pin(feed.wakes());
        feed.submit(&checkout, 1);
        feed.submit(&checkout, 2);
        feed.submit(&cart, 3);
        let key = ObjectRef::from_obj(&checkout);
        assert_eq!(wakes.next().await, Some(key.clone()));
        let taken = feed.take(&key);
        assert_eq!(taken, vec![1, 2]);
        assert!(feed.take(&key).is_empty(), "taken once");
        feed.submit(&checkout, 4);
        feed.restore(&key, taken);
        assert_eq!(feed.take(&key), vec![1, 2, 4]);
        assert_eq!(feed.take(&ObjectRef::from_obj(&cart)), vec![3]);
    }

    #[test]
    fn a_policy_nobody_reconciles_keeps_only_what_its_history_could_show() {
        let feed = ParityFeed::<i64>::default();
        let checkout = policy("checkout");
        for second in 0..100 {
            feed.submit(&checkout, second);
        }
        let taken = feed.take(&ObjectRef::from_obj(&checkout));
        assert_eq!(taken.len(), PENDING_LIMIT);
        assert_eq!(taken[0], 70);
    }
}
