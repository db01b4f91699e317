//! What crosses watched namespaces. An operator given `--namespace a --namespace b` keeps one
//! set of caches per namespace, but a ReleasePipeline in one may include rollouts in another:
//! its reconcile reads them from their namespace's caches, a rollout finds the pipelines of
//! every namespace that include it, and nudges each in its own namespace's queue.

use std::collections::BTreeMap;
use std::sync::Arc;

use kube::runtime::reflector::ObjectRef;
use tokio::sync::mpsc::UnboundedSender;

use super::caches::Caches;
use super::pipeline_nudges::PipelineNudges;
use crate::api::CanaryRollout;
use crate::api::release_pipeline::ReleasePipeline;
use crate::engine::pipeline::rollout_key;

/// Reconciles of CanaryRollouts asked of one namespace's rollout controller.
pub type RolloutNudges = UnboundedSender<ObjectRef<CanaryRollout>>;

/// Every watched namespace's caches and pipeline queue; empty when the operator watches all
/// namespaces, whose one set of caches holds everything.
#[derive(Clone, Default)]
pub struct Scopes(Arc<BTreeMap<String, Scope>>);

#[derive(Clone)]
struct Scope {
    caches: Caches,
    nudges: PipelineNudges,
    rollouts: RolloutNudges,
}

impl Scopes {
    /// The scopes of the watched `namespaces`, each with its caches, its pipeline queue and
    /// its rollout queue.
    pub fn new(
        namespaces: impl IntoIterator<Item = (String, Caches, PipelineNudges, RolloutNudges)>,
    ) -> Self {
        let map = namespaces
            .into_iter()
            .map(|(namespace, caches, nudges, rollouts)| {
                let scope = Scope {
                    caches,
                    nudges,
                    rollouts,
                };
                (namespace, scope)
            })
            .collect();
        Self(Arc::new(map))
    }

    /// Queues a reconcile of each rollout of `pipeline` that lives in another watched namespace
    /// of this cluster than the pipeline (its own namespace's controller maps the pipeline's
    /// changes to its rollouts itself).
    pub fn nudge_rollouts_of(&self, pipeline: &ReleasePipeline) {
        let home = pipeline.metadata.namespace.as_deref().unwrap_or_default();
        for environment in pipeline.spec.environments.iter() {
            let (namespace, name) = rollout_key(environment, home);
            if environment.cluster.is_some() || namespace == home {
                continue;
            }
            if let Some(scope) = self.0.get(&namespace) {
                // The controller gone means the operator is stopping: nothing to nudge.
                let _ = scope.rollouts.send(ObjectRef::new(name).within(&namespace));
            }
        }
    }

    /// The caches holding `namespace`'s objects: `own` when every namespace is watched; None
    /// when `namespace` is not among the watched ones.
    pub fn caches_of<'a>(&'a self, own: &'a Caches, namespace: &str) -> Option<&'a Caches> {
        if self.0.is_empty() {
            return Some(own);
        }
        self.0.get(namespace).map(|scope| &scope.caches)
    }

    /// The pipelines of every watched namespace that include the rollout `namespace/name`,
    /// with its environment's index in each.
    pub fn pipelines_claiming(
        &self,
        own: &Caches,
        namespace: &str,
        name: &str,
    ) -> Vec<(Arc<ReleasePipeline>, usize)> {
        if self.0.is_empty() {
            return own.pipelines_claiming(namespace, name);
        }
        self.0
            .values()
            .flat_map(|scope| scope.caches.pipelines_claiming(namespace, name))
            .collect()
    }

    /// Queues a reconcile of `pipeline` in its own namespace's controller.
    pub fn nudge(&self, own: &PipelineNudges, pipeline: &ReleasePipeline) {
        let home = pipeline.metadata.namespace.as_deref().unwrap_or_default();
        match self.0.get(home) {
            Some(scope) => scope.nudges.nudge(pipeline),
            None => own.nudge(pipeline),
        }
    }
}
