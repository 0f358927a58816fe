//! Token-bucket rate limits, one bucket per key (a tenant, an API key, an address, …).
//!
//! Each bucket holds up to `burst` tokens and gains `per_second` tokens per second. A
//! request costs some tokens (one per request, or one per event, or per kilobyte: the
//! caller decides); it is allowed if the bucket holds that many, and the bucket pays.
//! A key seen for the first time starts with a full bucket.
//!
//! Time is passed in as [`Instant`]s, so the arithmetic is testable without sleeping.
//!
//! # Memory
//!
//! At most `max_keys` buckets are kept. When a new key would exceed that, buckets that
//! have refilled to full are dropped first (forgetting them changes nothing: a new
//! bucket starts full), then, if still needed, the least recently updated ones. A key
//! whose bucket was dropped starts full again, so eviction can only ever let a client
//! through early, never block one wrongly. Each eviction frees a tenth of the capacity,
//! so its cost is spread over many new keys.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

/// How fast a bucket refills and how much it holds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quota {
    /// Tokens added per second.
    pub per_second: f64,
    /// Capacity: the most tokens a bucket holds, and so the largest single cost.
    pub burst: f64,
}

/// Why a quota is invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum QuotaError {
    /// The rate or the burst is NaN or infinite.
    #[error("the rate and the burst of a quota must be finite numbers")]
    NotFinite,
    /// The rate is zero or negative.
    #[error("the rate of a quota must be greater than zero")]
    RateNotPositive,
    /// The burst is below one token.
    #[error("the burst of a quota must be at least 1")]
    BurstBelowOne,
}

impl Quota {
    /// A validated quota: both numbers finite, `per_second > 0`, `burst >= 1`.
    ///
    /// # Errors
    ///
    /// The first rule broken, as a [`QuotaError`].
    pub fn new(per_second: f64, burst: f64) -> Result<Quota, QuotaError> {
        if !per_second.is_finite() || !burst.is_finite() {
            return Err(QuotaError::NotFinite);
        }
        if per_second <= 0.0 {
            return Err(QuotaError::RateNotPositive);
        }
        if burst < 1.0 {
            return Err(QuotaError::BurstBelowOne);
        }
        Ok(Quota { per_second, burst })
    }

    /// The refill rate actually used: a rate that is not a positive finite number (only
    /// possible when the fields were set directly rather than through [`Quota::new`])
    /// means no refill at all.
    fn rate(self) -> f64 {
        if self.per_second.is_finite() && self.per_second > 0.0 {
            self.per_second
        } else {
            0.0
        }
    }

    /// The capacity actually used: a burst that is not a finite non-negative number
    /// means an empty bucket, so every cost [`Decision::Exceeds`] it (fail closed).
    fn capacity(self) -> f64 {
        if self.burst.is_finite() && self.burst >= 0.0 {
            self.burst
        } else {
            0.0
        }
    }

    /// Seconds until `tokens` refill to full: zero when full, infinite without refill.
    fn seconds_until(self, target: f64, tokens: f64) -> f64 {
        let missing = target - tokens;
        if missing <= 0.0 {
            0.0
        } else if self.rate() > 0.0 {
            missing / self.rate()
        } else {
            f64::INFINITY
        }
    }
}

/// The outcome of [`Buckets::take`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decision {
    /// The request may proceed; its cost has been paid.
    Allowed {
        /// Tokens left after paying.
        remaining: f64,
        /// Seconds until the bucket is full again (infinite without refill).
        reset_seconds: f64,
    },
    /// Not enough tokens now; nothing was paid.
    Limited {
        /// Seconds until the bucket holds enough for this cost (infinite without refill).
        retry_after_seconds: f64,
        /// Seconds until the bucket is full again (infinite without refill).
        reset_seconds: f64,
    },
    /// The cost is larger than the burst, or not a number, so it can never be paid;
    /// the caller should refuse the request as too large rather than ask for a retry.
    Exceeds,
}

/// One key's bucket.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// Token buckets for many keys sharing one [`Quota`].
pub struct Buckets<K> {
    quota: Quota,
    max_keys: usize,
    buckets: Mutex<HashMap<K, Bucket>>,
}

