//! A per-cluster request rate limit (token bucket in virtual time), so a big sync cannot
//! flood one API server while the others wait on their own limits.

use std::time::Duration;

use std::sync::Mutex;
use tokio::time::Instant;

pub struct RateLimiter {
    /// Time one request costs; zero disables the limit.
    interval: Duration,
    /// How far the next slot may lag behind now: the burst allowance.
    burst: Duration,
    next: Mutex<Option<Instant>>,
}

impl RateLimiter {
    pub fn new(qps: f64, burst: u32) -> Self {
        let interval = if qps > 0.0 && qps.is_finite() {
            Duration::from_secs_f64(1.0 / qps)
        } else {
            Duration::ZERO
        };
        RateLimiter {
            interval,
            burst: interval * burst,
            next: Mutex::new(None),
        }
    }

    /// Waits for this request's slot.
    pub async fn acquire(&self) {
        if self.interval.is_zero() {
            return;
        }
        let slot = {
            let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            let earliest = now.checked_sub(self.burst).unwrap_or(now);
            let slot = next.map_or(earliest, |n| n.max(earliest));
            *next = Some(slot + self.interval);
            slot
        };
        tokio::time::sleep_until(slot).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn bursts_then_paces() {
        let limiter = RateLimiter::new(10.0, 5);
        let start = Instant::now();
        for _ in 0..5 {
            limiter.acquire().await;
        }
        assert!(start.elapsed() < Duration::from_millis(10), "burst is free");
        for _ in 0..10 {
            limiter.acquire().await;
        }
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(900) && took <= Duration::from_millis(1100),
            "{took:?}"
        );
    }
}
