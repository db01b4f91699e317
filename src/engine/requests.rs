//! Manual requests as annotations, so plain kubectl and GitOps can both drive them:
//! `kubectl annotate canaryrollout checkout sluice.dev/promote=$(date +%s) --overwrite`.
//!
//! A request is acted on once per distinct value: the value is recorded in
//! `status.handledRequests`, so an annotation kept in Git is not repeated on every sync.

use std::collections::BTreeMap;

pub const PROMOTE: &str = "sluice.dev/promote";
pub const ABORT: &str = "sluice.dev/abort";
pub const RETRY: &str = "sluice.dev/retry";
pub const UNFREEZE: &str = "sluice.dev/unfreeze";
pub const OVERRIDE_FREEZE: &str = "sluice.dev/override-freeze";
/// Who made the request: `kubectl sluice` sets it beside each request, for the audit trail.
pub const REQUESTED_BY: &str = "sluice.dev/requested-by";

const ALL: [&str; 5] = [PROMOTE, ABORT, RETRY, UNFREEZE, OVERRIDE_FREEZE];

/// Requests whose value is new since they were last handled.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Requests {
    pub promote: bool,
    pub abort: bool,
    pub retry: bool,
    pub unfreeze: bool,
    pub override_freeze: bool,
}

impl Requests {
    /// Reads new requests and records them as handled. A request that does not apply in the
    /// current phase is dropped, not kept for later: a stale "promote" must not skip the analysis
    /// of a rollout that starts next week.
    pub fn take(
        annotations: &BTreeMap<String, String>,
        handled: &mut BTreeMap<String, String>,
    ) -> Self {
        let mut fresh = |key: &str| match annotations.get(key) {
            Some(value) if handled.get(key) != Some(value) => {
                handled.insert(key.to_string(), value.clone());
                true
            }
            Some(_) => false,
            None => {
                handled.remove(key);
                false
            }
        };
        let mut requests = Self::default();
        for key in ALL {
            let is_new = fresh(key);
            match key {
                PROMOTE => requests.promote = is_new,
                ABORT => requests.abort = is_new,
                RETRY => requests.retry = is_new,
                UNFREEZE => requests.unfreeze = is_new,
                _ => requests.override_freeze = is_new,
            }
        }
        requests
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_handled_once_per_value() {
        let mut handled = BTreeMap::new();
        let mut annotations = BTreeMap::from([(PROMOTE.to_string(), "1".to_string())]);
        assert!(Requests::take(&annotations, &mut handled).promote);
        assert!(!Requests::take(&annotations, &mut handled).promote);
        annotations.insert(PROMOTE.to_string(), "2".to_string());
        assert!(Requests::take(&annotations, &mut handled).promote);
    }

    #[test]
    fn removing_the_annotation_forgets_it() {
        let mut handled = BTreeMap::from([(ABORT.to_string(), "x".to_string())]);
        let requests = Requests::take(&BTreeMap::new(), &mut handled);
        assert!(!requests.abort);
        assert!(handled.is_empty());
        let annotations = BTreeMap::from([(ABORT.to_string(), "x".to_string())]);
        assert!(Requests::take(&annotations, &mut handled).abort);
    }
}
