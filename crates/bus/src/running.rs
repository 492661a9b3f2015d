//! A started service: each service's `start` returns one once its subscriptions and
//! consumers exist, so whoever starts it (a test, the stack) waits on readiness instead
//! of sleeping; `run` is `start` and then [`Running::wait`].

use tokio::task::JoinHandle;

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
    pub async fn wait(self) -> Result<(), E> {
        match self.handle.await {
            Ok(result) => result,
            Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
            Err(join) => panic!("service task cancelled: {join}"),
        }
    }
}
