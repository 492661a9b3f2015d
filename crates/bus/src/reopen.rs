//! Following a stream (a KV watch, a consumer's messages, a subscription) forever, written
//! once: when it ends or fails, or cannot be opened, it is opened again after a backoff,
//! until the service stops. A server restart ends every watch and consumer stream; each
//! follower must come back on its own.

use std::fmt::Display;
use std::future::Future;

use futures::{Stream, StreamExt};
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;

/// Feeds every item of the stream `open` opens to `each`, reopening as described above;
/// `open` is called again for every reopening, so it may resume from a position `each`
/// recorded. Returns when `cancel` fires or `each` answers false.
pub async fn reopen_forever<S, T, E, OE, O, OFut, F, FFut>(
    what: &str,
    cancel: &CancellationToken,
    mut open: O,
    mut each: F,
) where
    O: FnMut() -> OFut,
    OFut: Future<Output = Result<S, OE>>,
    OE: Display,
    S: Stream<Item = Result<T, E>> + Unpin,
    E: Display,
    F: FnMut(T) -> FFut,
    FFut: Future<Output = bool>,
{
    let mut backoff = Backoff::reopen();
    loop {
        let opened = tokio::select! {
            _ = cancel.cancelled() => return,
            opened = open() => opened,
        };
        match opened {
            Err(err) => tracing::warn!(what, error = %err, "opening failed, retrying"),
            Ok(mut stream) => loop {
                let next = tokio::select! {
                    _ = cancel.cancelled() => return,
                    next = stream.next() => next,
                };
                match next {
                    Some(Ok(item)) => {
                        backoff.reset();
                        if !each(item).await {
                            return;
                        }
                    }
                    Some(Err(err)) => {
                        tracing::warn!(what, error = %err, "stream failed, reopening");
                        break;
                    }
                    None => {
                        tracing::debug!(what, "stream ended, reopening");
                        break;
                    }
                }
            },
        }
        if !backoff.wait(cancel).await {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test(start_paused = true)]
    async fn reopens_after_errors_and_ends_and_resumes_where_told() {
        let cancel = CancellationToken::new();
        let opens = AtomicU32::new(0);
        let seen = std::sync::Mutex::new(Vec::new());
        // Open 1 fails; open 2 yields 1, 2 then an error; open 3 resumes after the last
        // item seen and yields 3 then ends; open 4 yields 4, after which `each` stops.
        reopen_forever(
            "test",
            &cancel,
            || {
                let n = opens.fetch_add(1, Ordering::SeqCst) + 1;
                let last = seen.lock().unwrap().last().copied().unwrap_or(0);
                async move {
                    let items: Vec<Result<u32, String>> = match n {
                        1 => return Err("no stream found".to_string()),
                        2 => vec![Ok(1), Ok(2), Err("heartbeat missed".into())],
                        _ => vec![Ok(last + 1)],
                    };
                    Ok(futures::stream::iter(items))
                }
            },
            |item| {
                seen.lock().unwrap().push(item);
                let go_on = item < 4;
                async move { go_on }
            },
        )
        .await;
        assert_eq!(*seen.lock().unwrap(), [1, 2, 3, 4]);
        assert_eq!(opens.load(Ordering::SeqCst), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn stops_when_cancelled() {
        let cancel = CancellationToken::new();
        cancel.cancel();
        reopen_forever(
            "test",
            &cancel,
            || async { Err::<futures::stream::Empty<Result<(), String>>, _>("down") },
            |_| async { true },
        )
        .await;
    }
}
