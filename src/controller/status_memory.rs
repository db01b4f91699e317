//! The statuses this operator last wrote, so a reconcile decides on them even when the rollout
//! cache has not caught up with its own write yet.
//!
//! The operator is the only writer of a CanaryRollout's status, so a cached status that differs
//! from the one last written can only be older: planning from it would repeat old decisions (a
//! cache from before adoption would adopt the next template without analysis).

use std::collections::HashMap;
use std::sync::Mutex;

use kube::ResourceExt;

use super::Context;
use super::error::Error;
use super::objects;
use crate::api::CanaryRollout;
use crate::api::canary_rollout::CanaryRolloutStatus;

#[derive(Default)]
pub struct StatusMemory {
    /// By uid, so a rollout deleted and created again under the same name starts afresh.
    written: Mutex<HashMap<String, CanaryRolloutStatus>>,
}

impl StatusMemory {
    /// The cached rollout with the status last written in its place, where they differ.
    pub fn latest(&self, cached: &CanaryRollout) -> CanaryRollout {
        let mut rollout = cached.clone();
        let written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(status) = cached.uid().and_then(|uid| written.get(&uid))
            && cached.status.as_ref() != Some(status)
        {
            rollout.status = Some(status.clone());
        }
        rollout
    }

    /// Writes `new` when it differs from `old`, and remembers it.
    pub async fn write(
        &self,
        ctx: &Context,
        rollout: &CanaryRollout,
        old: &CanaryRolloutStatus,
        new: &CanaryRolloutStatus,
    ) -> Result<(), Error> {
        objects::apply_status(ctx, rollout, old, new).await?;
        if let Some(uid) = rollout.uid() {
            let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
            written.insert(uid, new.clone());
        }
        Ok(())
    }

    pub fn forget(&self, rollout: &CanaryRollout) {
        if let Some(uid) = rollout.uid() {
            let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
            written.remove(&uid);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::canary_rollout::Phase;

    fn rollout(uid: &str, phase: Option<Phase>) -> CanaryRollout {
        let mut rollout: CanaryRollout = serde_json::from_value(serde_json::json!({
            "apiVersion": "sluice.dev/v1alpha1", "kind": "CanaryRollout",
            "metadata": {"name": "checkout", "namespace": "shop", "uid": uid},
            "spec": {"targetRef": {"kind": "Deployment", "name": "checkout"},
                     "service": {"name": "checkout", "port": 80},
                     "trafficRouting": {"replicas": {}},
                     "analysis": {"interval": "30s"}},
        }))
        .expect("rollout");
        rollout.status = phase.map(|phase| CanaryRolloutStatus {
            phase: Some(phase),
            ..Default::default()
        });
        rollout
    }

    fn remember(memory: &StatusMemory, uid: &str, phase: Phase) {
        let status = CanaryRolloutStatus {
            phase: Some(phase),
            ..Default::default()
        };
        memory.written.lock().unwrap().insert(uid.into(), status);
    }

    #[test]
    fn a_cache_behind_the_last_write_is_read_with_that_write() {
        let memory = StatusMemory::default();
        remember(&memory, "u1", Phase::Succeeded);
        let stale = rollout("u1", None);
        let phase = |r: CanaryRollout| r.status.and_then(|s| s.phase);
        assert_eq!(phase(memory.latest(&stale)), Some(Phase::Succeeded));
        // A rollout created again under the same name is another object.
        assert_eq!(phase(memory.latest(&rollout("u2", None))), None);
        // Nothing written yet: the cache is all there is.
        let fresh = StatusMemory::default();
        let cached = rollout("u1", Some(Phase::Progressing));
        assert_eq!(phase(fresh.latest(&cached)), Some(Phase::Progressing));
    }
}
