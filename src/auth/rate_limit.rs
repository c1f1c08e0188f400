//! Login throttling per account and per client address, in memory.
//!
//! Each replica keeps its own counters, so with N replicas an attacker gets at
//! most N times the configured rate; that still turns online guessing from
//! millions of tries a day into thousands. A shared limiter (PostgreSQL or a
//! cache) can replace this behind the same two calls.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// Throttles login attempts.
pub struct LoginLimiter {
    per_account: DefaultKeyedRateLimiter<String>,
    per_address: DefaultKeyedRateLimiter<IpAddr>,
    clock: DefaultClock,
}

impl std::fmt::Debug for LoginLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginLimiter").finish_non_exhaustive()
    }
}

impl LoginLimiter {
    /// `per_minute` attempts per account; an address gets five times that,
    /// since offices and schools share one public address.
    #[must_use]
    pub fn new(per_minute: NonZeroU32) -> Self {
        let per_address = per_minute.saturating_mul(NonZeroU32::MIN.saturating_add(4));
        Self {
            per_account: RateLimiter::keyed(Quota::per_minute(per_minute)),
            per_address: RateLimiter::keyed(Quota::per_minute(per_address)),
            clock: DefaultClock::default(),
        }
    }

    /// Records one attempt; `Err(wait)` when over the limit.
    ///
    /// # Errors
    /// How long to wait before the next attempt may succeed.
    pub fn check(&self, account: &str, address: IpAddr) -> Result<(), Duration> {
        let now = self.clock.now();
        self.per_address
            .check_key(&address)
            .map_err(|not_until| not_until.wait_time_from(now))?;
        self.per_account
            .check_key(&account.to_owned())
            .map_err(|not_until| not_until.wait_time_from(now))
    }

    /// Forgets keys whose limits have fully recovered; call periodically so
    /// memory does not grow with every address ever seen.
    pub fn sweep(&self) {
        self.per_account.retain_recent();
        self.per_address.retain_recent();
        self.per_account.shrink_to_fit();
        self.per_address.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_is_throttled_after_its_quota() {
        let limiter = LoginLimiter::new(NonZeroU32::new(3).expect("non-zero"));
        let ip: IpAddr = "192.0.2.1".parse().expect("ip");
        for _ in 0..3 {
            assert!(limiter.check("a@example.org", ip).is_ok());
        }
        let wait = limiter.check("a@example.org", ip).expect_err("throttled");
        assert!(wait > Duration::ZERO);
        assert!(
            limiter.check("b@example.org", ip).is_ok(),
            "other accounts unaffected"
        );
    }
}
