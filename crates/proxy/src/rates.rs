//! Limits per client: WebSocket handshakes per second (a token bucket per
//! address, refilled at the configured rate, holding up to twice that, so a
//! page that opens a few sockets at once is not refused) and live
//! WebSockets per address and in all (HTTP/2 and HTTP/3 carry many on one
//! connection, which the front door's per-connection cap cannot see). IPv6
//! clients count per /64, the block one host usually holds. The bucket table
//! forgets full buckets when it grows (at most once a second), so a flood of
//! addresses cannot grow it without bound; the live table holds only
//! addresses with live WebSockets.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Addresses tracked before full buckets are swept out.
const SWEEP_AT: usize = 65_536;

/// The address a client is counted under: IPv4 as is, IPv6 by its /64.
fn bucket(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        v4 => v4,
    }
}

/// Tokens left and when they were counted, per client.
type Buckets = HashMap<IpAddr, (f64, Instant)>;

/// The buckets, and when full ones were last swept out.
#[derive(Debug)]
pub(crate) struct Rates {
    buckets: Mutex<(Buckets, Instant)>,
}

impl Default for Rates {
    fn default() -> Rates {
        Rates {
            buckets: Mutex::new((HashMap::new(), Instant::now())),
        }
    }
}

impl Rates {
    /// Take a token for `ip` at `rate` per second (0: no limit).
    pub(crate) fn allow(&self, ip: IpAddr, rate: u32) -> bool {
        if rate == 0 {
            return true;
        }
        let (rate, burst) = (f64::from(rate), f64::from(rate) * 2.0);
        let now = Instant::now();
        let mut guard = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let (buckets, swept) = &mut *guard;
        if buckets.len() >= SWEEP_AT && now.duration_since(*swept) >= Duration::from_secs(1) {
            buckets.retain(|_, (tokens, at)| *tokens + now.duration_since(*at).as_secs_f64() * rate < burst);
            *swept = now;
        }
        let (tokens, at) = buckets.entry(bucket(ip)).or_insert((burst, now));
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

/// Live WebSockets per client address and in all.
#[derive(Debug, Default)]
pub(crate) struct Clients {
    per_ip: Mutex<HashMap<IpAddr, u32>>,
    total: AtomicUsize,
}

/// One live WebSocket's place in the counts, given back on drop.
#[derive(Debug)]
pub(crate) struct Seat {
    clients: Arc<Clients>,
    ip: IpAddr,
}

impl Drop for Seat {
    fn drop(&mut self) {
        self.clients.total.fetch_sub(1, Ordering::Relaxed);
        let mut per_ip = self.clients.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                per_ip.remove(&self.ip);
            }
        }
    }
}

impl Clients {
    /// A seat for one more WebSocket from `ip`, if under both caps (0: none).
    pub(crate) fn enter(self: &Arc<Self>, ip: IpAddr, per_ip_cap: u32, total_cap: usize) -> Option<Seat> {
        let ip = bucket(ip);
        let mut per_ip = self.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        let n = per_ip.entry(ip).or_insert(0);
        let total = self.total.load(Ordering::Relaxed);
        if (per_ip_cap != 0 && *n >= per_ip_cap) || (total_cap != 0 && total >= total_cap) {
            if *n == 0 {
                per_ip.remove(&ip);
            }
            return None;
        }
        *n += 1;
        self.total.fetch_add(1, Ordering::Relaxed);
        Some(Seat {
            clients: self.clone(),
            ip,
        })
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
        let v6 = |last: u16| IpAddr::from([0x2001, 0xdb8, 0, 1, 0, 0, 0, last]);
        let allowed = (0..100).filter(|i| rates.allow(v6(*i), 10)).count();
        assert_eq!(allowed, 20, "one /64 is one client");
    }

    #[test]
    fn live_websockets_per_address_and_in_all() {
        let clients = Arc::new(Clients::default());
        let ip = IpAddr::from([10, 0, 0, 1]);
        let seats: Vec<_> = (0..3).filter_map(|_| clients.enter(ip, 2, 10)).collect();
        assert_eq!(seats.len(), 2);
        let other: Vec<_> = (0..20)
            .filter_map(|i| clients.enter(IpAddr::from([10, 0, 1, i]), 2, 10))
            .collect();
        assert_eq!(other.len(), 8, "the total cap");
        drop((seats, other));
        assert!(clients.per_ip.lock().unwrap().is_empty(), "nothing left behind");
        assert!(clients.enter(ip, 2, 10).is_some());
    }
}
