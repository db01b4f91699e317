//! The dashboard's HTML (pure). Pages work without JavaScript; a small script swaps in the
//! `#live` part again whenever the server says something changed.

use std::fmt::Write as _;

use k8s_openapi::api::core::v1::Event;

use crate::api::CanaryRollout;
use crate::api::release_pipeline::ReleasePipeline;

/// Rollout actions the dashboard offers, as (path segment, button text).
pub const ACTIONS: [(&str, &str); 5] = [
    ("promote", "Promote"),
    ("abort", "Abort"),
    ("retry", "Retry"),
    ("pause", "Pause"),
    ("resume", "Resume"),
];

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:1rem;max-width:1200px;color:#111}\
table{border-collapse:collapse;margin:.5rem 0}th,td{border:1px solid #bbb;padding:.25rem .5rem;text-align:left}\
caption{text-align:left;font-weight:bold}.charts{display:flex;flex-wrap:wrap;gap:.5rem}\
.charts img{max-width:100%;border:1px solid #ddd}button{font-size:1rem;margin-right:.5rem}\
a{color:#0645ad}:focus{outline:3px solid #f90}tr.warning td{background:#fff3e0}";

/// Swaps `#live` for a fresh copy on each change the server announces.
const SCRIPT: &str = "const live=document.getElementById('live');\
const changes=new EventSource('/api/changes');\
changes.onmessage=async()=>{const r=await fetch(location.pathname+'?fragment=1');\
if(r.ok){live.innerHTML=await r.text();document.body.dataset.version=changes.lastEventId||'';}};";

pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A whole page: `fixed` (the buttons) stays put, `live` is swapped on each change, so an
/// update never replaces a button under the user's pointer.
pub fn page(title: &str, fixed: &str, live: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title><link rel=\"icon\" href=\"data:,\"><style>{STYLE}</style></head><body>\
         <header><h1>{title}</h1><nav><a href=\"/\">All rollouts</a></nav></header>{fixed}\
         <main id=\"live\" aria-live=\"polite\">{live}</main><script>{SCRIPT}</script></body></html>",
        title = escape(title)
    )
}

/// The live part of the overview: every rollout, and every pipeline's releases × environments.
pub fn overview(rollouts: &[&CanaryRollout], pipelines: &[&ReleasePipeline]) -> String {
    let mut out = String::from(
        "<table id=\"rollouts\"><caption>Rollouts</caption><thead><tr>\
         <th scope=\"col\">Namespace</th><th scope=\"col\">Name</th><th scope=\"col\">Phase</th>\
         <th scope=\"col\">Stage</th><th scope=\"col\">Traffic</th><th scope=\"col\">Verdict</th>\
         <th scope=\"col\">Parity</th><th scope=\"col\">Message</th></tr></thead><tbody>",
    );
    for rollout in rollouts {
        let namespace = rollout.metadata.namespace.clone().unwrap_or_default();
        let name = rollout.metadata.name.clone().unwrap_or_default();
        let status = rollout.status.clone().unwrap_or_default();
        let evaluation = status.last_evaluation.as_ref();
        let _ = write!(
            out,
            "<tr data-rollout=\"{ns}/{n}\"><td>{ns}</td><td><a href=\"/rollouts/{ns}/{n}\">{n}</a></td>\
             <td class=\"phase\">{phase}</td><td>{stage}</td><td class=\"traffic\">{traffic}</td>\
             <td>{verdict}</td><td>{parity}</td><td>{message}</td></tr>",
            ns = escape(&namespace),
            n = escape(&name),
            phase = dash(status.phase.map(|p| format!("{p:?}"))),
            stage = dash(
                status
                    .stage
                    .map(|s| format!("{}/{}", s + 1, rollout.spec.stages.len()))
            ),
            traffic = dash(status.canary_traffic()),
            verdict = dash(evaluation.map(|e| format!("{:?}", e.verdict))),
            parity = dash(
                evaluation
                    .and_then(|e| e.parity.as_ref())
                    .and_then(|p| p.tracking_error_bps)
                    .map(|v| format!("{v:.1} bps"))
            ),
            message = escape(status.message.as_deref().unwrap_or("")),
        );
    }
    if rollouts.is_empty() {
        out.push_str("<tr><td colspan=\"8\">No CanaryRollout here.</td></tr>");
    }
    out.push_str("</tbody></table>");
    for pipeline in pipelines {
        out.push_str(&pipeline_matrix(pipeline));
    }
    out
}

/// A pipeline as a table: one row per release, one column per environment.
fn pipeline_matrix(pipeline: &ReleasePipeline) -> String {
    let name = pipeline.metadata.name.clone().unwrap_or_default();
    let environments: Vec<&str> = pipeline
        .spec
        .environments
        .iter()
        .map(|e| e.name.as_str())
        .collect();
    let mut out = format!(
        "<table class=\"pipeline\" data-pipeline=\"{n}\"><caption>Pipeline {n}</caption><thead><tr><th scope=\"col\">Release</th>",
        n = escape(&name)
    );
    for environment in &environments {
        let _ = write!(out, "<th scope=\"col\">{}</th>", escape(environment));
    }
    out.push_str("</tr></thead><tbody>");
    let releases = pipeline
        .status
        .as_ref()
        .map(|s| s.releases.as_slice())
        .unwrap_or(&[]);
    for release in releases {
        let _ = write!(
            out,
            "<tr data-release=\"{r}\"><th scope=\"row\">{r}</th>",
            r = escape(&release.name)
        );
        for environment in &environments {
            let cell = release
                .environments
                .iter()
                .find(|e| e.name == *environment)
                .map(|e| {
                    let soak = e
                        .soak
                        .as_deref()
                        .map(|s| format!(", soak {s}"))
                        .unwrap_or_default();
                    (
                        format!("{}{} since {}", e.phase.as_str(), escape(&soak), e.since),
                        escape(&e.message),
                    )
                })
                .unwrap_or_else(|| ("-".to_string(), String::new()));
            let _ = write!(
                out,
                "<td data-environment=\"{}\" title=\"{}\">{}</td>",
                escape(environment),
                cell.1,
                cell.0
            );
        }
        out.push_str("</tr>");
    }
    if releases.is_empty() {
        let _ = write!(
            out,
            "<tr><td colspan=\"{}\">No release yet.</td></tr>",
            environments.len() + 1
        );
    }
    out.push_str("</tbody></table>");
    out
}

/// The rollout's buttons, or why there are none.
pub fn actions(rollout: &CanaryRollout, allow_actions: bool) -> String {
    let namespace = rollout.metadata.namespace.clone().unwrap_or_default();
    let name = rollout.metadata.name.clone().unwrap_or_default();
    let (ns, n) = (escape(&namespace), escape(&name));
    let mut out = String::from("<section aria-label=\"Actions\">");
    if allow_actions {
        for (action, label) in ACTIONS {
            let _ = write!(
                out,
                "<form method=\"post\" action=\"/api/rollouts/{ns}/{n}/{action}\" style=\"display:inline\">\
                 <button type=\"submit\" id=\"{action}\">{label}</button></form>"
            );
        }
    } else {
        out.push_str("<p>Read-only: start the dashboard with <code>--allow-actions</code> for the promote, abort, retry and pause buttons.</p>");
    }
    out.push_str("</section>");
    out
}

/// One Event recorded on a rollout.
#[derive(Clone, Debug, PartialEq)]
pub struct EventLine {
    pub time: Option<jiff::Timestamp>,
    pub warning: bool,
    pub reason: String,
    pub message: String,
}

impl EventLine {
    pub fn of(event: &Event) -> EventLine {
        EventLine {
            time: event_time(event),
            warning: event.type_.as_deref() == Some("Warning"),
            reason: event.reason.clone().unwrap_or_default(),
            message: event.message.clone().unwrap_or_default(),
        }
    }
}

/// When an Event happened: its eventTime, else its last occurrence, else its creation.
pub fn event_time(event: &Event) -> Option<jiff::Timestamp> {
    event
        .event_time
        .as_ref()
        .map(|t| t.0)
        .or_else(|| event.last_timestamp.as_ref().map(|t| t.0))
        .or_else(|| event.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

/// Events shown on a rollout's page, newest first.
const EVENTS_SHOWN: usize = 50;

/// The live part of a rollout's page: where it is, the charts, the decisions and the events
/// (`events` in any order).
pub fn rollout(
    rollout: &CanaryRollout,
    charts: &[String],
    events: &[EventLine],
    version: u64,
) -> String {
    let namespace = rollout.metadata.namespace.clone().unwrap_or_default();
    let name = rollout.metadata.name.clone().unwrap_or_default();
    let status = rollout.status.clone().unwrap_or_default();
    let (ns, n) = (escape(&namespace), escape(&name));
    let mut out = format!(
        "<dl id=\"summary\"><dt>Phase</dt><dd class=\"phase\">{}</dd><dt>Stage</dt><dd class=\"stage\">{}</dd>\
         <dt>Traffic</dt><dd class=\"traffic\">{}</dd><dt>Message</dt><dd class=\"message\">{}</dd>\
         <dt>Revisions</dt><dd>canary {}, stable {}</dd></dl>",
        dash(status.phase.map(|p| format!("{p:?}"))),
        dash(
            status
                .stage
                .map(|s| format!("{}/{}", s + 1, rollout.spec.stages.len()))
        ),
        dash(status.canary_traffic()),
        escape(status.message.as_deref().unwrap_or("")),
        escape(status.canary_revision.as_deref().unwrap_or("-")),
        escape(status.stable_revision.as_deref().unwrap_or("-")),
    );
    out.push_str("<section class=\"charts\" aria-label=\"Charts\">");
    for (index, title) in charts.iter().enumerate() {
        let _ = write!(
            out,
            "<img src=\"/charts/{ns}/{n}/{index}.svg?v={version}\" alt=\"chart: {}\" width=\"560\" height=\"220\">",
            escape(title)
        );
    }
    out.push_str("</section>");
    if let Some(evaluation) = &status.last_evaluation {
        out.push_str("<table id=\"checks\"><caption>Last evaluation</caption><thead><tr><th scope=\"col\">Check</th><th scope=\"col\">Value</th><th scope=\"col\">Bounds</th><th scope=\"col\">Verdict</th></tr></thead><tbody>");
        for check in &evaluation.checks {
            let bounds: Vec<String> = [("min", check.min), ("max", check.max)]
                .into_iter()
                .filter_map(|(label, b)| b.map(|b| format!("{label} {b}")))
                .collect();
            let _ = write!(
                out,
                "<tr><th scope=\"row\">{}</th><td class=\"value\">{}</td><td>{}</td><td>{:?}</td></tr>",
                escape(&check.name),
                dash(check.value.map(|v| format!("{v:.4}"))),
                escape(&bounds.join(", ")),
                check.verdict
            );
        }
        if let Some(parity) = &evaluation.parity {
            let _ = write!(
                out,
                "<tr><th scope=\"row\">parity</th><td class=\"value\">{}</td><td>level {}</td><td>{}</td></tr>",
                dash(parity.tracking_error_bps.map(|v| format!("{v:.1} bps"))),
                parity.level,
                parity
                    .worst_groups
                    .iter()
                    .map(|g| escape(&g.group))
                    .take(3)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        out.push_str("</tbody></table>");
        if let Some(message) = &evaluation.message {
            let _ = write!(out, "<p class=\"why\">{}</p>", escape(message));
        }
    }
    out.push_str("<table id=\"decisions\"><caption>Decisions</caption><thead><tr><th scope=\"col\">Revision</th><th scope=\"col\">Result</th><th scope=\"col\">Finished</th><th scope=\"col\">Why</th></tr></thead><tbody>");
    for entry in status.history.iter().rev() {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{:?}</td><td>{}</td><td>{}</td></tr>",
            escape(&entry.revision),
            entry.result,
            entry.finished_at,
            escape(&entry.reason)
        );
    }
    out.push_str("</tbody></table>");
    let mut events: Vec<&EventLine> = events.iter().collect();
    events.sort_by_key(|e| std::cmp::Reverse(e.time));
    out.push_str("<table id=\"events\"><caption>Events, newest first</caption><thead><tr><th scope=\"col\">Time</th><th scope=\"col\">Type</th><th scope=\"col\">Reason</th><th scope=\"col\">Message</th></tr></thead><tbody>");
    for event in events.into_iter().take(EVENTS_SHOWN) {
        let _ = write!(
            out,
            "<tr{}><td>{}</td><td>{}</td><td class=\"reason\">{}</td><td>{}</td></tr>",
            if event.warning {
                " class=\"warning\""
            } else {
                ""
            },
            dash(event.time.map(|t| t.to_string())),
            if event.warning { "Warning" } else { "Normal" },
            escape(&event.reason),
            escape(&event.message)
        );
    }
    out.push_str("</tbody></table>");
    out
}

fn dash(value: Option<String>) -> String {
    value.map_or_else(|| "-".to_string(), |v| escape(&v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pipeline_is_a_release_by_environment_table() {
        let pipeline: ReleasePipeline = serde_saphyr::from_str(
            r#"
apiVersion: sluice.dev/v1alpha1
kind: ReleasePipeline
metadata: {name: checkout, namespace: shop}
spec:
  release: {containers: [app]}
  environments:
  - {name: staging, rolloutRef: {name: checkout-staging}, soak: 7d}
  - {name: production, rolloutRef: {name: checkout}}
status:
  releases:
  - name: checkout:2.1
    images: {app: registry/checkout:2.1}
    firstSeen: "2026-11-30T08:00:00Z"
    environments:
    - {name: staging, phase: Soaking, since: "2026-11-30T09:00:00Z", soak: 3d of 7d, message: "soaked 3d of 7d"}
"#,
        )
        .unwrap();
        let html = overview(&[], &[&pipeline]);
        assert!(
            html.contains("<caption>Pipeline checkout</caption>"),
            "{html}"
        );
        assert!(html.contains("<th scope=\"col\">staging</th><th scope=\"col\">production</th>"));
        assert!(html.contains(
            "<tr data-release=\"checkout:2.1\"><th scope=\"row\">checkout:2.1</th><td data-environment=\"staging\" title=\"soaked 3d of 7d\">Soaking, soak 3d of 7d since 2026-11-30T09:00:00Z</td><td data-environment=\"production\" title=\"\">-</td>"
        ), "{html}");
        assert!(html.contains("No CanaryRollout here."));
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    #[test]
    fn the_rollout_page_offers_buttons_only_when_allowed() {
        let rollout: CanaryRollout = serde_saphyr::from_str(
            "apiVersion: sluice.dev/v1alpha1\nkind: CanaryRollout\nmetadata: {name: checkout, namespace: shop}\nspec:\n  targetRef: {name: checkout}\n  service: {name: checkout, port: 80}\n  trafficRouting: {replicas: {}}\n",
        )
        .unwrap();
        let titles = ["canary weight".to_string(), "check error-rate".to_string()];
        let event = |second: i64, warning: bool, reason: &str| EventLine {
            time: Some(jiff::Timestamp::from_second(1_700_000_000 + second).unwrap()),
            warning,
            reason: reason.into(),
            message: format!("{reason} <here>"),
        };
        let events = [
            event(0, false, "RolloutStarted"),
            event(9, true, "RolledBack"),
            event(5, false, "StageAdvanced"),
        ];
        let live = super::rollout(&rollout, &titles, &events, 7);
        assert!(live.contains("/charts/shop/checkout/1.svg?v=7\" alt=\"chart: check error-rate\""));
        let order: Vec<usize> = ["RolledBack", "StageAdvanced", "RolloutStarted"]
            .iter()
            .map(|reason| {
                live.find(&format!("<td class=\"reason\">{reason}</td>"))
                    .unwrap()
            })
            .collect();
        assert!(order.is_sorted(), "newest first: {live}");
        assert!(
            live.contains("<tr class=\"warning\"><td>2023-11-14T22:13:29Z</td><td>Warning</td>"),
            "{live}"
        );
        assert!(live.contains("RolledBack &lt;here&gt;"));
        let read_only = actions(&rollout, false);
        assert!(!read_only.contains("<button"));
        assert!(read_only.contains("Read-only"));
        let allowed = actions(&rollout, true);
        assert!(allowed.contains("action=\"/api/rollouts/shop/checkout/promote\""));
        let page = page("checkout", &allowed, &live);
        assert!(
            page.find("id=\"promote\"") < page.find("<main id=\"live\""),
            "the buttons stay outside the part that is swapped"
        );
        assert!(page.starts_with("<!doctype html><html lang=\"en\">"));
    }
}
