//! A check's query through templating and PromQL validation, as the operator renders it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice::metrics::template::{TemplateVars, render, validate_promql};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = validate_promql(text);
    let vars = TemplateVars::placeholders();
    if let Ok(rendered) = render(text, &vars) {
        let _ = validate_promql(&rendered);
    }
    // Values with PromQL's special characters must not break the renderer either.
    let middle = text.char_indices().nth(text.chars().count() / 2);
    let (head, tail) = text.split_at(middle.map_or(text.len(), |(i, _)| i));
    let vars = TemplateVars::new()
        .set("namespace", head)
        .set("track", tail)
        .set("target", "checkout");
    let _ = render(text, &vars);
});
