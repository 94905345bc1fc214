//! Paced draining: a backend that is drained (`volley proxy drain`, the
//! admin API), removed by a reload, or taken out by its health checks gets
//! no new connections, and its live ones are closed `drain_rate` per second,
//! each WebSocket with close code 1012 and a reason naming a random delay
//! before reconnecting, so its clients come back spread out rather than as
//! one storm on the remaining backends.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::pool::{Backend, LiveGuard};
use crate::ProxyConfig;

/// After the live list empties, it is looked at again this many times, a
/// second apart: a handshake that chose the backend just before the drain
/// registers its connection late.
const LATE_CHECKS: u32 = 10;

/// Put a new connection on `backend`'s drain list. One that chose the
/// backend just before a drain or removal began is taken by that drain too
/// (a drain that found the list empty may have ended already: start one).
pub(crate) fn register(backend: &Arc<Backend>, config: &ProxyConfig) -> (LiveGuard, oneshot::Receiver<String>) {
    let entry = backend.register();
    if backend.should_shed() {
        start(
            backend.clone(),
            config.drain_rate,
            config.drain_reconnect_ms,
            "backend draining",
        );
    }
    entry
}

/// Start draining `backend`'s live connections (once; a drain already
/// running goes on). It stops when the backend is usable again or has no
/// live connection left.
pub(crate) fn start(backend: Arc<Backend>, rate: u32, reconnect_ms: u64, why: &'static str) {
    if backend.drainer.swap(true, Ordering::AcqRel) {
        return;
    }
    tracing::info!(backend = %backend.addr, live = backend.live(), rate, why, "draining");
    tokio::spawn(async move {
        let gap = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
        let mut tick = tokio::time::interval(gap);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut late = 0;
        let mut closed = 0u64;
        loop {
            if !backend.should_shed() {
                break;
            }
            tick.tick().await;
            let Some(order) = backend.take_one() else {
                if late == LATE_CHECKS {
                    backend.drainer.store(false, Ordering::Release);
                    // A connection that registered just now, while this task
                    // was leaving: take it up again unless another task did.
                    if backend.live() > 0 && !backend.drainer.swap(true, Ordering::AcqRel) {
                        late = 0;
                        continue;
                    }
                    tracing::info!(backend = %backend.addr, closed, "drain done");
                    return;
                }
                late += 1;
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            };
            late = 0;
            let wait = if reconnect_ms == 0 {
                0
            } else {
                rand::random_range(0..reconnect_ms)
            };
            if order.send(format!("{why}; reconnect in {wait} ms")).is_ok() {
                closed += 1;
                metrics::counter!("volley_proxy_drained_total", "backend" => backend.addr.clone()).increment(1);
            }
        }
        tracing::info!(backend = %backend.addr, closed, "drain stopped: the backend is usable again");
        backend.drainer.store(false, Ordering::Release);
    });
}
