//! Simulation threads: plain OS threads (not tokio workers), each running
//! the fixed-rate loop of the rooms assigned to it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::room::Room;

/// A tick this late (in ticks) is not caught up: the room skips ahead, so an
/// overloaded thread degrades to a lower tick rate instead of spiralling.
const MAX_BEHIND_TICKS: u32 = 3;

struct Worker {
    rooms: mpsc::Sender<Room>,
    load: Arc<AtomicUsize>,
}

/// The simulation threads.
pub(crate) struct Pool {
    workers: Vec<Worker>,
}

impl Pool {
    pub(crate) fn new(threads: usize, tick_hz: u32) -> std::io::Result<Pool> {
        let period = Duration::from_secs_f64(1.0 / tick_hz as f64);
        let mut workers = Vec::new();
        for n in 0..threads.max(1) {
            let (tx, rx) = mpsc::channel();
            let load = Arc::new(AtomicUsize::new(0));
            let thread_load = load.clone();
            std::thread::Builder::new()
                .name(format!("volley-sim-{n}"))
                .spawn(move || run(rx, thread_load, period))?;
            workers.push(Worker { rooms: tx, load });
        }
        Ok(Pool { workers })
    }

    /// Hand a room to the thread with the fewest rooms.
    pub(crate) fn assign(&self, room: Room) {
        let Some(worker) = self.workers.iter().min_by_key(|w| w.load.load(Ordering::Acquire)) else {
            return;
        };
        worker.load.fetch_add(1, Ordering::AcqRel);
        // The thread lives as long as the pool's sender does.
        let _ = worker.rooms.send(room);
    }
}

struct Scheduled {
    room: Room,
    next: Instant,
    overruns: u64,
    last_log: Option<Instant>,
}

fn run(incoming: mpsc::Receiver<Room>, load: Arc<AtomicUsize>, period: Duration) {
    let mut rooms: Vec<Scheduled> = Vec::new();
    loop {
        let now = Instant::now();
        let mut i = 0;
        while i < rooms.len() {
            let s = &mut rooms[i];
            if now < s.next {
                i += 1;
                continue;
            }
            let behind = now.duration_since(s.next);
            if behind > period * MAX_BEHIND_TICKS {
                let skipped = (behind.as_secs_f64() / period.as_secs_f64()) as u64;
                metrics::counter!("volley_game_ticks_skipped_total").increment(skipped);
                s.next = now;
            }
            let started = Instant::now();
            match s.room.tick() {
                Some(cost) => {
                    let total = started.elapsed();
                    metrics::histogram!("volley_game_tick_seconds").record(total.as_secs_f64());
                    metrics::histogram!("volley_game_tick_sim_seconds").record(cost.sim.as_secs_f64());
                    metrics::histogram!("volley_game_tick_encode_seconds").record(cost.encode.as_secs_f64());
                    if total > period {
                        s.overruns += 1;
                        metrics::counter!("volley_game_tick_overruns_total").increment(1);
                        if s.last_log.is_none_or(|t| t.elapsed() > Duration::from_secs(5)) {
                            s.last_log = Some(Instant::now());
                            tracing::warn!(
                                room = %s.room.id(),
                                tick_ms = total.as_secs_f64() * 1e3,
                                overruns = s.overruns,
                                "tick overran its budget"
                            );
                        }
                    }
                    s.next += period;
                    i += 1;
                }
                None => {
                    rooms.swap_remove(i);
                    load.fetch_sub(1, Ordering::AcqRel);
                }
            }
        }
        let wait = rooms
            .iter()
            .map(|s| s.next)
            .min()
            .map_or(Duration::from_secs(1), |next| {
                next.saturating_duration_since(Instant::now())
            });
        match incoming.recv_timeout(wait) {
            Ok(room) => rooms.push(Scheduled {
                room,
                next: Instant::now(),
                overruns: 0,
                last_log: None,
            }),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                if rooms.is_empty() {
                    return;
                }
                std::thread::sleep(wait);
            }
        }
    }
}
