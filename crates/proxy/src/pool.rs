//! The backends and how one is chosen for a new connection.
//!
//! Each backend carries its health (set by [`crate::health`] and by
//! connection failures), whether it is draining or was removed by a reload,
//! its count of open connections, and the live connections a drain closes.
//! Backends live in [`Backends`], which outlasts reloads, so a reload that
//! keeps a backend keeps its state and its connections. Selection skips
//! backends that are unhealthy, draining, removed, or already tried for this
//! client. With affinity, a key (a room) goes where its other connections
//! are; a new key goes to its place on the hash ring unless that backend is
//! above (1 + ε) times the mean load, and then to the next on the ring
//! (consistent hashing with bounded loads).

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use crate::{Balance, Error, ProxyConfig};

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

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
    /// As configured: `host:port` or `NAME=host:port`.
    pub spec: String,
    /// The name given as `NAME=host:port`: an affinity key equal to it goes
    /// to this backend (`?node=NAME` reaches the node that runs a match).
    pub name: Option<String>,
    healthy: AtomicBool,
    draining: AtomicBool,
    removed: AtomicBool,
    active: AtomicUsize,
    streaks: Mutex<Streaks>,
    /// Live connections a drain can close: id -> where to send the reason.
    live: Mutex<HashMap<u64, oneshot::Sender<String>>>,
    next_live: AtomicU64,
    /// A drain task is running for this backend.
    pub(crate) drainer: AtomicBool,
    /// A health checker is running for this backend.
    pub(crate) checked: AtomicBool,
}

#[derive(Debug, Default)]
struct Streaks {
    passed: u32,
    failed: u32,
}

impl Backend {
    fn new(index: usize, spec: String) -> Backend {
        let (name, addr) = crate::config::split_name(&spec);
        Backend {
            index,
            addr: addr.to_owned(),
            name: name.map(str::to_owned),
            spec: spec.clone(),
            // Healthy until checks say otherwise: a proxy that starts before
            // its first check round serves at once.
            healthy: AtomicBool::new(true),
            draining: AtomicBool::new(false),
            removed: AtomicBool::new(false),
            active: AtomicUsize::new(0),
            streaks: Mutex::new(Streaks::default()),
            live: Mutex::new(HashMap::new()),
            next_live: AtomicU64::new(0),
            drainer: AtomicBool::new(false),
            checked: AtomicBool::new(false),
        }
    }

    /// Whether new connections may go here: healthy, not draining, still
    /// configured.
    pub fn is_usable(&self) -> bool {
        self.is_healthy() && !self.is_draining() && !self.removed.load(Ordering::Relaxed)
    }

    /// Whether an operator asked for this backend to drain.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Start or stop draining (the admin API, `volley proxy drain`).
    pub fn set_draining(&self, on: bool) {
        self.draining.store(on, Ordering::Relaxed);
        metrics::gauge!("volley_proxy_backend_draining", "backend" => self.addr.clone()).set(if on {
            1.0
        } else {
            0.0
        });
    }

    /// A reload left it out.
    pub fn is_removed(&self) -> bool {
        self.removed.load(Ordering::Relaxed)
    }

    /// A reload left it out (or put it back).
    pub(crate) fn set_removed(&self, on: bool) {
        self.removed.store(on, Ordering::Relaxed);
    }

    /// Whether its live connections should be closed: drained, removed, or
    /// down.
    pub fn should_shed(&self) -> bool {
        !self.is_usable()
    }

    /// Live connections a drain would close.
    pub fn live(&self) -> usize {
        lock(&self.live).len()
    }

    /// Register a live connection: the receiver gets a reason when a drain
    /// closes it; the guard unregisters it.
    pub fn register(self: &Arc<Self>) -> (LiveGuard, oneshot::Receiver<String>) {
        let id = self.next_live.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        lock(&self.live).insert(id, tx);
        (
            LiveGuard {
                backend: self.clone(),
                id,
            },
            rx,
        )
    }

    /// Take one live connection to close (any one).
    pub(crate) fn take_one(&self) -> Option<oneshot::Sender<String>> {
        let mut live = lock(&self.live);
        let id = *live.keys().next()?;
        live.remove(&id)
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
    /// the backend out, `rise` successes in a row bring it back. True when
    /// this outcome took it out.
    pub fn report(&self, ok: bool, rise: u32, fall: u32) -> bool {
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
                return true;
            }
        }
        false
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

/// A live connection's entry in its backend's drain list.
#[derive(Debug)]
pub struct LiveGuard {
    backend: Arc<Backend>,
    id: u64,
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        lock(&self.backend.live).remove(&self.id);
    }
}

/// Every backend the proxy knows, by address: what outlasts a reload.
#[derive(Debug, Default)]
pub struct Backends {
    map: Mutex<HashMap<String, Arc<Backend>>>,
    next: AtomicUsize,
}

