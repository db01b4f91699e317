//! Durations as users write them: a parsed duration prints as text that parses to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice::api::Duration;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(duration) = text.parse::<Duration>() {
        let printed = duration.to_string();
        let again: Duration = printed
            .parse()
            .unwrap_or_else(|e| panic!("{text:?} printed as {printed:?}, which fails: {e}"));
        assert_eq!(again, duration, "{text:?} printed as {printed:?}");
    }
});
