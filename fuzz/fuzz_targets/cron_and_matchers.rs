//! The schedule of a ParityPolicy and the Alertmanager matchers of a pipeline's incident gate.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice::engine::schedule;
use sluice::metrics::alert_matchers;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = schedule::parse(text);
    let _ = alert_matchers::parse(text);
});
