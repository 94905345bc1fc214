//! Abuse limits: message rate per user (token bucket), connections per user
//! and per IP, typing-event throttling. Counters release through guards, so a
//! connection that ends in any way gives its slot back.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use volley_hub::Id;

#[derive(Debug)]
struct UserState {
    connections: u32,
    tokens: f64,
    refilled: Instant,
    typing: HashMap<Id, Instant>,
}

/// Shared limit state of one node.
#[derive(Debug)]
pub struct Limits {
    rate: f64,
    burst: f64,
    per_user: u32,
    per_ip: u32,
    typing_interval: Duration,
    users: Mutex<HashMap<Id, UserState>>,
    ips: Mutex<HashMap<IpAddr, u32>>,
    sweep_at: Mutex<usize>,
}

/// Holds a per-IP connection slot until dropped.
#[derive(Debug)]
pub struct IpSlot {
    limits: Arc<Limits>,
    ip: IpAddr,
}

/// Holds a per-user connection slot until dropped.
#[derive(Debug)]
pub struct UserSlot {
    limits: Arc<Limits>,
    user: Id,
}

impl Limits {
    /// Limits with these settings (`per_ip` 0 is unlimited).
    pub fn new(rate: f64, burst: f64, per_user: u32, per_ip: u32, typing_interval: Duration) -> Limits {
        Limits {
            rate,
            burst,
            per_user,
            per_ip,
            typing_interval,
            users: Mutex::new(HashMap::new()),
            ips: Mutex::new(HashMap::new()),
            sweep_at: Mutex::new(1024),
        }
    }

    /// Take a connection slot for `ip`, or `None` when it has too many.
    pub fn connect_ip(self: &Arc<Self>, ip: IpAddr) -> Option<IpSlot> {
        let mut ips = self.ips.lock().unwrap_or_else(|e| e.into_inner());
        let count = ips.entry(ip).or_insert(0);
        if self.per_ip != 0 && *count >= self.per_ip {
            return None;
        }
        *count += 1;
        Some(IpSlot {
            limits: self.clone(),
            ip,
        })
    }

    /// Take a connection slot for `user`, or `None` when they have too many.
    pub fn connect_user(self: &Arc<Self>, user: Id) -> Option<UserSlot> {
        let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        self.sweep(&mut users);
        let state = users.entry(user).or_insert_with(|| UserState {
            connections: 0,
            tokens: self.burst,
            refilled: Instant::now(),
            typing: HashMap::new(),
        });
        if state.connections >= self.per_user {
            return None;
        }
        state.connections += 1;
        Some(UserSlot {
            limits: self.clone(),
            user,
        })
    }

    /// Take one message token; `Err` carries how long until one is available.
    pub fn take_message(&self, user: Id) -> Result<(), Duration> {
        let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        let Some(state) = users.get_mut(&user) else {
            return Ok(());
        };
        let now = Instant::now();
        let elapsed = now.duration_since(state.refilled).as_secs_f64();
        state.tokens = (state.tokens + elapsed * self.rate).min(self.burst);
        state.refilled = now;
        if state.tokens >= 1.0 {
            state.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - state.tokens) / self.rate))
        }
    }

    /// Whether a typing event of `user` in `room` may go out now (at most one per interval).
    pub fn typing(&self, user: Id, room: Id) -> bool {
        let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        let Some(state) = users.get_mut(&user) else {
            return false;
        };
        let now = Instant::now();
        if state.typing.len() > 64 {
            let interval = self.typing_interval;
            state.typing.retain(|_, at| now.duration_since(*at) < interval);
        }
        match state.typing.get(&room) {
            Some(at) if now.duration_since(*at) < self.typing_interval => false,
            _ => {
                state.typing.insert(room, now);
                true
            }
        }
    }

    /// Drop users with no connection whose bucket has refilled, so the table
    /// stays as large as the set of recently active users.
    fn sweep(&self, users: &mut HashMap<Id, UserState>) {
        let mut sweep_at = self.sweep_at.lock().unwrap_or_else(|e| e.into_inner());
        if users.len() < *sweep_at {
            return;
        }
        let refill = Duration::from_secs_f64(self.burst / self.rate);
        users.retain(|_, s| s.connections > 0 || s.refilled.elapsed() < refill);
        *sweep_at = (users.len() * 2).max(1024);
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut ips = self.limits.ips.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = ips.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                ips.remove(&self.ip);
            }
        }
    }
}

impl Drop for UserSlot {
    fn drop(&mut self) {
        let mut users = self.limits.users.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(state) = users.get_mut(&self.user) {
            state.connections = state.connections.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_burst_then_refuses_with_a_wait() {
        let limits = Arc::new(Limits::new(1.0, 3.0, 2, 1, Duration::from_secs(2)));
        let _slot = limits.connect_user(7).unwrap();
        for _ in 0..3 {
            assert!(limits.take_message(7).is_ok());
        }
        let wait = limits.take_message(7).unwrap_err();
        assert!(wait > Duration::from_millis(500) && wait <= Duration::from_secs(1));
    }

    #[test]
    fn slots_are_given_back() {
        let limits = Arc::new(Limits::new(1.0, 3.0, 2, 1, Duration::from_secs(2)));
        let a = limits.connect_user(1).unwrap();
        let _b = limits.connect_user(1).unwrap();
        assert!(limits.connect_user(1).is_none());
        drop(a);
        assert!(limits.connect_user(1).is_some());
        let ip: IpAddr = [127, 0, 0, 1].into();
        let slot = limits.connect_ip(ip).unwrap();
        assert!(limits.connect_ip(ip).is_none());
        drop(slot);
        assert!(limits.connect_ip(ip).is_some());
    }

    #[test]
    fn typing_is_throttled_per_room() {
        let limits = Arc::new(Limits::new(1.0, 3.0, 2, 1, Duration::from_secs(60)));
        let _slot = limits.connect_user(1).unwrap();
        assert!(limits.typing(1, 10));
        assert!(!limits.typing(1, 10));
        assert!(limits.typing(1, 11));
    }
}
