//! Token buckets per device, and per client address for the routes anyone may call.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

#[derive(Debug)]
pub(crate) struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    pub(crate) fn new(rate: f64, burst: f64) -> Self {
        Self { rate, burst, buckets: Mutex::new(HashMap::new()) }
    }

    /// Takes one token for `key`; on refusal returns the seconds until one is available.
    pub(crate) fn check(&self, key: &str) -> Result<(), u64> {
        self.check_at(key, Instant::now())
    }

    /// `check` at a given instant, so the arithmetic is testable without sleeping.
    fn check_at(&self, key: &str, now: Instant) -> Result<(), u64> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() > 100_000 {
            // Forget idle devices rather than grow without bound; a full bucket is the default anyway.
            buckets.retain(|_, (_, at)| now.duration_since(*at).as_secs_f64() * self.rate < self.burst);
        }
        let (tokens, at) = buckets.entry(key.to_owned()).or_insert((self.burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.rate).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *tokens) / self.rate).ceil().max(1.0) as u64)
        }
    }
}

/// The bucket key of a client address: an IPv4 address, or the /64 an IPv6 one is in (one
/// subscriber usually holds a whole /64, so a per-address limit on it would limit nothing).
pub(crate) fn address_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    #[test]
    fn bucket_refills() {
        // A fixed clock: with a real one a scheduling pause on a busy machine refills a token.
        let r = super::RateLimiter::new(10.0, 2.0);
        let t0 = Instant::now();
        assert!(r.check_at("d", t0).is_ok());
        assert!(r.check_at("d", t0).is_ok());
        assert_eq!(r.check_at("d", t0), Err(1));
        assert!(r.check_at("other", t0).is_ok());
        assert!(r.check_at("d", t0 + Duration::from_millis(50)).is_err());
        assert!(r.check_at("d", t0 + Duration::from_millis(100)).is_ok());
    }

    #[test]
    fn addresses_share_a_bucket_per_v6_64() {
        let key = |s: &str| super::address_key(s.parse().expect("ip"));
        assert_eq!(key("203.0.113.7"), "203.0.113.7");
        assert_eq!(key("::ffff:203.0.113.7"), "203.0.113.7");
        assert_eq!(key("2001:db8:1:2:aaaa::1"), key("2001:db8:1:2:bbbb::2"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
    }
}
