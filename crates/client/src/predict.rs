//! From snapshots to what to draw: others interpolated, our own cells predicted.
//!
//! Snapshots arrive at the tick rate (30 Hz) with network jitter; drawing
//! the newest one as it comes makes everything stutter. So other entities
//! are drawn a few ticks in the past, between the two snapshots around that
//! moment, and move smoothly. Our own cells cannot wait like that (the
//! steering would feel late), so they are drawn at the newest server
//! position plus the effect of the inputs the server has not applied yet,
//! replayed with the same movement rule the simulation uses. The
//! JavaScript client (`clients/js/game.js`, `frame()`) does the same.
//!
//! ```no_run
//! # async fn demo(mut client: volley_client::game::GameClient) -> Result<(), volley_client::Error> {
//! use volley_client::game::Event;
//! use volley_client::predict::Smoother;
//! let mut smoother = Smoother::new(&client.welcome, 3.0);
//! while let Some(event) = client.next().await? {
//!     if let Event::Snapshot { .. } = event {
//!         smoother.on_snapshot(client.header, &client.entities, std::time::Instant::now());
//!         let seq = client.input((120, -40), 0).await?;
//!         smoother.on_input(seq, (120, -40), client.header.alive);
//!     }
//!     if let Some(frame) = smoother.frame(std::time::Instant::now()) {
//!         // draw frame.entities around frame.camera
//!         # let _ = frame;
//!     }
//! }
//! # Ok(()) }
//! ```

use std::collections::VecDeque;
use std::time::Instant;

use volley_protocol::game::{EntityState, Header, Kind, Welcome, POSITION_SCALE};

/// Top speed of a mass-1 cell in world units per second, under the
/// server's default rules (`base_speed`).
pub const BASE_SPEED: f32 = 500.0;

/// A cell moves at full speed while the aim point is this far or farther
/// from its centre, slower when closer (the simulation's rule).
pub const FULL_SPEED_DISTANCE: f32 = 200.0;

/// Snapshots kept for interpolation (two seconds at 30 Hz).
const KEPT: usize = 64;

/// Top speed of a cell of `mass`: big cells are slow.
pub fn speed(mass: f32) -> f32 {
    BASE_SPEED * mass.max(1.0).powf(-0.22)
}

/// One entity to draw, in world units.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Drawn {
    /// The entity's id.
    pub id: u32,
    /// What it is.
    pub kind: Kind,
    /// The owning player of a cell (0 otherwise).
    pub owner: u32,
    /// One of our own cells (predicted, not interpolated).
    pub own: bool,
    /// Centre x.
    pub x: f32,
    /// Centre y.
    pub y: f32,
    /// Radius.
    pub r: f32,
}

/// Where to look: the mass centre of our cells, or the server's view centre
/// for a spectator or a dead player.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Camera {
    /// Centre x in world units.
    pub x: f32,
    /// Centre y in world units.
    pub y: f32,
    /// Zoom in hundredths (100 = the base view).
    pub scale: f32,
}

/// What to draw now.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// Smallest first, so big cells are drawn over small ones.
    pub entities: Vec<Drawn>,
    /// The view.
    pub camera: Camera,
    /// The newest tick received.
    pub tick: u32,
}

#[derive(Debug)]
struct Sample {
    tick: u32,
    at: Instant,
    header: Header,
    entities: Vec<EntityState>,
}

#[derive(Debug, Clone, Copy)]
struct PendingInput {
    seq: u32,
    target: (f32, f32),
}

/// Keeps recent snapshots and unapplied inputs; see the module notes.
#[derive(Debug)]
pub struct Smoother {
    me: u32,
    tick_hz: f32,
    interpolation_ticks: f32,
    samples: VecDeque<Sample>,
    pending: VecDeque<PendingInput>,
}

impl Smoother {
    /// For the player of `welcome`, drawing others `interpolation_ticks`
    /// behind the newest snapshot (3 absorbs about 100 ms of jitter at 30 Hz).
    pub fn new(welcome: &Welcome, interpolation_ticks: f32) -> Smoother {
        Smoother {
            me: welcome.player,
            tick_hz: f32::from(welcome.tick_hz.max(1)),
            interpolation_ticks: interpolation_ticks.max(0.0),
            samples: VecDeque::new(),
            pending: VecDeque::new(),
        }
    }

