//! `sluice simulate --set PATH=VALUES`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice::simulate::what_if::Setting;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = text.parse::<Setting>();
});
