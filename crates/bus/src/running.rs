//! A started service: each service's `start` returns one once its subscriptions and
//! consumers exist, so whoever starts it (a test, the stack) waits on readiness instead
//! of sleeping; `run` is `start` and then [`Running::wait`].

use tokio::task::JoinHandle;

/// The service's main loop, running. Dropping it (or the future of [`Running::wait`])
/// aborts the loop at once, as a crash would: aborting a task that waits on a service
/// stops the service too, rather than leaving it running unseen.
pub struct Running<E> {
    handle: JoinHandle<Result<(), E>>,
}

impl<E: Send + 'static> Running<E> {
    /// Runs `work` (the service's main loop, everything it needs already set up).
    pub fn spawn(work: impl Future<Output = Result<(), E>> + Send + 'static) -> Self {
        Running {
            handle: tokio::spawn(work),
        }
    }

    /// Until the service stops (its shutdown token was cancelled, or it failed).
    pub async fn wait(mut self) -> Result<(), E> {
        match (&mut self.handle).await {
            Ok(result) => result,
            Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
            Err(join) => panic!("service task cancelled: {join}"),
        }
    }
}

impl<E> Drop for Running<E> {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn aborting_the_waiter_stops_the_service() {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
        let running = Running::<()>::spawn(async move {
            // Holds the sender until aborted.
            let _tx = tx;
            std::future::pending::<()>().await;
            Ok(())
        });
        let waiter = tokio::spawn(running.wait());
        waiter.abort();
        let closed = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await;
        assert_eq!(closed, Ok(None), "the service's task was not aborted");
    }

    #[tokio::test]
    async fn wait_returns_the_result() {
        let running = Running::spawn(async { Err::<(), _>("failed") });
        assert_eq!(running.wait().await, Err("failed"));
    }
}
