//! Handshake rate limits per client address: a token bucket each, refilled
//! at the configured rate, holding up to twice that (a page that opens a few
//! sockets at once is not refused). The table forgets full buckets when it
//! grows, so a flood of addresses cannot grow it without bound.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

/// Addresses tracked before full buckets are swept out.
const SWEEP_AT: usize = 65_536;

/// The buckets.
#[derive(Debug, Default)]
pub(crate) struct Rates {
    buckets: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

impl Rates {
    /// Take a token for `ip` at `rate` per second (0: no limit).
    pub(crate) fn allow(&self, ip: IpAddr, rate: u32) -> bool {
        if rate == 0 {
            return true;
        }
        let (rate, burst) = (f64::from(rate), f64::from(rate) * 2.0);
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= SWEEP_AT {
            buckets.retain(|_, (tokens, at)| *tokens + now.duration_since(*at).as_secs_f64() * rate < burst);
        }
        let (tokens, at) = buckets.entry(ip.to_canonical()).or_insert((burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * rate).min(burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_rate() {
        let rates = Rates::default();
        let ip = IpAddr::from([10, 0, 0, 1]);
        let allowed = (0..100).filter(|_| rates.allow(ip, 10)).count();
        assert_eq!(allowed, 20, "a burst of twice the rate");
        assert!(rates.allow(IpAddr::from([10, 0, 0, 2]), 10), "others are not affected");
        assert!(rates.allow(ip, 0), "0 is unlimited");
    }
}