impl Backends {
    /// The backend at `addr`, made on first use; true when new.
    pub fn get(&self, addr: &str) -> (Arc<Backend>, bool) {
        let mut map = lock(&self.map);
        if let Some(b) = map.get(addr) {
            return (b.clone(), false);
        }
        let b = Arc::new(Backend::new(self.next.fetch_add(1, Ordering::Relaxed), addr.to_owned()));
        b.publish();
        map.insert(addr.to_owned(), b.clone());
        (b, true)
    }

    /// The backend configured as `which` (`host:port` or `NAME=host:port`),
    /// or with that address or name, if known.
    pub fn find(&self, which: &str) -> Option<Arc<Backend>> {
        let map = lock(&self.map);
        map.get(which).cloned().or_else(|| {
            map.values()
                .find(|b| b.addr == which || b.name.as_deref() == Some(which))
                .cloned()
        })
    }

    /// Every known backend, configured or being drained after a reload.
    pub fn all(&self) -> Vec<Arc<Backend>> {
        let mut all: Vec<_> = lock(&self.map).values().cloned().collect();
        all.sort_by_key(|b| b.index);
        all
    }

    /// Mark the backends not in `keep` removed (and those in it not), and
    /// forget removed ones with no connection left. Returns the newly removed.
    pub(crate) fn retain(&self, keep: &HashSet<String>) -> Vec<Arc<Backend>> {
        let mut map = lock(&self.map);
        let mut gone = Vec::new();
        for (addr, b) in map.iter() {
            let removed = !keep.contains(addr);
            if removed && !b.removed.load(Ordering::Relaxed) {
                gone.push(b.clone());
            }
            b.set_removed(removed);
        }
        map.retain(|addr, b| keep.contains(addr) || b.active() > 0);
        gone
    }
}

/// Keys (rooms) with live connections, and where they are: a key's next
/// connection joins the others. An entry lives as long as its connections,
/// so the table never outgrows them.
#[derive(Debug, Default)]
pub struct Affinities {
    keys: Mutex<HashMap<String, (Arc<Backend>, u32)>>,
}

/// One connection's hold on its key's placement.
#[derive(Debug)]
pub struct KeyHold {
    table: Arc<Affinities>,
    key: String,
}

impl Drop for KeyHold {
    fn drop(&mut self) {
        let mut keys = lock(&self.table.keys);
        if let Some(entry) = keys.get_mut(&self.key) {
            entry.1 = entry.1.saturating_sub(1);
            if entry.1 == 0 {
                keys.remove(&self.key);
            }
        }
    }
}

impl Affinities {
    /// Keys with live connections.
    pub fn len(&self) -> usize {
        lock(&self.keys).len()
    }

    /// No key has a live connection.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A route's backends and the balancing rule.
#[derive(Debug)]
pub struct Pool {
    backends: Vec<Arc<Backend>>,
    balance: Balance,
    next: AtomicUsize,
    /// (point, position in `backends`), sorted by point.
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
    /// The pool for `config`'s backends, each new (for tests and tools;
    /// the proxy takes its backends from [`Backends`]).
    pub fn new(config: &ProxyConfig) -> Result<Pool, Error> {
        if config.backends.is_empty() {
            return Err(Error::Config("backends: at least one".into()));
        }
        let registry = Backends::default();
        let backends = config.backends.iter().map(|addr| registry.get(addr).0).collect();
        Ok(Pool::of(backends, config.balance))
    }

    /// A pool over these backends. The ring is placed by address, so every
    /// proxy (and every reload) with the same backends hashes alike.
    pub fn of(backends: Vec<Arc<Backend>>, balance: Balance) -> Pool {
        let mut ring = Vec::with_capacity(backends.len() * VIRTUAL_NODES);
        for (pos, backend) in backends.iter().enumerate() {
            for v in 0..VIRTUAL_NODES {
                ring.push((mix(fnv(format!("{}#{v}", backend.addr).as_bytes())), pos));
            }
        }
        ring.sort_unstable();
        Pool {
            backends,
            balance,
            next: AtomicUsize::new(0),
            ring,
        }
    }

    /// Whether `backend` is one of this pool's.
    pub fn contains(&self, backend: &Backend) -> bool {
        self.backends.iter().any(|b| b.index == backend.index)
    }

