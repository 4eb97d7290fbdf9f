//! Waiting through an engine restart: a caller waiting for an outcome keeps
//! waiting while the engine answers "unavailable" (a server restarting, a
//! connection being re-established), with a backoff, for up to a minute of
//! consecutive unavailability; then it reports the error.

use std::{future::Future, time::Duration};

use super::ProtocolError;

/// How long consecutive "unavailable" answers are retried before giving up.
pub(crate) const UNAVAILABLE_PATIENCE: Duration = Duration::from_secs(60);

/// Runs `call` again while it fails with a retryable error, backing off from
/// 100 ms to 5 s, for up to [`UNAVAILABLE_PATIENCE`] in all.
pub(crate) async fn retrying<T, F, Fut>(mut call: F) -> Result<T, ProtocolError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ProtocolError>>,
{
    let mut delay = Duration::from_millis(100);
    let mut waited = Duration::ZERO;
    loop {
        match call().await {
            Err(err) if err.is_retryable() && waited < UNAVAILABLE_PATIENCE => {
                tokio::time::sleep(delay).await;
                waited += delay;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            other => return other,
        }
    }
}