    /// A snapshot arrived at `at`: keep it, and forget the inputs it has applied.
    pub fn on_snapshot(&mut self, header: Header, entities: &[EntityState], at: Instant) {
        if self.samples.back().is_some_and(|s| s.tick >= header.tick) {
            return;
        }
        if self.samples.len() == KEPT {
            self.samples.pop_front();
        }
        self.samples.push_back(Sample {
            tick: header.tick,
            at,
            header,
            entities: entities.to_vec(),
        });
        while self.pending.front().is_some_and(|i| i.seq <= header.input_seq) {
            self.pending.pop_front();
        }
    }

    /// An input was sent; while alive, it moves the own cells until the
    /// server's snapshot shows it applied.
    pub fn on_input(&mut self, seq: u32, target: (i16, i16), alive: bool) {
        if !alive || self.me == 0 {
            return;
        }
        if self.pending.len() == KEPT {
            self.pending.pop_front();
        }
        self.pending.push_back(PendingInput {
            seq,
            target: (f32::from(target.0), f32::from(target.1)),
        });
    }

    /// Inputs sent and not yet applied by the server.
    pub fn pending_inputs(&self) -> usize {
        self.pending.len()
    }

    /// What to draw at `now`; `None` before the first snapshot.
    pub fn frame(&self, now: Instant) -> Option<Frame> {
        let latest = self.samples.back()?;
        let period = 1.0 / self.tick_hz;
        let since = now.saturating_duration_since(latest.at).as_secs_f32();
        let render_tick = latest.tick as f32 + since / period - self.interpolation_ticks;
        let (mut a, mut b) = (&self.samples[0], latest);
        for (i, s) in self.samples.iter().enumerate().rev() {
            if s.tick as f32 <= render_tick {
                a = s;
                b = &self.samples[(i + 1).min(self.samples.len() - 1)];
                break;
            }
        }
        let t = if b.tick > a.tick {
            ((render_tick - a.tick as f32) / (b.tick - a.tick) as f32).clamp(0.0, 1.0)
        } else {
            1.0
        };
        let me = self.me;
        let own = |e: &EntityState| e.kind == Kind::Cell && e.owner == me && me != 0;
        let scale = POSITION_SCALE;
        let mut out = Vec::with_capacity(b.entities.len());
        for e in b.entities.iter().filter(|e| !own(e)) {
            let p = a
                .entities
                .binary_search_by_key(&e.id, |p| p.id)
                .map_or(e, |i| &a.entities[i]);
            let lerp = |from: u16, to: u16| (f32::from(from) + (f32::from(to) - f32::from(from)) * t) / scale;
            out.push(Drawn {
                id: e.id,
                kind: e.kind,
                owner: e.owner,
                own: false,
                x: lerp(p.x, e.x),
                y: lerp(p.y, e.y),
                r: lerp(p.r, e.r),
            });
        }
        let (dx, dy) = self.predicted_offset(latest.header.mass);
        let (mut cx, mut cy, mut weight) = (0.0f32, 0.0f32, 0.0f32);
        for e in latest.entities.iter().filter(|e| own(e)) {
            let (x, y, r) = (
                f32::from(e.x) / scale + dx,
                f32::from(e.y) / scale + dy,
                f32::from(e.r) / scale,
            );
            out.push(Drawn {
                id: e.id,
                kind: e.kind,
                owner: e.owner,
                own: true,
                x,
                y,
                r,
            });
            cx += x * r * r;
            cy += y * r * r;
            weight += r * r;
        }
        let h = &latest.header;
        let camera = if weight > 0.0 {
            Camera {
                x: cx / weight,
                y: cy / weight,
                scale: f32::from(h.view_scale),
            }
        } else {
            Camera {
                x: f32::from(h.view_x) / scale,
                y: f32::from(h.view_y) / scale,
                scale: f32::from(h.view_scale),
            }
        };
        out.sort_by(|p, q| p.r.total_cmp(&q.r));
        Some(Frame {
            entities: out,
            camera,
            tick: latest.tick,
        })
    }

