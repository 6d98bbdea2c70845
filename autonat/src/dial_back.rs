//! The dial-back stream (`/libp2p/autonat/2/dial-back`): the server sends the nonce,
//! the client acknowledges it. Both sides, each within a timeout.

use crate::codec::{read_message, write_message, CodecError};
use crate::proto::{DialBack, DialBackResponse, DialBackStatus};
use futures::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use std::future::Future;
use std::time::Duration;

/// Why a dial-back exchange failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DialBackError {
    /// A message could not be read or written.
    #[error("the dial-back exchange failed: {0}")]
    Codec(#[from] CodecError),
    /// The other side took too long.
    #[error("the dial-back exchange timed out after {0:?}")]
    Timeout(Duration),
    /// The client acknowledged with a status we do not know.
    #[error("the client acknowledged with an unknown status {0}")]
    UnknownStatus(i32),
}

async fn within<T>(
    after: Duration,
    work: impl Future<Output = Result<T, CodecError>>,
) -> Result<T, DialBackError> {
    match tokio::time::timeout(after, work).await {
        Ok(r) => Ok(r?),
        Err(_) => Err(DialBackError::Timeout(after)),
    }
}

/// The server's side: sends `nonce` and waits for the acknowledgement, all within
/// `timeout`.
///
/// # Errors
///
/// [`DialBackError`]: the stream failed, the client did not answer in time, or its
/// answer was not OK.
pub async fn send_nonce<S>(
    stream: &mut S,
    nonce: u64,
    timeout: Duration,
) -> Result<(), DialBackError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut buf = Vec::new();
    let answer: DialBackResponse = within(timeout, async {
        write_message(stream, &DialBack { nonce }).await?;
        read_message(stream, &mut buf).await
    })
    .await?;
    let _ = stream.close().await;
    match DialBackStatus::try_from(answer.status) {
        Ok(DialBackStatus::Ok) => Ok(()),
        Err(_) => Err(DialBackError::UnknownStatus(answer.status)),
    }
}

/// The client's side, first half: reads the nonce within `timeout`.
///
/// # Errors
///
/// [`DialBackError`]: the stream failed or the nonce did not come in time.
pub async fn read_nonce<S>(stream: &mut S, timeout: Duration) -> Result<u64, DialBackError>
where
    S: AsyncRead + Unpin,
{
    let mut buf = Vec::new();
    let msg: DialBack = within(timeout, read_message(stream, &mut buf)).await?;
    Ok(msg.nonce)
}

/// The client's side, second half: acknowledges the nonce and closes the stream,
/// within `timeout`.
///
/// # Errors
///
/// [`DialBackError`]: the stream failed or the write did not finish in time.
pub async fn acknowledge<S>(stream: &mut S, timeout: Duration) -> Result<(), DialBackError>
where
    S: AsyncWrite + Unpin,
{
    let ok = DialBackResponse {
        status: DialBackStatus::Ok as i32,
    };
    within(timeout, async {
        write_message(stream, &ok).await?;
        stream.close().await?;
        Ok(())
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_nonce_goes_over_and_is_acknowledged() {
        let (mut server, mut client) = crate::test_support::stream_pair().await;
        let t = Duration::from_secs(5);
        let serving = tokio::spawn(async move { send_nonce(&mut server, 42, t).await });
        assert_eq!(read_nonce(&mut client, t).await.unwrap(), 42);
        acknowledge(&mut client, t).await.unwrap();
        serving.await.unwrap().unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_client_times_the_server_out() {
        let (mut server, _client) = crate::test_support::stream_pair().await;
        let t = Duration::from_secs(5);
        let r = send_nonce(&mut server, 42, t).await;
        assert!(
            matches!(r, Err(DialBackError::Timeout(d)) if d == t),
            "{r:?}"
        );
    }
}
