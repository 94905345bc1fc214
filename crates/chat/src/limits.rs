//! Abuse limits: message and request rates per user and account attempts per
//! IP (token buckets), connections per user, typing-event throttling (the
//! per-address connection cap is the front door's, `volley_net::front`). Counters release through guards, so a connection that ends in
//! any way gives its slot back.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use volley_hub::{RoomId, UserId};

/// Requests other than `send` that cost a store operation (history, join,
/// leave, create_room, read): sustained rate and burst per user.
const REQUESTS_PER_SEC: f64 = 10.0;
const REQUEST_BURST: f64 = 40.0;

/// A token bucket.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    refilled: Instant,
}

impl Bucket {
    fn full(burst: f64) -> Bucket {
        Bucket {
            tokens: burst,
            refilled: Instant::now(),
        }
    }

    /// Take a token, or say how long until one is there.
    fn take(&mut self, rate: f64, burst: f64) -> Result<(), Duration> {
        let now = Instant::now();
        let elapsed = now.duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        self.refilled = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / rate))
        }
    }

    fn refilled_after(&self, d: Duration) -> bool {
        self.refilled.elapsed() >= d
    }
}

#[derive(Debug)]
struct UserState {
    connections: u32,
    messages: Bucket,
    requests: Bucket,
    typing: HashMap<RoomId, Instant>,
}

/// Which of a user's buckets a request draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cost {
    /// A message (`send`).
    Message,
    /// Another request that touches the store.
    Request,
}

/// Shared limit state of one node.
#[derive(Debug)]
pub struct Limits {
    rate: f64,
    burst: f64,
    per_user: u32,
    typing_interval: Duration,
    /// Account attempts (register, login, guest) per IP per second; 0 is unlimited.
    accounts_rate: f64,
    users: Mutex<HashMap<UserId, UserState>>,
    accounts: Mutex<HashMap<IpAddr, Bucket>>,
    sweep_at: Mutex<usize>,
}

/// Holds a per-user connection slot until dropped.
#[derive(Debug)]
pub struct UserSlot {
    limits: Arc<Limits>,
    user: UserId,
}

impl Limits {
    /// Limits with these settings.
    pub fn new(rate: f64, burst: f64, per_user: u32, typing_interval: Duration) -> Limits {
        Limits {
            rate,
            burst,
            per_user,
            typing_interval,
            accounts_rate: 0.0,
            users: Mutex::new(HashMap::new()),
            accounts: Mutex::new(HashMap::new()),
            sweep_at: Mutex::new(1024),
        }
    }

    /// Limit account attempts per IP to `per_sec` (burst: four times that, at
    /// least 4); 0 lifts the limit.
    pub fn with_account_rate(mut self, per_sec: f64) -> Limits {
        self.accounts_rate = per_sec.max(0.0);
        self
    }

    /// Take an account attempt (register, login, guest) for `ip`.
    pub fn take_account(&self, ip: IpAddr) -> Result<(), Duration> {
        if self.accounts_rate == 0.0 {
            return Ok(());
        }
        let burst = (self.accounts_rate * 4.0).max(4.0);
        let mut accounts = self.accounts.lock().unwrap_or_else(|e| e.into_inner());
        if accounts.len() > 4096 {
            let refill = Duration::from_secs_f64(burst / self.accounts_rate);
            accounts.retain(|_, b| !b.refilled_after(refill));
        }
        accounts
            .entry(ip)
            .or_insert_with(|| Bucket::full(burst))
            .take(self.accounts_rate, burst)
    }

    /// Take a connection slot for `user`, who has `elsewhere` connections on
    /// other nodes, or `None` when they have too many in all.
    pub fn connect_user(self: &Arc<Self>, user: UserId, elsewhere: u32) -> Option<UserSlot> {
        let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        self.sweep(&mut users);
        let state = users.entry(user).or_insert_with(|| self.fresh());
        if state.connections.saturating_add(elsewhere) >= self.per_user {
            return None;
        }
        state.connections += 1;
        Some(UserSlot {
            limits: self.clone(),
            user,
        })
    }