    /// How far the unapplied inputs move a cell of the player's total mass.
    fn predicted_offset(&self, mass: u32) -> (f32, f32) {
        let mass = if mass == 0 { 10.0 } else { mass as f32 };
        let dt = 1.0 / self.tick_hz;
        let (mut dx, mut dy) = (0.0, 0.0);
        for input in &self.pending {
            let (tx, ty) = input.target;
            let len = (tx * tx + ty * ty).sqrt();
            if len < 1e-3 {
                continue;
            }
            let step = speed(mass) * dt * (len / FULL_SPEED_DISTANCE).min(1.0);
            dx += tx / len * step;
            dy += ty / len * step;
        }
        (dx, dy)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use volley_protocol::game::MatchId;

    use super::*;

    fn welcome() -> Welcome {
        Welcome {
            player: 7,
            room: MatchId(1),
            token: [0; 16],
            tick_hz: 30,
            world_size: 4000,
            spectator: false,
            resumed: false,
        }
    }

    fn entity(id: u32, kind: Kind, x: u16, owner: u32) -> EntityState {
        EntityState {
            id,
            kind,
            x,
            y: 400,
            r: 40,
            owner,
        }
    }

    fn header(tick: u32, input_seq: u32) -> Header {
        Header {
            tick,
            input_seq,
            alive: true,
            mass: 10,
            view_scale: 100,
            ..Header::default()
        }
    }

    #[test]
    fn others_are_interpolated_between_the_snapshots_around_the_render_time() {
        let mut s = Smoother::new(&welcome(), 1.0);
        let t0 = Instant::now();
        let period = Duration::from_secs_f32(1.0 / 30.0);
        s.on_snapshot(header(10, 0), &[entity(1, Kind::Pellet, 400, 0)], t0);
        s.on_snapshot(header(11, 0), &[entity(1, Kind::Pellet, 800, 0)], t0 + period);
        // Half a tick after the newest, drawn one tick behind: halfway from 10 to 11.
        let frame = s.frame(t0 + period + period / 2).unwrap();
        let drawn = frame.entities[0];
        assert!((drawn.x - 150.0).abs() < 1.0, "{drawn:?}");
        assert_eq!(frame.tick, 11);
        // Long after: the newest position, never extrapolated past it.
        let late = s.frame(t0 + Duration::from_secs(5)).unwrap();
        assert!((late.entities[0].x - 200.0).abs() < 0.01);
    }

    #[test]
    fn own_cells_move_by_unapplied_inputs_until_the_server_applies_them() {
        let mut s = Smoother::new(&welcome(), 3.0);
        let t0 = Instant::now();
        s.on_snapshot(header(1, 0), &[entity(5, Kind::Cell, 400, 7)], t0);
        s.on_input(1, (400, 0), true);
        s.on_input(2, (400, 0), true);
        let step = speed(10.0) / 30.0;
        let frame = s.frame(t0).unwrap();
        let own = frame.entities.iter().find(|e| e.own).unwrap();
        assert!((own.x - (100.0 + 2.0 * step)).abs() < 0.01, "{own:?}");
        assert!((frame.camera.x - own.x).abs() < 0.01);
        // The server applied input 1: one left to replay.
        s.on_snapshot(header(2, 1), &[entity(5, Kind::Cell, 400 + (step * 4.0) as u16, 7)], t0);
        assert_eq!(s.pending_inputs(), 1);
        // Dead players predict nothing.
        s.on_input(3, (400, 0), false);
        assert_eq!(s.pending_inputs(), 1);
    }

    #[test]
    fn old_and_repeated_snapshots_are_ignored() {
        let mut s = Smoother::new(&welcome(), 3.0);
        let t0 = Instant::now();
        s.on_snapshot(header(5, 0), &[], t0);
        s.on_snapshot(header(5, 0), &[entity(1, Kind::Pellet, 4, 0)], t0);
        s.on_snapshot(header(4, 0), &[entity(1, Kind::Pellet, 4, 0)], t0);
        assert!(s.frame(t0).unwrap().entities.is_empty());
        for tick in 6..200 {
            s.on_snapshot(header(tick, 0), &[], t0);
        }
        assert_eq!(s.samples.len(), KEPT);
    }
}
