//! `syncPolicy.retry`: the retry limit and backoff, with Argo CD's defaults and the
//! delay before each retry.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::meta::{is_false, is_zero};
use crate::validate::parse_duration;

/// Argo CD's retry defaults when `backoff` fields are unset.
pub const DEFAULT_RETRY_DURATION: Duration = Duration::from_secs(5);
pub const DEFAULT_RETRY_FACTOR: i64 = 2;
pub const DEFAULT_RETRY_MAX_DURATION: Duration = Duration::from_secs(180);

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetryStrategy {
    /// Maximum retries; 0 means none, negative means unlimited.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub limit: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<Backoff>,
    /// Argo CD 3.x: retry with the latest revision rather than the failed one.
    #[serde(default, skip_serializing_if = "is_false")]
    pub refresh: bool,
}

impl RetryStrategy {
    pub fn is_unlimited(&self) -> bool {
        self.limit < 0
    }

    /// The effective backoff, with Argo CD's defaults (5s, x2, max 3m) for unset or
    /// unparsable fields (validation reports the unparsable ones).
    pub fn effective_backoff(&self) -> EffectiveBackoff {
        let b = self.backoff.as_ref();
        EffectiveBackoff {
            duration: b
                .and_then(|b| parse_duration(&b.duration))
                .unwrap_or(DEFAULT_RETRY_DURATION),
            factor: b.and_then(|b| b.factor).unwrap_or(DEFAULT_RETRY_FACTOR),
            max_duration: b
                .and_then(|b| parse_duration(&b.max_duration))
                .unwrap_or(DEFAULT_RETRY_MAX_DURATION),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Backoff {
    /// e.g. `5s`; a bare integer is seconds.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub duration: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub factor: Option<i64>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub max_duration: String,
}

/// Backoff with durations parsed and defaults applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EffectiveBackoff {
    pub duration: Duration,
    pub factor: i64,
    pub max_duration: Duration,
}

impl EffectiveBackoff {
    /// Delay before retry number `attempt` (0-based): duration * factor^attempt, capped.
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = u32::try_from(self.factor.max(1)).unwrap_or(u32::MAX);
        let mut d = self.duration;
        for _ in 0..attempt {
            d = d.saturating_mul(factor);
            if d >= self.max_duration {
                return self.max_duration;
            }
        }
        d.min(self.max_duration)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_defaults_and_delays() {
        let none = RetryStrategy::default().effective_backoff();
        assert_eq!(none.duration, Duration::from_secs(5));
        assert_eq!(none.factor, 2);
        assert_eq!(none.max_duration, Duration::from_secs(180));
        assert_eq!(none.delay(0), Duration::from_secs(5));
        assert_eq!(none.delay(2), Duration::from_secs(20));
        assert_eq!(none.delay(10), Duration::from_secs(180));
        let custom = RetryStrategy {
            limit: -1,
            backoff: Some(Backoff {
                duration: "10".into(),
                factor: Some(3),
                max_duration: "1m".into(),
            }),
            refresh: false,
        };
        assert!(custom.is_unlimited());
        let b = custom.effective_backoff();
        assert_eq!(
            (b.duration, b.factor, b.max_duration),
            (Duration::from_secs(10), 3, Duration::from_secs(60))
        );
        assert_eq!(b.delay(1), Duration::from_secs(30));
    }
}