    /// The backend for a new connection whose affinity key is `key`, held
    /// for the key at once (choice and hold under one lock, so two members
    /// of a new room arriving together cannot be placed apart): where the
    /// key's other connections are if that backend is usable, else the first
    /// usable backend on the ring from the key's point whose load is under
    /// (1 + `epsilon`) times the mean. Also says whether the choice left the
    /// key's home (its first usable backend on the ring). Dropping the hold
    /// (a failed connect, the connection's end) releases it.
    pub fn choose_by_key(
        &self,
        key: &str,
        tried: &[usize],
        epsilon: f64,
        placed: &Arc<Affinities>,
    ) -> Option<(Arc<Backend>, bool, KeyHold)> {
        let usable = |b: &Arc<Backend>| b.is_usable() && !tried.contains(&b.index);
        let mut keys = lock(&placed.keys);
        let hold = || KeyHold {
            table: placed.clone(),
            key: key.to_owned(),
        };
        // A key that names a backend goes to it (and nowhere else while it
        // is usable): `?node=NAME` for the node that runs a match.
        // (Keys arrive as `route\0key`.)
        let bare = key.rsplit_once('\0').map_or(key, |(_, k)| k);
        if let Some(named) = self.backends.iter().find(|b| b.name.as_deref() == Some(bare)) {
            if usable(named) {
                let entry = keys.entry(key.to_owned()).or_insert_with(|| (named.clone(), 0));
                entry.0 = named.clone();
                entry.1 += 1;
                return Some((named.clone(), false, hold()));
            }
        }
        if let Some(entry) = keys.get_mut(key) {
            if usable(&entry.0) && self.contains(&entry.0) {
                entry.1 += 1;
                return Some((entry.0.clone(), false, hold()));
            }
        }
        let candidates: Vec<&Arc<Backend>> = self.backends.iter().filter(|b| usable(b)).collect();
        if candidates.is_empty() {
            return None;
        }
        let total: usize = candidates.iter().map(|b| b.active()).sum();
        // The bound counts the connection being placed.
        let cap = ((1.0 + epsilon) * (total + 1) as f64 / candidates.len() as f64).ceil() as usize;
        let start = self
            .ring
            .partition_point(|(point, _)| *point < mix(fnv(key.as_bytes())));
        let mut walk = (0..self.ring.len())
            .map(|k| &self.backends[self.ring[(start + k) % self.ring.len()].1])
            .filter(|b| usable(b));
        let home = walk.next()?;
        let chosen = if home.active() < cap.max(1) {
            home
        } else {
            walk.find(|b| b.active() < cap.max(1)).unwrap_or(home)
        };
        // A key whose backend is gone or unusable follows the new choice.
        let entry = keys.entry(key.to_owned()).or_insert_with(|| (chosen.clone(), 0));
        entry.0 = chosen.clone();
        entry.1 += 1;
        Some((chosen.clone(), chosen.index != home.index, hold()))
    }

    /// The backend for a new connection from `client`, skipping unhealthy
    /// ones and those in `tried`; `None` when none is left.
    pub fn choose(&self, client: IpAddr, tried: &[usize]) -> Option<Arc<Backend>> {
        let usable = |b: &Arc<Backend>| b.is_usable() && !tried.contains(&b.index);
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
                    .map(|k| &self.backends[self.ring[(start + k) % self.ring.len()].1])
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

    #[test]
    fn affinity_keeps_a_key_together_bounds_loads_and_moves_only_the_leavers_keys() {
        let p = pool(Balance::RoundRobin, 3);
        let placed = Arc::new(Affinities::default());
        let (first, _, hold) = p.choose_by_key("room-1", &[], 0.25, &placed).unwrap();
        let mut held = vec![(first.enter(), hold)];
        for _ in 0..10 {
            let (b, moved, hold) = p.choose_by_key("room-1", &[], 0.25, &placed).unwrap();
            assert_eq!((b.index, moved), (first.index, false), "a room's members meet");
            held.push((b.enter(), hold));
        }
        // `first` holds 11 of 11: above 1.25 x the mean, so new keys whose
        // home it is go to the next backend on the ring.
        let mut moved_any = false;
        for k in 0..100 {
            let (b, moved, _) = p.choose_by_key(&format!("k{k}"), &[], 0.25, &placed).unwrap();
            assert_ne!(b.index, first.index, "k{k} placed on the overloaded backend");
            moved_any |= moved;
        }
        assert!(moved_any, "some keys had the loaded backend as home");
        drop(held);
        assert!(placed.is_empty(), "keys are forgotten with their last connection");
        // Placing and holding are one step: the second member of a new room
        // meets the first even before the first's connection is counted.
        let (x, _, hx) = p.choose_by_key("new-room", &[], 0.0, &placed).unwrap();
        let (y, _, hy) = p.choose_by_key("new-room", &[], 0.0, &placed).unwrap();
        assert_eq!(x.index, y.index);
        drop((hx, hy));

        let before: Vec<usize> = (0..3000)
            .map(|k| p.choose_by_key(&format!("r{k}"), &[], 0.25, &placed).unwrap().0.index)
            .collect();
        for i in 0..3 {
            let share = before.iter().filter(|b| **b == i).count();
            assert!(
                (700..1300).contains(&share),
                "backend {i} is home to {share} of 3000 keys"
            );
        }
        p.backends[2].set_draining(true);
        for (k, was) in before.iter().enumerate() {
            let now = p.choose_by_key(&format!("r{k}"), &[], 0.25, &placed).unwrap().0.index;
            if *was == 2 {
                assert_ne!(now, 2, "a draining backend gets no new key");
            } else {
                assert_eq!(now, *was, "r{k} of a remaining backend stays");
            }
        }
    }
}
