//! Per-device token buckets.

use std::collections::HashMap;
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
        let now = Instant::now();
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

#[cfg(test)]
mod tests {
    #[test]
    fn bucket_refills() {
        let r = super::RateLimiter::new(1000.0, 2.0);
        assert!(r.check("d").is_ok());
        assert!(r.check("d").is_ok());
        assert!(r.check("d").is_err());
        assert!(r.check("other").is_ok());
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert!(r.check("d").is_ok());
    }
}