    /// Take a token for a request of `user`, whose limit is shared by
    /// `share` nodes (this node allows `1/share` of the rate and burst);
    /// `Err` carries how long until one is available.
    pub fn take(&self, user: UserId, cost: Cost, share: u32) -> Result<(), Duration> {
        let share = f64::from(share.max(1));
        let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        self.sweep(&mut users);
        let state = users.entry(user).or_insert_with(|| self.fresh());
        let (bucket, rate, burst) = match cost {
            Cost::Message => (&mut state.messages, self.rate, self.burst),
            Cost::Request => (&mut state.requests, REQUESTS_PER_SEC, REQUEST_BURST),
        };
        // A share's burst stays at least one message, so a user on many nodes can still talk.
        bucket.take(rate / share, (burst / share).max(1.0))
    }

    /// Whether a typing event of `user` in `room` may go out now (at most one per interval).
    pub fn typing(&self, user: UserId, room: RoomId) -> bool {
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

    fn fresh(&self) -> UserState {
        UserState {
            connections: 0,
            messages: Bucket::full(self.burst),
            requests: Bucket::full(REQUEST_BURST),
            typing: HashMap::new(),
        }
    }

    /// Drop users with no connection whose bucket has refilled, so the table
    /// stays as large as the set of recently active users.
    fn sweep(&self, users: &mut HashMap<UserId, UserState>) {
        let mut sweep_at = self.sweep_at.lock().unwrap_or_else(|e| e.into_inner());
        if users.len() < *sweep_at {
            return;
        }
        let refill = Duration::from_secs_f64(self.burst / self.rate);
        users.retain(|_, s| s.connections > 0 || !s.messages.refilled_after(refill));
        *sweep_at = (users.len() * 2).max(1024);
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
        let limits = Arc::new(Limits::new(1.0, 3.0, 2, Duration::from_secs(2)));
        let _slot = limits.connect_user(UserId(7), 0).unwrap();
        for _ in 0..3 {
            assert!(limits.take(UserId(7), Cost::Message, 1).is_ok());
        }
        let wait = limits.take(UserId(7), Cost::Message, 1).unwrap_err();
        assert!(wait > Duration::from_millis(500) && wait <= Duration::from_secs(1));
    }

    #[test]
    fn account_attempts_are_limited_per_ip() {
        let limits = Limits::new(1.0, 3.0, 2, Duration::from_secs(2)).with_account_rate(1.0);
        let ip: IpAddr = [10, 0, 0, 1].into();
        for _ in 0..4 {
            assert!(limits.take_account(ip).is_ok());
        }
        assert!(limits.take_account(ip).is_err());
        assert!(limits.take_account([10, 0, 0, 2].into()).is_ok(), "per address");
        let open = Limits::new(1.0, 3.0, 2, Duration::from_secs(2));
        assert!((0..100).all(|_| open.take_account(ip).is_ok()), "0 is unlimited");
    }

    #[test]
    fn slots_are_given_back() {
        let limits = Arc::new(Limits::new(1.0, 3.0, 2, Duration::from_secs(2)));
        let a = limits.connect_user(UserId(1), 0).unwrap();
        let _b = limits.connect_user(UserId(1), 0).unwrap();
        assert!(limits.connect_user(UserId(1), 0).is_none());
        drop(a);
        assert!(limits.connect_user(UserId(1), 0).is_some());
        assert!(
            limits.connect_user(UserId(1), 1).is_none(),
            "one on another node counts"
        );
    }

    #[test]
    fn a_user_on_two_nodes_gets_half_the_rate_on_each() {
        let limits = Arc::new(Limits::new(10.0, 4.0, 2, Duration::from_secs(2)));
        let _slot = limits.connect_user(UserId(3), 0).unwrap();
        assert!(limits.take(UserId(3), Cost::Message, 2).is_ok());
        assert!(limits.take(UserId(3), Cost::Message, 2).is_ok());
        let wait = limits.take(UserId(3), Cost::Message, 2).unwrap_err();
        assert!(
            wait > Duration::from_millis(100),
            "half the burst, half the rate: {wait:?}"
        );
    }

    #[test]
    fn typing_is_throttled_per_room() {
        let limits = Arc::new(Limits::new(1.0, 3.0, 2, Duration::from_secs(60)));
        let _slot = limits.connect_user(UserId(1), 0).unwrap();
        assert!(limits.typing(UserId(1), RoomId(10)));
        assert!(!limits.typing(UserId(1), RoomId(10)));
        assert!(limits.typing(UserId(1), RoomId(11)));
    }
}
