//! The one backoff every retry and reopen loop uses: exponential, capped, with jitter so
//! that many tasks failing together (a server restart) do not retry in step.

use std::time::Duration;

use rand::Rng;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// Waits start near `first` and double up to `max`.
    pub fn new(first: Duration, max: Duration) -> Self {
        Backoff {
            first,
            max: max.max(first),
            next: first,
        }
    }

    /// 200 ms doubling to 5 s: reopening subscriptions, consumers and watches.
    pub fn reopen() -> Self {
        Self::new(Duration::from_millis(200), Duration::from_secs(5))
    }

    /// The next wait: between half and all of the current step ("equal jitter"); the
    /// step then doubles, capped.
    pub fn next_delay(&mut self) -> Duration {
        let step = self.next;
        self.next = (step * 2).min(self.max);
        let half = step / 2;
        let jitter = rand::rng().random_range(0..=half.as_micros() as u64);
        half + Duration::from_micros(jitter)
    }

    /// Back to the first step, after a success.
    pub fn reset(&mut self) {
        self.next = self.first;
    }

    /// Sleeps the next delay; false when `cancel` fired first.
    pub async fn wait(&mut self, cancel: &CancellationToken) -> bool {
        let delay = self.next_delay();
        tokio::select! {
            _ = cancel.cancelled() => false,
            _ = tokio::time::sleep(delay) => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_with_jitter_up_to_the_cap() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(400));
        let steps = [100, 200, 400, 400, 400];
        for step in steps {
            let d = b.next_delay();
            let step = Duration::from_millis(step);
            assert!(d >= step / 2 && d <= step, "{d:?} for step {step:?}");
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }

    #[tokio::test(start_paused = true)]
    async fn wait_sleeps_unless_cancelled() {
        let cancel = CancellationToken::new();
        let mut b = Backoff::new(Duration::from_secs(10), Duration::from_secs(10));
        let started = tokio::time::Instant::now();
        assert!(b.wait(&cancel).await);
        assert!(started.elapsed() >= Duration::from_secs(5));
        cancel.cancel();
        assert!(!b.wait(&cancel).await);
    }
}
