//! Alertmanager API v2: the active, unsilenced, uninhibited alerts matching a set of matchers.

use std::time::Duration;

use serde::Deserialize;

use super::alert_matchers::Matcher;

const TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Deserialize)]
struct Alert {
    #[serde(default)]
    labels: std::collections::BTreeMap<String, String>,
}

/// Names (`alertname`) of the alerts Alertmanager at `base` holds active, not silenced and not
/// inhibited, matching every matcher. An error says what failed, for the gate to hold on.
pub async fn active_alerts(base: &str, matchers: &[Matcher]) -> Result<Vec<String>, String> {
    let client = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .user_agent(crate::client::OPERATOR_USER_AGENT)
        .build()
        .map_err(|e| e.to_string())?;
    let mut query: Vec<(&str, String)> = vec![
        ("active", "true".into()),
        ("silenced", "false".into()),
        ("inhibited", "false".into()),
    ];
    query.extend(matchers.iter().map(|m| ("filter", m.render())));
    let url = format!("{}/api/v2/alerts", base.trim_end_matches('/'));
    let response = client
        .get(&url)
        .query(&query)
        .send()
        .await
        .map_err(|e| format!("Alertmanager {base}: {}", root_cause(&e)))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("Alertmanager {base}: HTTP {status}"));
    }
    let alerts: Vec<Alert> = response
        .json()
        .await
        .map_err(|e| format!("Alertmanager {base}: {}", root_cause(&e)))?;
    let mut names: Vec<String> = alerts
        .into_iter()
        .map(|a| {
            a.labels
                .get("alertname")
                .cloned()
                .unwrap_or_else(|| "unnamed".into())
        })
        .collect();
    names.sort();
    names.dedup();
    Ok(names)
}

fn root_cause(error: &dyn std::error::Error) -> String {
    let mut cause = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}
