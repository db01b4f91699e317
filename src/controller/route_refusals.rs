//! Routes that refused what a rollout's spec asks of them, remembered until the spec changes.
//!
//! Some refusals show only when a write is tried (an HTTPRoute CRD that drops
//! `requestMirror.percent` is found by a dry run). The write fails, and the next reconcile's
//! validation reports the refusal as a spec problem, so the rollout turns Invalid with a Stalled
//! condition and a Warning event instead of retrying the write forever.

use std::collections::HashMap;
use std::sync::Mutex;

use kube::{Resource, ResourceExt};

#[derive(Default)]
pub struct RouteRefusals {
    /// By uid: the generation the refusal was seen at, and the problem.
    refused: Mutex<HashMap<String, (Option<i64>, String)>>,
}

impl RouteRefusals {
    pub fn record<K: Resource>(&self, object: &K, problem: String) {
        if let Some(uid) = object.uid() {
            let generation = object.meta().generation;
            let mut refused = self.refused.lock().unwrap_or_else(|e| e.into_inner());
            refused.insert(uid, (generation, problem));
        }
    }

    /// The refusal seen at the object's current generation; an older one is forgotten.
    pub fn problem<K: Resource>(&self, object: &K) -> Option<String> {
        let uid = object.uid()?;
        let mut refused = self.refused.lock().unwrap_or_else(|e| e.into_inner());
        match refused.get(&uid) {
            Some((generation, problem)) if *generation == object.meta().generation => {
                Some(problem.clone())
            }
            Some(_) => {
                refused.remove(&uid);
                None
            }
            None => None,
        }
    }

    pub fn forget<K: Resource>(&self, object: &K) {
        if let Some(uid) = object.uid() {
            let mut refused = self.refused.lock().unwrap_or_else(|e| e.into_inner());
            refused.remove(&uid);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;

    fn object(generation: i64) -> ConfigMap {
        let mut object = ConfigMap::default();
        object.metadata.uid = Some("u1".into());
        object.metadata.generation = Some(generation);
        object
    }

    #[test]
    fn a_refusal_lasts_until_the_generation_moves() {
        let refusals = RouteRefusals::default();
        assert_eq!(refusals.problem(&object(1)), None);
        refusals.record(&object(1), "mirror refused".into());
        assert_eq!(
            refusals.problem(&object(1)).as_deref(),
            Some("mirror refused")
        );
        assert_eq!(refusals.problem(&object(2)), None);
        assert_eq!(refusals.problem(&object(1)), None, "forgotten once moved");
        refusals.record(&object(2), "again".into());
        refusals.forget(&object(2));
        assert_eq!(refusals.problem(&object(2)), None);
    }
}
