//! Polling for a state the cluster reaches asynchronously.

use std::fmt::Debug;
use std::time::{Duration, Instant};

const POLL_EVERY: Duration = Duration::from_millis(200);

/// One look at the state: done with a value, or not yet (optionally with what was seen, shown
/// when the wait times out).
pub trait Attempt {
    type Output;
    fn into_result(self) -> Result<Self::Output, Option<String>>;
}

/// `Some(value)` is done; `None` is not yet.
impl<T> Attempt for Option<T> {
    type Output = T;
    fn into_result(self) -> Result<T, Option<String>> {
        self.ok_or(None)
    }
}

/// `Ok(value)` is done; `Err(observed)` is not yet, and `observed` is reported on timeout.
impl<T, E: Debug> Attempt for Result<T, E> {
    type Output = T;
    fn into_result(self) -> Result<T, Option<String>> {
        self.map_err(|observed| Some(format!("{observed:?}")))
    }
}

/// `true` is done.
impl Attempt for bool {
    type Output = ();
    fn into_result(self) -> Result<(), Option<String>> {
        if self { Ok(()) } else { Err(None) }
    }
}

/// Calls `look` every 200 ms until it reports done and returns its value; panics after
/// `timeout` naming `what` and the last observed state.
///
/// ```ignore
/// let available = eventually(Duration::from_secs(30), "3 available replicas", async || {
///     let n = ns.deployment("checkout").await.status?.available_replicas?;
///     (n == 3).then_some(n)
/// }).await;
/// ```
pub async fn eventually<A: Attempt>(
    timeout: Duration,
    what: &str,
    mut look: impl AsyncFnMut() -> A,
) -> A::Output {
    let deadline = Instant::now() + timeout;
    let mut last_seen = None;
    loop {
        match look().await.into_result() {
            Ok(value) => return value,
            Err(seen) => last_seen = seen.or(last_seen),
        }
        if Instant::now() >= deadline {
            match last_seen {
                Some(seen) => {
                    panic!("timed out after {timeout:?} waiting for {what}; last observed: {seen}")
                }
                None => panic!("timed out after {timeout:?} waiting for {what}"),
            }
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}