impl<K: Eq + Hash + Clone> Buckets<K> {
    /// Makes an empty set of buckets with the given quota, keeping at most `max_keys`
    /// buckets (at least one).
    pub fn new(quota: Quota, max_keys: usize) -> Self {
        Buckets {
            quota,
            max_keys: max_keys.max(1),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// The quota these buckets were made with.
    pub fn quota(&self) -> Quota {
        self.quota
    }

    /// Tries to pay `cost` tokens from `key`'s bucket at time `now`.
    ///
    /// A negative cost counts as zero; a cost of zero pays nothing and only reports the
    /// bucket's state. A cost above the burst, or NaN, is [`Decision::Exceeds`].
    /// Otherwise the bucket is refilled for the time since its last update and the cost
    /// is paid if the bucket holds enough ([`Decision::Allowed`]), or nothing is paid
    /// ([`Decision::Limited`]).
    #[must_use = "the decision says whether the request may proceed"]
    pub fn take(&self, key: &K, cost: f64, now: Instant) -> Decision {
        let capacity = self.quota.capacity();
        if cost.is_nan() || cost > capacity {
            return Decision::Exceeds;
        }
        let cost = cost.max(0.0);
        let mut buckets = self.lock();

        let Some(bucket) = buckets.get_mut(key) else {
            if cost == 0.0 {
                // Reporting on an unknown key: it is full, and need not be remembered.
                return self.allowed(capacity);
            }
            if buckets.len() >= self.max_keys {
                self.evict(&mut buckets, now);
            }
            let remaining = capacity - cost;
            buckets.insert(
                key.clone(),
                Bucket {
                    tokens: remaining,
                    updated: now,
                },
            );
            return self.allowed(remaining);
        };

        self.refill(bucket, now);
        if cost <= bucket.tokens {
            bucket.tokens -= cost;
            self.allowed(bucket.tokens)
        } else {
            Decision::Limited {
                retry_after_seconds: self.quota.seconds_until(cost, bucket.tokens),
                reset_seconds: self.quota.seconds_until(capacity, bucket.tokens),
            }
        }
    }

    /// Gives back `amount` tokens taken earlier (capped at the burst): for a cost
    /// reserved before slow work that turned out not to be owed.
    pub fn refund(&self, key: &K, amount: f64, now: Instant) {
        if !amount.is_finite() || amount <= 0.0 {
            return;
        }
        let capacity = self.quota.capacity();
        let mut buckets = self.lock();
        if let Some(bucket) = buckets.get_mut(key) {
            self.refill(bucket, now);
            bucket.tokens = (bucket.tokens + amount).min(capacity);
        }
    }

    /// The tokens `key`'s bucket holds at `now`, without paying anything; a key not
    /// seen (or forgotten) holds the full burst.
    pub fn available(&self, key: &K, now: Instant) -> f64 {
        let buckets = self.lock();
        match buckets.get(key) {
            Some(bucket) => self.refilled(*bucket, now),
            None => self.quota.capacity(),
        }
    }

    fn allowed(&self, remaining: f64) -> Decision {
        Decision::Allowed {
            remaining,
            reset_seconds: self.quota.seconds_until(self.quota.capacity(), remaining),
        }
    }

    /// The bucket's tokens at `now`: what it held plus the refill since, up to the burst.
    /// A `now` earlier than the last update refills nothing.
    fn refilled(&self, bucket: Bucket, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        let tokens = bucket.tokens + self.quota.rate() * elapsed;
        tokens.min(self.quota.capacity())
    }

    /// Brings the bucket up to `now`; time never moves backwards for a bucket.
    fn refill(&self, bucket: &mut Bucket, now: Instant) {
        bucket.tokens = self.refilled(*bucket, now);
        if now > bucket.updated {
            bucket.updated = now;
        }
    }

    /// Makes room for at least one new bucket; see the module documentation.
    fn evict(&self, buckets: &mut HashMap<K, Bucket>, now: Instant) {
        let capacity = self.quota.capacity();
        buckets.retain(|_, bucket| self.refilled(*bucket, now) < capacity);

        // Leave room for a tenth of the capacity (at least one) so the next evictions
        // are not one new key away.
        let target = self.max_keys - (self.max_keys / 10).max(1);
        if buckets.len() <= target {
            return;
        }
        let excess = buckets.len() - target;
        let mut by_age: Vec<(Instant, K)> = buckets
            .iter()
            .map(|(key, bucket)| (bucket.updated, key.clone()))
            .collect();
        by_age.select_nth_unstable_by_key(excess - 1, |(updated, _)| *updated);
        for (_, key) in by_age.iter().take(excess) {
            buckets.remove(key);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, Bucket>> {
        // Every update under the lock leaves the map consistent, so a lock poisoned by a
        // panic elsewhere is safe to keep using.
        self.buckets.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<K> std::fmt::Debug for Buckets<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Buckets")
            .field("quota", &self.quota)
            .field("max_keys", &self.max_keys)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod refund_tests {
    use super::*;

    #[test]
    fn a_refund_restores_what_was_taken_up_to_the_burst() {
        let quota = Quota::new(1.0, 2.0).expect("valid");
        let buckets = Buckets::new(quota, 10);
        let now = Instant::now();
        assert!(matches!(
            buckets.take(&"a", 2.0, now),
            Decision::Allowed { .. }
        ));
        assert!(matches!(
            buckets.take(&"a", 1.0, now),
            Decision::Limited { .. }
        ));
        buckets.refund(&"a", 1.0, now);
        assert_eq!(buckets.available(&"a", now), 1.0);
        buckets.refund(&"a", 5.0, now);
        assert_eq!(buckets.available(&"a", now), 2.0, "capped at the burst");
        buckets.refund(&"unknown", 1.0, now);
        assert_eq!(buckets.available(&"unknown", now), 2.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn quota(per_second: f64, burst: f64) -> Quota {
        Quota::new(per_second, burst).expect("valid quota")
    }

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    fn assert_close(actual: f64, expected: f64) {
        assert!((actual - expected).abs() < 1e-9, "{actual} != {expected}");
    }

    #[test]
    fn quota_validation() {
        assert_eq!(
            Quota::new(10.0, 20.0),
            Ok(Quota {
                per_second: 10.0,
                burst: 20.0
            })
        );
        assert_eq!(
            Quota::new(0.5, 1.0),
            Ok(Quota {
                per_second: 0.5,
                burst: 1.0
            })
        );
        assert_eq!(Quota::new(f64::NAN, 1.0), Err(QuotaError::NotFinite));
        assert_eq!(Quota::new(1.0, f64::INFINITY), Err(QuotaError::NotFinite));
        assert_eq!(Quota::new(0.0, 1.0), Err(QuotaError::RateNotPositive));
        assert_eq!(Quota::new(-1.0, 1.0), Err(QuotaError::RateNotPositive));
        assert_eq!(Quota::new(1.0, 0.5), Err(QuotaError::BurstBelowOne));
    }

    #[test]
    fn new_keys_start_full_and_pay() {
        let buckets = Buckets::new(quota(1.0, 10.0), 100);
        let t0 = Instant::now();
        assert_close(buckets.available(&"a", t0), 10.0);
        assert_eq!(
            buckets.take(&"a", 4.0, t0),
            Decision::Allowed {
                remaining: 6.0,
                reset_seconds: 4.0
            }
        );
        assert_close(buckets.available(&"a", t0), 6.0);
        assert_close(buckets.available(&"b", t0), 10.0);
        assert_eq!(buckets.quota(), quota(1.0, 10.0));
    }

    #[test]
    fn refill_is_linear_and_capped_at_burst() {
        let buckets = Buckets::new(quota(2.0, 10.0), 100);
        let t0 = Instant::now();
        assert!(matches!(
            buckets.take(&"a", 10.0, t0),
            Decision::Allowed { .. }
        ));
        assert_close(buckets.available(&"a", t0), 0.0);
        assert_close(buckets.available(&"a", t0 + secs(1.5)), 3.0);
        assert_close(buckets.available(&"a", t0 + secs(5.0)), 10.0);
        assert_close(buckets.available(&"a", t0 + secs(500.0)), 10.0);
        // The cap applies to what can be taken, too.
        assert!(matches!(
            buckets.take(&"a", 10.0, t0 + secs(500.0)),
            Decision::Allowed { .. }
        ));
        assert!(matches!(
            buckets.take(&"a", 1.0, t0 + secs(500.0)),
            Decision::Limited { .. }
        ));
    }

    #[test]
    fn limited_reports_retry_after_and_pays_nothing() {
        let buckets = Buckets::new(quota(4.0, 8.0), 100);
        let t0 = Instant::now();
        assert!(matches!(
            buckets.take(&"a", 7.0, t0),
            Decision::Allowed { .. }
        ));
        // 1 token left; 5 needed: (5 - 1) / 4 = 1 s; full in (8 - 1) / 4 = 1.75 s.
        let Decision::Limited {
            retry_after_seconds,
            reset_seconds,
        } = buckets.take(&"a", 5.0, t0)
        else {
            panic!("expected Limited");
        };
        assert_close(retry_after_seconds, 1.0);
        assert_close(reset_seconds, 1.75);
        assert_close(buckets.available(&"a", t0), 1.0);
        // Exactly when promised, it succeeds.
        let Decision::Allowed {
            remaining,
            reset_seconds,
        } = buckets.take(&"a", 5.0, t0 + secs(1.0))
        else {
            panic!("expected Allowed");
        };
        assert_close(remaining, 0.0);
        assert_close(reset_seconds, 2.0);
    }

    #[test]
    fn costs_above_burst_exceed() {
        let buckets = Buckets::new(quota(1.0, 10.0), 100);
        let t0 = Instant::now();
        assert_eq!(buckets.take(&"a", 10.5, t0), Decision::Exceeds);
        assert_eq!(buckets.take(&"a", f64::NAN, t0), Decision::Exceeds);
        assert_eq!(buckets.take(&"a", f64::INFINITY, t0), Decision::Exceeds);
        // Nothing was paid or remembered.
        assert_close(buckets.available(&"a", t0), 10.0);
        assert!(matches!(
            buckets.take(&"a", 10.0, t0),
            Decision::Allowed { .. }
        ));
    }

    #[test]
    fn zero_cost_only_reports() {
        let buckets = Buckets::new(quota(1.0, 10.0), 100);
        let t0 = Instant::now();
        assert_eq!(
            buckets.take(&"a", 0.0, t0),
            Decision::Allowed {
                remaining: 10.0,
                reset_seconds: 0.0
            }
        );
        assert!(
            buckets.lock().is_empty(),
            "a report does not create a bucket"
        );
        assert!(matches!(
            buckets.take(&"a", 10.0, t0),
            Decision::Allowed { .. }
        ));
        assert_eq!(
            buckets.take(&"a", 0.0, t0),
            Decision::Allowed {
                remaining: 0.0,
                reset_seconds: 10.0
            }
        );
        assert_eq!(
            buckets.take(&"a", -3.0, t0),
            Decision::Allowed {
                remaining: 0.0,
                reset_seconds: 10.0
            }
        );
    }

    #[test]
    fn time_going_backwards_refills_nothing() {
        let buckets = Buckets::new(quota(1.0, 10.0), 100);
        let t0 = Instant::now();
        let later = t0 + secs(5.0);
        assert!(matches!(
            buckets.take(&"a", 10.0, later),
            Decision::Allowed { .. }
        ));
        assert!(matches!(
            buckets.take(&"a", 1.0, t0),
            Decision::Limited { .. }
        ));
        assert_close(buckets.available(&"a", later + secs(2.0)), 2.0);
    }

    #[test]
    fn unvalidated_quotas_fail_sensibly() {
        let t0 = Instant::now();
        let no_refill = Buckets::new(
            Quota {
                per_second: 0.0,
                burst: 2.0,
            },
            10,
        );
        assert_eq!(
            no_refill.take(&"a", 2.0, t0),
            Decision::Allowed {
                remaining: 0.0,
                reset_seconds: f64::INFINITY
            }
        );
        assert_eq!(
            no_refill.take(&"a", 1.0, t0 + secs(1e6)),
            Decision::Limited {
                retry_after_seconds: f64::INFINITY,
                reset_seconds: f64::INFINITY
            }
        );
        let nan_rate = Buckets::new(
            Quota {
                per_second: f64::NAN,
                burst: 2.0,
            },
            10,
        );
        assert!(matches!(
            nan_rate.take(&"a", 2.0, t0),
            Decision::Allowed { .. }
        ));
        assert_close(nan_rate.available(&"a", t0 + secs(10.0)), 0.0);
        let nan_burst = Buckets::new(
            Quota {
                per_second: 1.0,
                burst: f64::NAN,
            },
            10,
        );
        assert_eq!(nan_burst.take(&"a", 1.0, t0), Decision::Exceeds);
    }

    #[test]
    fn eviction_drops_full_buckets_first() {
        let buckets = Buckets::new(quota(1.0, 10.0), 4);
        let t0 = Instant::now();
        // "a" is nearly full again by t0 + 10 s; "b".."d" are drained later.
        assert!(matches!(
            buckets.take(&"a", 1.0, t0),
            Decision::Allowed { .. }
        ));
        for key in ["b", "c", "d"] {
            assert!(matches!(
                buckets.take(&key, 10.0, t0 + secs(9.0)),
                Decision::Allowed { .. }
            ));
        }
        assert!(matches!(
            buckets.take(&"e", 1.0, t0 + secs(10.0)),
            Decision::Allowed { .. }
        ));
        let kept = buckets.lock();
        assert!(!kept.contains_key("a"), "the full bucket goes");
        for key in ["b", "c", "d", "e"] {
            assert!(kept.contains_key(key), "{key}");
        }
    }

    #[test]
    fn eviction_then_drops_the_least_recently_updated() {
        let buckets = Buckets::new(quota(0.001, 10.0), 20);
        let t0 = Instant::now();
        for i in 0..20u32 {
            let at = t0 + secs(f64::from(i));
            assert!(matches!(
                buckets.take(&i, 5.0, at),
                Decision::Allowed { .. }
            ));
        }
        // Touch key 0 so it is the most recent.
        assert!(matches!(
            buckets.take(&0, 1.0, t0 + secs(30.0)),
            Decision::Allowed { .. }
        ));
        assert!(matches!(
            buckets.take(&100, 5.0, t0 + secs(31.0)),
            Decision::Allowed { .. }
        ));
        let kept = buckets.lock();
        // Target is 20 - 2 = 18 before inserting: keys 1 and 2 (the oldest) go.
        assert_eq!(kept.len(), 19);
        assert!(kept.contains_key(&0));
        assert!(!kept.contains_key(&1));
        assert!(!kept.contains_key(&2));
        assert!(kept.contains_key(&3));
        assert!(kept.contains_key(&100));
    }

    #[test]
    fn a_forgotten_key_starts_full() {
        let buckets = Buckets::new(quota(0.001, 3.0), 1);
        let t0 = Instant::now();
        assert!(matches!(
            buckets.take(&"a", 3.0, t0),
            Decision::Allowed { .. }
        ));
        assert!(matches!(
            buckets.take(&"a", 1.0, t0),
            Decision::Limited { .. }
        ));
        assert!(matches!(
            buckets.take(&"b", 1.0, t0),
            Decision::Allowed { .. }
        ));
        // "a" was evicted to make room for "b": it may proceed again.
        assert_close(buckets.available(&"a", t0), 3.0);
    }

    #[test]
    fn zero_max_keys_means_one() {
        let buckets = Buckets::new(quota(1.0, 1.0), 0);
        let t0 = Instant::now();
        assert!(matches!(
            buckets.take(&"a", 1.0, t0),
            Decision::Allowed { .. }
        ));
        assert!(matches!(
            buckets.take(&"a", 1.0, t0),
            Decision::Limited { .. }
        ));
    }
}
