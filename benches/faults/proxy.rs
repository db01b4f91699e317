//! A proxy in front of the real Prometheus that the operator queries, so the campaign can make
//! Prometheus slow, failing, or answer NaN or nothing, at the moments it chooses.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// How the proxy answers a query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// As Prometheus answers.
    Pass,
    /// As Prometheus answers, this much later.
    Slow(Duration),
    /// 503 with a Prometheus error body.
    Errors,
    /// Every sample's value replaced by NaN.
    NotANumber,
    /// Every result empty.
    Empty,
}

pub struct PrometheusProxy {
    url: String,
    state: Arc<ProxyState>,
    _server: tokio::task::JoinHandle<()>,
}

struct ProxyState {
    upstream: String,
    client: reqwest::Client,
    mode: Mutex<Mode>,
}

impl PrometheusProxy {
    pub async fn start(upstream: &str) -> PrometheusProxy {
        let state = Arc::new(ProxyState {
            upstream: upstream.trim_end_matches('/').to_string(),
            client: reqwest::Client::new(),
            mode: Mutex::new(Mode::Pass),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the Prometheus proxy");
        let url = format!(
            "http://{}",
            listener.local_addr().expect("the proxy's address")
        );
        let router = Router::new().fallback(forward).with_state(state.clone());
        let server = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, router).await {
                eprintln!("Prometheus proxy stopped: {error}");
            }
        });
        PrometheusProxy {
            url,
            state,
            _server: server,
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn set(&self, mode: Mode) {
        *self
            .state
            .mode
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = mode;
    }
}

async fn forward(
    State(state): State<Arc<ProxyState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mode = *state.mode.lock().unwrap_or_else(PoisonError::into_inner);
    match mode {
        Mode::Errors => {
            let body = r#"{"status":"error","errorType":"unavailable","error":"fault injected by the campaign"}"#;
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::CONTENT_TYPE, "application/json")],
                body,
            )
                .into_response();
        }
        Mode::Slow(delay) => tokio::time::sleep(delay).await,
        Mode::Pass | Mode::NotANumber | Mode::Empty => {}
    }
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let mut request = state
        .client
        .request(method, format!("{}{path}", state.upstream))
        .body(body);
    if let Some(content_type) = headers.get(header::CONTENT_TYPE) {
        request = request.header(header::CONTENT_TYPE, content_type);
    }
    let answer = match request.send().await {
        Ok(answer) => answer,
        // Prometheus itself is down: answer as a proxy would.
        Err(error) => return (StatusCode::BAD_GATEWAY, error.to_string()).into_response(),
    };
    let status = answer.status();
    let bytes = answer.bytes().await.unwrap_or_default();
    let bytes = match mode {
        Mode::NotANumber | Mode::Empty => rewrite(&bytes, mode).unwrap_or(bytes.to_vec()),
        _ => bytes.to_vec(),
    };
    (status, [(header::CONTENT_TYPE, "application/json")], bytes).into_response()
}

/// The answer with its samples replaced; None when it is not a query result.
fn rewrite(body: &[u8], mode: Mode) -> Option<Vec<u8>> {
    let mut answer: Value = serde_json::from_slice(body).ok()?;
    let result = answer.pointer_mut("/data/result")?;
    match mode {
        Mode::Empty => *result = Value::Array(Vec::new()),
        Mode::NotANumber => {
            let series = result.as_array_mut()?;
            for one in series {
                if let Some(slot) = one.get_mut("value").and_then(|v| v.get_mut(1)) {
                    *slot = Value::from("NaN");
                }
                if let Some(Value::Array(values)) = one.get_mut("values") {
                    for slot in values.iter_mut().filter_map(|v| v.get_mut(1)) {
                        *slot = Value::from("NaN");
                    }
                }
            }
        }
        _ => return None,
    }
    serde_json::to_vec(&answer).ok()
}
