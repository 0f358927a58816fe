//! Rate limits: token buckets per caller (requests and events) and per tenant
//! (events and bytes), and the throttles on failed logins.
//!
//! Buckets live in this process. With several API processes each enforces its
//! own share; the configured rates are per process (see the README).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use auth::ratelimit::{Buckets, Decision, Quota};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use super::Principal;
use crate::ApiError;

/// How many callers or tenants each bucket set remembers before forgetting full ones.
const MAX_TRACKED: usize = 100_000;

/// Rates and bursts, all per second.
#[derive(Debug, Clone, Copy)]
pub struct RateSettings {
    /// Requests per caller (API key or user).
    pub requests: Quota,
    /// Ingested events per caller.
    pub caller_events: Quota,
    /// Ingested events per tenant.
    pub tenant_events: Quota,
    /// Ingested body bytes per tenant (as sent, before decompression).
    pub tenant_bytes: Quota,
    /// Failed logins per account from one client address: the throttle an
    /// attacker guessing from one place meets first.
    pub login_failures_per_account_and_address: Quota,
    /// Failed logins per account from all addresses together: a much higher
    /// ceiling, so guessing from one address never locks the owner out.
    pub login_failures_per_account: Quota,
    /// Failed logins per client address.
    pub login_failures_per_address: Quota,
}

/// The live buckets.
pub struct RateLimits {
    requests: Buckets<String>,
    caller_events: Buckets<String>,
    tenant_events: Buckets<String>,
    tenant_bytes: Buckets<String>,
    failures_by_account_and_address: Buckets<(String, IpAddr)>,
    failures_by_account: Buckets<String>,
    failures_by_address: Buckets<IpAddr>,
    /// Addresses each account logged in from successfully, lately: attempts
    /// from them skip the per-account ceiling, so attackers spreading guesses
    /// over many addresses cannot lock the owner out of a place it uses.
    trusted: Mutex<HashMap<String, Vec<(IpAddr, Instant)>>>,
}

/// How long a successful login's address stays trusted for its account.
const TRUSTED_FOR: Duration = Duration::from_secs(30 * 24 * 3600);
/// Addresses remembered per account (the most recent ones).
const TRUSTED_PER_ACCOUNT: usize = 8;
/// Accounts remembered; only accounts that logged in successfully enter.
const TRUSTED_ACCOUNTS: usize = 100_000;

impl RateLimits {
    /// Empty buckets with these settings.
    pub fn new(settings: &RateSettings) -> RateLimits {
        RateLimits {
            requests: Buckets::new(settings.requests, MAX_TRACKED),
            caller_events: Buckets::new(settings.caller_events, MAX_TRACKED),
            tenant_events: Buckets::new(settings.tenant_events, MAX_TRACKED),
            tenant_bytes: Buckets::new(settings.tenant_bytes, MAX_TRACKED),
            failures_by_account_and_address: Buckets::new(
                settings.login_failures_per_account_and_address,
                MAX_TRACKED,
            ),
            failures_by_account: Buckets::new(settings.login_failures_per_account, MAX_TRACKED),
            failures_by_address: Buckets::new(settings.login_failures_per_address, MAX_TRACKED),
            trusted: Mutex::new(HashMap::new()),
        }
    }

    /// Charges one request to the caller; the answer's `RateLimit-*` headers on success.
    pub(crate) fn admit_request(&self, principal: &Principal) -> Result<HeaderMap, ApiError> {
        let quota = self.requests.quota();
        match self
            .requests
            .take(&principal.limit_key(), 1.0, Instant::now())
        {
            Decision::Allowed {
                remaining,
                reset_seconds,
            } => Ok(rate_headers(quota, remaining, reset_seconds)),
            decision => Err(limited(decision, quota, "requests", "this caller")),
        }
    }

    /// Charges an ingest body's bytes to the tenant.
    pub(crate) fn admit_bytes(&self, principal: &Principal, bytes: u64) -> Result<(), ApiError> {
        let quota = self.tenant_bytes.quota();
        match self
            .tenant_bytes
            .take(&principal.tenant, bytes as f64, Instant::now())
        {
            Decision::Allowed { .. } => Ok(()),
            decision => Err(limited(decision, quota, "bytes", "this tenant")),
        }
    }

    /// Charges ingested events to the caller, then to the tenant.
    pub(crate) fn admit_events(
        &self,
        principal: &Principal,
        events: usize,
    ) -> Result<(), ApiError> {
        let now = Instant::now();
        let cost = events as f64;
        let caller = self.caller_events.quota();
        match self.caller_events.take(&principal.limit_key(), cost, now) {
            Decision::Allowed { .. } => {}
            decision => return Err(limited(decision, caller, "events", "this caller")),
        }
        let tenant = self.tenant_events.quota();
        match self.tenant_events.take(&principal.tenant, cost, now) {
            Decision::Allowed { .. } => Ok(()),
            decision => Err(limited(decision, tenant, "events", "this tenant")),
        }
    }

    /// Charges events to the tenant's event bucket only, for front ends
    /// without a caller (the syslog listeners); on refusal, how long to wait
    /// before trying again — [`Duration::MAX`] when `events` alone is more
    /// than the burst, which no wait cures.
    pub(crate) fn admit_tenant_events(&self, tenant: &str, events: usize) -> Result<(), Duration> {
        match self
            .tenant_events
            .take(&tenant.to_owned(), events as f64, Instant::now())
        {
            Decision::Allowed { .. } => Ok(()),
            Decision::Limited {
                retry_after_seconds,
                ..
            } => Err(Duration::try_from_secs_f64(retry_after_seconds).unwrap_or(Duration::MAX)),
            Decision::Exceeds => Err(Duration::MAX),
        }
    }

