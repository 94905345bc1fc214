//! When to try again after a connection is lost.
//!
//! Clients of a node that restarts all lose their connection at once; if
//! they all came back at once, the node (or the one that takes over) would
//! meet a thundering herd. So the wait grows exponentially and is jittered
//! over its upper half, and a close that names its own wait wins: `volley
//! proxy` draining a backend closes with 1012 "backend draining; reconnect
//! in N ms", having spread N over its clients already.

use std::time::Duration;

use rand::Rng;
use volley_net::CloseCode;

/// What a close frame says about reconnecting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseHint {
    /// Reconnect after exactly this long (1012 with "reconnect in N ms").
    After(Duration),
    /// Reconnect on the usual backoff (1001, 1006, 1011, 1012 or 1013
    /// without a wait, or any close the client did not cause).
    Backoff,
    /// Do not reconnect: the server refused these credentials or this
    /// client (1008), or the close was normal (1000).
    Stop,
}

impl CloseHint {
    /// Read a close frame's code and reason.
    pub fn of(code: CloseCode, reason: &str) -> CloseHint {
        match code {
            CloseCode::NORMAL | CloseCode::POLICY_VIOLATION => CloseHint::Stop,
            CloseCode::SERVICE_RESTART | CloseCode::TRY_AGAIN_LATER => match reconnect_in(reason) {
                Some(wait) => CloseHint::After(wait),
                None => CloseHint::Backoff,
            },
            _ => CloseHint::Backoff,
        }
    }
}

/// The `N` of "... reconnect in N ms", capped at a minute so a hostile or
/// broken peer cannot park a client for good.
fn reconnect_in(reason: &str) -> Option<Duration> {
    let rest = &reason[reason.find("reconnect in ")? + "reconnect in ".len()..];
    let digits: &str = &rest[..rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len())];
    if !rest[digits.len()..].starts_with(" ms") {
        return None;
    }
    let ms: u64 = digits.parse().ok()?;
    Some(Duration::from_millis(ms.min(60_000)))
}

/// Exponential backoff with jitter: attempt `n` waits a random time in
/// `[base·2ⁿ / 2, base·2ⁿ]`, capped at `max`; [`reset`](Backoff::reset)
/// after a connection that worked.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    attempt: u32,
}

impl Default for Backoff {
    /// 500 ms doubling to 30 s, as the JavaScript client does.
    fn default() -> Backoff {
        Backoff::new(Duration::from_millis(500), Duration::from_secs(30))
    }
}

impl Backoff {
    /// Start at `base`, never wait longer than `max`.
    pub fn new(base: Duration, max: Duration) -> Backoff {
        Backoff { base, max, attempt: 0 }
    }

    /// How many waits since the last reset.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The next wait; a [`CloseHint::After`] is taken as it is (the
    /// attempt count still grows, in case the next try fails too).
    pub fn next(&mut self, hint: CloseHint) -> Duration {
        let ceiling = self.base.saturating_mul(1u32 << self.attempt.min(16)).min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        match hint {
            CloseHint::After(wait) => wait,
            _ => {
                let half = ceiling / 2;
                half + rand::rng().random_range(Duration::ZERO..=half)
            }
        }
    }

    /// The connection worked: start from `base` again.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_proxy_hint() {
        let hint = CloseHint::of(CloseCode::SERVICE_RESTART, "backend draining; reconnect in 2731 ms");
        assert_eq!(hint, CloseHint::After(Duration::from_millis(2731)));
        assert_eq!(
            CloseHint::of(CloseCode::TRY_AGAIN_LATER, "reconnect in 99999999 ms"),
            CloseHint::After(Duration::from_secs(60))
        );
        assert_eq!(
            CloseHint::of(CloseCode::SERVICE_RESTART, "restarting"),
            CloseHint::Backoff
        );
        assert_eq!(
            CloseHint::of(CloseCode::SERVICE_RESTART, "reconnect in 5 s"),
            CloseHint::Backoff
        );
        assert_eq!(
            CloseHint::of(CloseCode::SERVICE_RESTART, "reconnect in ms"),
            CloseHint::Backoff
        );
        assert_eq!(
            CloseHint::of(CloseCode::GOING_AWAY, "reconnect in 5 ms"),
            CloseHint::Backoff
        );
        assert_eq!(CloseHint::of(CloseCode::POLICY_VIOLATION, "auth"), CloseHint::Stop);
        assert_eq!(CloseHint::of(CloseCode::NORMAL, ""), CloseHint::Stop);
    }

    #[test]
    fn grows_with_jitter_and_caps() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let waits: Vec<Duration> = (0..8).map(|_| b.next(CloseHint::Backoff)).collect();
        for (n, w) in waits.iter().enumerate() {
            let ceiling = Duration::from_millis(100 * (1 << n)).min(Duration::from_secs(1));
            assert!(
                *w >= ceiling / 2 && *w <= ceiling,
                "attempt {n}: {w:?} outside [{:?}, {ceiling:?}]",
                ceiling / 2
            );
        }
        assert_eq!(b.attempt(), 8);
        b.reset();
        assert!(b.next(CloseHint::Backoff) <= Duration::from_millis(100));
        assert_eq!(
            b.next(CloseHint::After(Duration::from_millis(7))),
            Duration::from_millis(7)
        );
    }
}
