//! The recordings `sluice simulate` reads: OpenMetrics text and Prometheus JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice::simulate::recorded::Recording;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = Recording::parse_openmetrics(text);
    let _ = Recording::parse_json(text);
});
