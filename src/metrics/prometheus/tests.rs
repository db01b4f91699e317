//! `PrometheusSource` against a one-shot HTTP server on loopback that plays Prometheus's JSON API.

use super::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

const ONE_SAMPLE: &str = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000,"0.25"]}]}}"#;
const EMPTY: &str = r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
const TWO_SERIES: &str = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"pod":"a"},"value":[1700000000,"1"]},{"metric":{"pod":"b"},"value":[1700000000,"2"]}]}}"#;
const NAN: &str = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000,"NaN"]}]}}"#;
const INF: &str = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000,"+Inf"]}]}}"#;
const SCALAR: &str =
    r#"{"status":"success","data":{"resultType":"scalar","result":[1700000000,"3"]}}"#;
const PARSE_ERROR: &str = r#"{"status":"error","errorType":"bad_data","error":"parse error"}"#;
const MATRIX: &str = r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1700000000,"1"],[1700000060,"NaN"],[1700000120,"3"]]}]}}"#;
const MATRIX_TWO: &str = r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"a":"1"},"values":[[1700000000,"1"]]},{"metric":{"a":"2"},"values":[[1700000000,"2"]]}]}}"#;
const MATRIX_EMPTY: &str = r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#;

/// Answers one request with `status` and a JSON `body`; the task yields the request it read.
async fn serve_once(status: u16, body: &'static str) -> (String, JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut request = Vec::new();
        let mut buf = [0u8; 4096];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = socket.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            request.extend_from_slice(&buf[..n]);
        }
        let response = format!(
            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        socket.write_all(response.as_bytes()).await.unwrap();
        String::from_utf8_lossy(&request).into_owned()
    });
    (address, task)
}

async fn instant(status: u16, body: &'static str) -> Result<Option<f64>, QueryError> {
    let (address, _task) = serve_once(status, body).await;
    let source = PrometheusSource::new(&address, Duration::from_secs(5)).unwrap();
    source.query_value("q", None).await
}

async fn range(body: &'static str) -> Result<Vec<(f64, f64)>, QueryError> {
    let (address, _task) = serve_once(200, body).await;
    let source = PrometheusSource::new(&address, Duration::from_secs(5)).unwrap();
    let end = Timestamp::from_second(1_700_000_120).unwrap();
    let start = Timestamp::from_second(1_700_000_000).unwrap();
    source
        .query_range("q", start, end, Duration::from_secs(60))
        .await
}

#[tokio::test]
async fn one_sample_is_its_value() {
    assert_eq!(instant(200, ONE_SAMPLE).await, Ok(Some(0.25)));
}

#[tokio::test]
async fn empty_vector_and_nan_are_no_data() {
    assert_eq!(instant(200, EMPTY).await, Ok(None));
    assert_eq!(instant(200, NAN).await, Ok(None));
}

#[tokio::test]
async fn infinity_and_scalars_are_values() {
    assert_eq!(instant(200, INF).await, Ok(Some(f64::INFINITY)));
    assert_eq!(instant(200, SCALAR).await, Ok(Some(3.0)));
}

#[tokio::test]
async fn several_series_ask_for_aggregation() {
    let err = instant(200, TWO_SERIES).await.unwrap_err();
    assert_eq!(
        err,
        QueryError::MultipleSeries {
            query: "q".into(),
            count: 2
        }
    );
    assert_eq!(err.category(), "multiple_series");
    assert!(err.to_string().contains("sum("), "{err}");
}

#[tokio::test]
async fn a_rejected_query_is_a_bad_query() {
    let err = instant(400, PARSE_ERROR).await.unwrap_err();
    assert_eq!(
        err,
        QueryError::BadQuery {
            query: "q".into(),
            reason: "parse error".into()
        }
    );
    assert_eq!(err.category(), "bad_query");
}

#[tokio::test]
async fn a_range_vector_from_an_instant_query_is_a_bad_query() {
    let err = instant(200, MATRIX).await.unwrap_err();
    assert_eq!(err.category(), "bad_query");
}

#[tokio::test]
async fn the_evaluation_time_is_sent() {
    let (address, task) = serve_once(200, ONE_SAMPLE).await;
    let source = PrometheusSource::new(&address, Duration::from_secs(5)).unwrap();
    let at = Timestamp::from_second(1_700_000_000).unwrap();
    source.query_value("up", Some(at)).await.unwrap();
    let request = task.await.unwrap();
    assert!(
        request.starts_with("GET /api/v1/query?query=up&time=1700000000 "),
        "{request}"
    );
}

#[tokio::test]
async fn a_closed_port_is_unreachable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let source = PrometheusSource::new(&address, Duration::from_secs(5)).unwrap();
    let err = source.query_value("up", None).await.unwrap_err();
    assert!(
        matches!(&err, QueryError::Unreachable { address: a, .. } if *a == address),
        "{err}"
    );
    assert_eq!(err.category(), "unreachable");
}

#[tokio::test]
async fn a_silent_server_times_out_as_unreachable() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let source = PrometheusSource::new(&address, Duration::from_millis(200)).unwrap();
    let err = source.query_value("up", None).await.unwrap_err();
    assert_eq!(err.category(), "unreachable", "{err}");
    drop(listener);
}

#[tokio::test]
async fn a_range_query_is_one_series_without_nan() {
    assert_eq!(
        range(MATRIX).await,
        Ok(vec![(1_700_000_000.0, 1.0), (1_700_000_120.0, 3.0)])
    );
    assert_eq!(range(MATRIX_EMPTY).await, Ok(vec![]));
    let err = range(MATRIX_TWO).await.unwrap_err();
    assert_eq!(err.category(), "multiple_series");
}

#[test]
fn addresses_must_be_http_urls() {
    for address in ["prometheus:9090", "", "ftp://p"] {
        let err = PrometheusSource::new(address, DEFAULT_TIMEOUT)
            .err()
            .unwrap();
        assert_eq!(err.category(), "invalid_address", "{address}");
    }
}

#[test]
fn the_pool_builds_one_source_per_address() {
    let pool = PrometheusPool::new("http://prometheus.monitoring:9090");
    let default = pool.get(None).unwrap();
    assert!(Arc::ptr_eq(
        &default,
        &pool
            .get(Some("http://prometheus.monitoring:9090/"))
            .unwrap()
    ));
    let other = pool.get(Some("http://other:9090")).unwrap();
    assert!(!Arc::ptr_eq(&default, &other));
    assert_eq!(
        pool.get(Some("other:9090")).err().unwrap().category(),
        "invalid_address"
    );
}

#[test]
fn a_single_source_pool_answers_every_address() {
    let fake: Arc<dyn MetricsSource> = Arc::new(crate::metrics::FakeMetrics::new());
    let pool = PrometheusPool::single(fake.clone());
    assert!(Arc::ptr_eq(&fake, &pool.get(None).unwrap()));
    assert!(Arc::ptr_eq(
        &fake,
        &pool.get(Some("http://elsewhere:9090")).unwrap()
    ));
}
