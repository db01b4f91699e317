//! The annotations a user or a pipeline writes on a rollout: manual requests and the pipeline
//! gate's verdict.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use sluice::engine::pipeline_gates::read_gate_note;
use sluice::engine::requests::{self, Requests};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = read_gate_note(text);
    let (key, value) = text.split_once('=').unwrap_or((requests::PROMOTE, text));
    let annotations = BTreeMap::from([
        (key.to_string(), value.to_string()),
        (requests::ABORT.to_string(), value.to_string()),
    ]);
    let mut handled = BTreeMap::from([(requests::ABORT.to_string(), text.to_string())]);
    let first = Requests::take(&annotations, &mut handled);
    let again = Requests::take(&annotations, &mut handled);
    assert_eq!(
        again,
        Requests::default(),
        "a request is taken once: {first:?}"
    );
});