    /// Reserves one failed login for the account from this address, the account
    /// and the address before the (slow) password check, so attempts racing each
    /// other cannot all pass; refused when any of them has none left.
    /// [`RateLimits::login_succeeded`] gives the reservation back.
    pub(crate) fn reserve_login(&self, username: &str, address: IpAddr) -> Result<(), ApiError> {
        let now = Instant::now();
        let account = username.to_owned();
        let pair = (account.clone(), address);
        let by_pair = self.failures_by_account_and_address.take(&pair, 1.0, now);
        // From an address the account logged in from lately, only the
        // (account, address) and address throttles apply.
        let by_account = (!self.is_trusted(&account, address, now))
            .then(|| self.failures_by_account.take(&account, 1.0, now));
        let by_address = self.failures_by_address.take(&address, 1.0, now);
        let waits: Vec<f64> = [Some(by_pair), by_account, Some(by_address)]
            .into_iter()
            .flatten()
            .filter_map(|decision| match decision {
                Decision::Allowed { .. } => None,
                Decision::Limited {
                    retry_after_seconds,
                    ..
                } => Some(retry_after_seconds),
                Decision::Exceeds => Some(f64::INFINITY),
            })
            .collect();
        if waits.is_empty() {
            return Ok(());
        }
        // Whichever side did pay gets its token back: the attempt is not made.
        if matches!(by_pair, Decision::Allowed { .. }) {
            self.failures_by_account_and_address.refund(&pair, 1.0, now);
        }
        if matches!(by_account, Some(Decision::Allowed { .. })) {
            self.failures_by_account.refund(&account, 1.0, now);
        }
        if matches!(by_address, Decision::Allowed { .. }) {
            self.failures_by_address.refund(&address, 1.0, now);
        }
        let wait = waits.into_iter().fold(0.0, f64::max);
        let mut error = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_login_attempts",
            "too many failed attempts for this account or from this address; wait before trying again",
        );
        error.retry_after_seconds = Some(seconds(wait));
        Err(error)
    }

    /// Whether `account` logged in successfully from `address` lately.
    fn is_trusted(&self, account: &str, address: IpAddr, now: Instant) -> bool {
        let trusted = self.trusted.lock().unwrap_or_else(|p| p.into_inner());
        trusted.get(account).is_some_and(|addresses| {
            addresses
                .iter()
                .any(|(known, since)| *known == address && now.duration_since(*since) < TRUSTED_FOR)
        })
    }

    /// Remembers a successful login's address for its account.
    fn trust(&self, account: &str, address: IpAddr, now: Instant) {
        let mut trusted = self.trusted.lock().unwrap_or_else(|p| p.into_inner());
        if trusted.len() >= TRUSTED_ACCOUNTS && !trusted.contains_key(account) {
            trusted.retain(|_, addresses| {
                addresses.retain(|(_, since)| now.duration_since(*since) < TRUSTED_FOR);
                !addresses.is_empty()
            });
            if trusted.len() >= TRUSTED_ACCOUNTS {
                return;
            }
        }
        let addresses = trusted.entry(account.to_owned()).or_default();
        addresses.retain(|(known, _)| *known != address);
        addresses.push((address, now));
        if addresses.len() > TRUSTED_PER_ACCOUNT {
            addresses.remove(0);
        }
    }

    /// The attempt reserved by [`RateLimits::reserve_login`] succeeded: it is not a failure.
    pub(crate) fn login_succeeded(&self, username: &str, address: IpAddr) {
        let now = Instant::now();
        let account = username.to_owned();
        let trusted = self.is_trusted(&account, address, now);
        self.trust(&account, address, now);
        self.failures_by_account_and_address
            .refund(&(account.clone(), address), 1.0, now);
        if !trusted {
            // A trusted address did not pay the per-account ceiling.
            self.failures_by_account.refund(&account, 1.0, now);
        }
        self.failures_by_address.refund(&address, 1.0, now);
    }
}

impl super::AuthState {
    /// The tenant event bucket the HTTP ingest endpoints charge, for front
    /// ends outside the API (see [`RateLimits::admit_tenant_events`]).
    pub fn admit_tenant_events(&self, tenant: &str, events: usize) -> Result<(), Duration> {
        self.limits.admit_tenant_events(tenant, events)
    }
}

fn seconds(value: f64) -> u64 {
    if value.is_finite() {
        value.ceil().max(1.0) as u64
    } else {
        u64::MAX
    }
}

fn header(value: u64) -> HeaderValue {
    HeaderValue::from(value)
}

fn rate_headers(quota: Quota, remaining: f64, reset_seconds: f64) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        HeaderName::from_static("ratelimit-limit"),
        header(quota.burst as u64),
    );
    headers.insert(
        HeaderName::from_static("ratelimit-remaining"),
        header(remaining.max(0.0).floor() as u64),
    );
    headers.insert(
        HeaderName::from_static("ratelimit-reset"),
        header(reset_seconds.max(0.0).ceil() as u64),
    );
    headers
}

fn limited(decision: Decision, quota: Quota, unit: &str, whom: &str) -> ApiError {
    match decision {
        Decision::Limited {
            retry_after_seconds,
            reset_seconds,
        } => {
            let mut error = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!(
                    "rate limit of {} {unit}/s (burst {}) for {whom} reached; retry after the Retry-After seconds",
                    quota.per_second, quota.burst
                ),
            );
            error.retry_after_seconds = Some(seconds(retry_after_seconds));
            error.headers = Some(Box::new(rate_headers(quota, 0.0, reset_seconds)));
            error
        }
        _ => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "exceeds_rate_limit",
            format!(
                "this request alone is more {unit} than the burst of {} allowed for {whom}; send smaller batches",
                quota.burst
            ),
        ),
    }
}
