//! The statuses this operator last wrote, so a reconcile decides on them even when its cache
//! has not caught up with its own write yet.
//!
//! The operator is the only writer of its kinds' statuses, so a cached status that differs from
//! the one last written can only be older: planning from it would repeat old decisions (a
//! rollout cache from before adoption would adopt the next template without analysis; a policy
//! cache behind its last write would drop evaluations from the history).

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Mutex;

use k8s_openapi::NamespaceResourceScope;
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Context;
use super::error::Error;
use super::objects;

pub struct StatusMemory<S> {
    /// By uid, so an object deleted and created again under the same name starts afresh.
    written: Mutex<HashMap<String, S>>,
}

impl<S> Default for StatusMemory<S> {
    fn default() -> Self {
        Self {
            written: Mutex::default(),
        }
    }
}

impl<S: Clone + PartialEq + Serialize> StatusMemory<S> {
    /// The status to plan from: the one last written where the cache shows another. Once the
    /// cache shows the last write, that write is forgotten: the cache never goes back, and a
    /// fleet at rest keeps no second copy of every status.
    pub fn latest<K: Resource>(&self, object: &K, cached: Option<&S>) -> Option<S> {
        let Some(uid) = object.uid() else {
            return cached.cloned();
        };
        let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        match written.get(&uid) {
            Some(status) if cached != Some(status) => Some(status.clone()),
            Some(_) => {
                written.remove(&uid);
                cached.cloned()
            }
            None => cached.cloned(),
        }
    }

    /// Writes `new` when it differs from `old`, and remembers it.
    pub async fn write<K>(&self, ctx: &Context, object: &K, old: &S, new: &S) -> Result<(), Error>
    where
        K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + Debug,
    {
        objects::apply_status(ctx, object, old, new).await?;
        if let Some(uid) = object.uid() {
            let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
            written.insert(uid, new.clone());
        }
        Ok(())
    }

    pub fn forget<K: Resource>(&self, object: &K) {
        if let Some(uid) = object.uid() {
            let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
            written.remove(&uid);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::CanaryRollout;
    use crate::api::canary_rollout::{CanaryRolloutStatus, Phase};

    fn rollout(uid: &str) -> CanaryRollout {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "sluice.dev/v1alpha1", "kind": "CanaryRollout",
            "metadata": {"name": "checkout", "namespace": "shop", "uid": uid},
            "spec": {"targetRef": {"kind": "Deployment", "name": "checkout"},
                     "service": {"name": "checkout", "port": 80},
                     "trafficRouting": {"replicas": {}},
                     "analysis": {"interval": "30s"}},
        }))
        .expect("rollout")
    }

    fn status(phase: Phase) -> CanaryRolloutStatus {
        CanaryRolloutStatus {
            phase: Some(phase),
            ..Default::default()
        }
    }

    #[test]
    fn a_cache_behind_the_last_write_is_read_with_that_write() {
        let memory = StatusMemory::default();
        memory
            .written
            .lock()
            .unwrap()
            .insert("u1".into(), status(Phase::Succeeded));
        let phase = |s: Option<CanaryRolloutStatus>| s.and_then(|s| s.phase);
        assert_eq!(
            phase(memory.latest(&rollout("u1"), None)),
            Some(Phase::Succeeded)
        );
        // A rollout created again under the same name is another object.
        assert_eq!(phase(memory.latest(&rollout("u2"), None)), None);
        // Nothing written yet: the cache is all there is.
        let fresh = StatusMemory::default();
        let cached = status(Phase::Progressing);
        assert_eq!(
            phase(fresh.latest(&rollout("u1"), Some(&cached))),
            Some(Phase::Progressing)
        );
        memory.forget(&rollout("u1"));
        assert_eq!(phase(memory.latest(&rollout("u1"), None)), None);
        // Once the cache has caught up, the copy goes, and the cache is read from then on.
        let succeeded = status(Phase::Succeeded);
        memory
            .written
            .lock()
            .unwrap()
            .insert("u1".into(), succeeded.clone());
        assert_eq!(
            phase(memory.latest(&rollout("u1"), Some(&succeeded))),
            Some(Phase::Succeeded)
        );
        assert!(memory.written.lock().unwrap().is_empty());
    }
}
