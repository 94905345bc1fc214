//! The backends and how one is chosen for a new connection.
//!
//! Each backend carries its health (set by [`crate::health`] and by
//! connection failures) and its count of open connections. Selection skips
//! unhealthy backends and those already tried for this client.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::{Balance, Error, ProxyConfig};

/// Points per backend on the hash ring: enough that keys spread evenly
/// (within a few percent) over a handful of backends.
const VIRTUAL_NODES: usize = 160;

/// One backend.
#[derive(Debug)]
pub struct Backend {
    /// Its place in the configured list.
    pub index: usize,
    /// `host:port`.
    pub addr: String,
    healthy: AtomicBool,
    active: AtomicUsize,
    streaks: Mutex<Streaks>,
}

#[derive(Debug, Default)]
struct Streaks {
    passed: u32,
    failed: u32,
}

impl Backend {
    fn new(index: usize, addr: String) -> Backend {
        Backend {
            index,
            addr,
            // Healthy until checks say otherwise: a proxy that starts before
            // its first check round serves at once.
            healthy: AtomicBool::new(true),
            active: AtomicUsize::new(0),
            streaks: Mutex::new(Streaks::default()),
        }
    }

    /// Whether new connections may go here.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Open connections through the proxy to this backend.
    pub fn active(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }

    /// Count a connection for as long as the guard lives.
    pub fn enter(self: &Arc<Self>) -> Active {
        self.active.fetch_add(1, Ordering::Relaxed);
        metrics::gauge!("volley_proxy_backend_connections", "backend" => self.addr.clone()).increment(1.0);
        Active(self.clone())
    }

    /// A client's connection opened: failures so far were not "in a row".
    pub fn connected(&self) {
        self.streaks.lock().unwrap_or_else(|e| e.into_inner()).failed = 0;
    }

    /// Record a check or connection outcome: `fall` failures in a row take
    /// the backend out, `rise` successes in a row bring it back.
    pub fn report(&self, ok: bool, rise: u32, fall: u32) {
        let mut streaks = self.streaks.lock().unwrap_or_else(|e| e.into_inner());
        if ok {
            streaks.passed = streaks.passed.saturating_add(1);
            streaks.failed = 0;
            if !self.is_healthy() && streaks.passed >= rise {
                self.healthy.store(true, Ordering::Relaxed);
                tracing::info!(backend = %self.addr, "backend up");
                self.publish();
            }
        } else {
            streaks.failed = streaks.failed.saturating_add(1);
            streaks.passed = 0;
            if self.is_healthy() && streaks.failed >= fall {
                self.healthy.store(false, Ordering::Relaxed);
                tracing::warn!(backend = %self.addr, "backend down");
                self.publish();
            }
        }
    }

    fn publish(&self) {
        let up = if self.is_healthy() { 1.0 } else { 0.0 };
        metrics::gauge!("volley_proxy_backend_up", "backend" => self.addr.clone()).set(up);
    }
}

/// One open connection's place in its backend's count.
#[derive(Debug)]
pub struct Active(Arc<Backend>);

impl Drop for Active {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
        metrics::gauge!("volley_proxy_backend_connections", "backend" => self.0.addr.clone()).decrement(1.0);
    }
}

/// The configured backends and the balancing rule.
#[derive(Debug)]
pub struct Pool {
    backends: Vec<Arc<Backend>>,
    balance: Balance,
    next: AtomicUsize,
    /// (point, backend index), sorted by point.
    ring: Vec<(u64, usize)>,
}

