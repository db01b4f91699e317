//! Pipelines to reconcile now because one of their rollouts moved.

use kube::runtime::reflector::ObjectRef;

use crate::api::release_pipeline::ReleasePipeline;

/// A queue of ReleasePipelines whose rollouts changed phase or revision, feeding the pipeline
/// controller; its own watch sees only the pipelines themselves.
#[derive(Clone, Default)]
pub struct PipelineNudges(Option<tokio::sync::mpsc::UnboundedSender<ObjectRef<ReleasePipeline>>>);

impl PipelineNudges {
    pub fn channel() -> (
        Self,
        tokio::sync::mpsc::UnboundedReceiver<ObjectRef<ReleasePipeline>>,
    ) {
        let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
        (Self(Some(sender)), receiver)
    }

    pub fn nudge(&self, pipeline: &ReleasePipeline) {
        self.nudge_ref(ObjectRef::from_obj(pipeline));
    }

    pub fn nudge_ref(&self, pipeline: ObjectRef<ReleasePipeline>) {
        if let Some(sender) = &self.0 {
            // The controller gone means the operator is stopping: nothing to nudge.
            let _ = sender.send(pipeline);
        }
    }
}
