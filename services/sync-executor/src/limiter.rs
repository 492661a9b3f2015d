//! A per-cluster request rate limit (token bucket in virtual time), so a big sync cannot
//! flood one API server while the others wait on their own limits; and the pause an API
//! server asks for with `Retry-After` (on 429 and 503), which holds every request of the
//! executor to that cluster, as client-go waits before it retries.

use std::time::Duration;

use std::sync::Mutex;
use tokio::time::Instant;

pub struct RateLimiter {
    /// Time one request costs; zero disables the limit.
    interval: Duration,
    /// How far the next slot may lag behind now: the burst allowance.
    burst: Duration,
    next: Mutex<Option<Instant>>,
    /// No request before this: the latest `Retry-After` the cluster sent.
    held_until: Mutex<Option<Instant>>,
}

/// The longest `Retry-After` obeyed: a cluster asking for more is asked again after this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

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
            held_until: Mutex::new(None),
        }
    }

    /// Holds every request until `after` has passed (a `Retry-After`, capped at
    /// [`MAX_RETRY_AFTER`]); a shorter hold than one in force changes nothing.
    pub fn hold(&self, after: Duration) {
        let until = Instant::now() + after.min(MAX_RETRY_AFTER);
        let mut held = self.held_until.lock().unwrap_or_else(|e| e.into_inner());
        if held.is_none_or(|h| h < until) {
            *held = Some(until);
        }
    }

    /// Notes a response's `Retry-After` (whole seconds, as API servers send it) when it
    /// is a 429 or 503.
    pub fn note<B>(&self, response: http::Response<B>) -> http::Response<B> {
        let status = response.status();
        if status == http::StatusCode::TOO_MANY_REQUESTS
            || status == http::StatusCode::SERVICE_UNAVAILABLE
        {
            let seconds = response
                .headers()
                .get(http::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            if let Some(seconds) = seconds {
                self.hold(Duration::from_secs(seconds));
            }
        }
        response
    }

    /// Waits for this request's slot.
    pub async fn acquire(&self) {
        let held = *self.held_until.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(until) = held {
            tokio::time::sleep_until(until).await;
        }
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
    async fn a_retry_after_holds_requests_and_only_a_longer_one_extends_it() {
        let limiter = RateLimiter::new(0.0, 0);
        let answer = |code: u16, after: &str| {
            http::Response::builder()
                .status(code)
                .header(http::header::RETRY_AFTER, after)
                .body(())
                .unwrap()
        };
        let start = Instant::now();
        limiter.note(answer(429, "3"));
        limiter.note(answer(503, "1"));
        // Not a pause the server asked for.
        limiter.note(answer(500, "30"));
        limiter.note(answer(429, "soon"));
        limiter.acquire().await;
        assert_eq!(start.elapsed(), Duration::from_secs(3));
        limiter.note(answer(429, "3600"));
        limiter.acquire().await;
        assert_eq!(start.elapsed(), Duration::from_secs(3) + MAX_RETRY_AFTER);
    }

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