/// FNV-1a: stable across processes and versions, so a restarted proxy
/// sends each client where the last one did.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// A final mix so that close inputs (addresses differing in one byte) land
/// far apart on the ring.
fn mix(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

impl Pool {
    /// The pool for `config`'s backends.
    pub fn new(config: &ProxyConfig) -> Result<Pool, Error> {
        if config.backends.is_empty() {
            return Err(Error::Config("backends: at least one".into()));
        }
        let backends: Vec<Arc<Backend>> = config
            .backends
            .iter()
            .enumerate()
            .map(|(i, addr)| Arc::new(Backend::new(i, addr.clone())))
            .collect();
        let mut ring = Vec::with_capacity(backends.len() * VIRTUAL_NODES);
        for backend in &backends {
            for v in 0..VIRTUAL_NODES {
                ring.push((mix(fnv(format!("{}#{v}", backend.addr).as_bytes())), backend.index));
            }
        }
        ring.sort_unstable();
        for backend in &backends {
            backend.publish();
        }
        Ok(Pool {
            backends,
            balance: config.balance,
            next: AtomicUsize::new(0),
            ring,
        })
    }

    /// Every backend, in configured order.
    pub fn backends(&self) -> &[Arc<Backend>] {
        &self.backends
    }

    /// The backend for a new connection from `client`, skipping unhealthy
    /// ones and those in `tried`; `None` when none is left.
    pub fn choose(&self, client: IpAddr, tried: &[usize]) -> Option<Arc<Backend>> {
        let usable = |b: &Arc<Backend>| b.is_healthy() && !tried.contains(&b.index);
        match self.balance {
            Balance::RoundRobin | Balance::LeastConn => {
                // Turns are taken among the usable backends only: skipping
                // a down one must not hand its share to its neighbour.
                let usable: Vec<&Arc<Backend>> = self.backends.iter().filter(|b| usable(b)).collect();
                if usable.is_empty() {
                    return None;
                }
                let start = self.next.fetch_add(1, Ordering::Relaxed);
                let n = usable.len();
                let mut in_turn = (0..n).map(|k| usable[(start + k) % n]);
                if self.balance == Balance::RoundRobin {
                    in_turn.next().cloned()
                } else {
                    // Ties go round robin rather than always to the first.
                    in_turn.min_by_key(|b| b.active()).cloned()
                }
            }
            Balance::Hash => {
                let key = match client.to_canonical() {
                    IpAddr::V4(v4) => mix(fnv(&v4.octets())),
                    IpAddr::V6(v6) => mix(fnv(&v6.octets())),
                };
                let start = self.ring.partition_point(|(point, _)| *point < key);
                (0..self.ring.len())
                    .map(|k| self.ring[(start + k) % self.ring.len()].1)
                    .map(|i| &self.backends[i])
                    .find(|b| usable(b))
                    .cloned()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(balance: Balance, n: usize) -> Pool {
        let config = ProxyConfig {
            backends: (0..n).map(|i| format!("10.0.0.{i}:8080")).collect(),
            balance,
            ..ProxyConfig::default()
        };
        Pool::new(&config).unwrap()
    }

    fn client(i: u32) -> IpAddr {
        IpAddr::from((0x0a00_0000u32 + i).to_be_bytes())
    }

    #[test]
    fn round_robin_skips_the_unhealthy_and_the_tried() {
        let p = pool(Balance::RoundRobin, 3);
        let picks: Vec<usize> = (0..6).map(|_| p.choose(client(1), &[]).unwrap().index).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
        p.backends[1].report(false, 2, 1);
        let picks: Vec<usize> = (0..4).map(|_| p.choose(client(1), &[]).unwrap().index).collect();
        assert!(!picks.contains(&1), "{picks:?}");
        // The remaining two share evenly.
        assert_eq!(picks.iter().filter(|i| **i == 0).count(), 2, "{picks:?}");
        assert!(p.choose(client(1), &[0, 2]).is_none());
        // Two passed checks bring it back.
        p.backends[1].report(true, 2, 1);
        assert!(!p.backends[1].is_healthy());
        p.backends[1].report(true, 2, 1);
        assert!(p.backends[1].is_healthy());
    }

    #[test]
    fn least_connections() {
        let p = pool(Balance::LeastConn, 3);
        let a = p.choose(client(1), &[]).unwrap().enter();
        let b = p.choose(client(1), &[]).unwrap().enter();
        let third = p.choose(client(1), &[]).unwrap();
        assert_eq!(third.active(), 0, "the idle backend is chosen");
        drop((a, b));
    }

    #[test]
    fn hashing_is_stable_spread_and_moves_only_the_leavers_clients() {
        let p = pool(Balance::Hash, 4);
        let before: Vec<usize> = (0..4000).map(|i| p.choose(client(i), &[]).unwrap().index).collect();
        let again: Vec<usize> = (0..4000).map(|i| p.choose(client(i), &[]).unwrap().index).collect();
        assert_eq!(before, again, "the same client, the same backend");
        for b in 0..4 {
            let share = before.iter().filter(|i| **i == b).count();
            assert!((700..1300).contains(&share), "backend {b} has {share} of 4000");
        }
        p.backends[2].report(false, 1, 1);
        let after: Vec<usize> = (0..4000).map(|i| p.choose(client(i), &[]).unwrap().index).collect();
        for (was, now) in before.iter().zip(&after) {
            if *was != 2 {
                assert_eq!(was, now, "a client of a remaining backend stays");
            } else {
                assert_ne!(*now, 2);
            }
        }
    }
}
