//! The arena as a pure, deterministic state machine.
//!
//! A [`World`] holds no clock, no socket and no global random source: it
//! moves forward only by [`World::step`], with the inputs given to it, and
//! draws randomness from its own generator seeded at creation. The same seed
//! and the same inputs in the same order give the same world, bit for bit
//! ([`World::hash`] shows it), on the same build and platform.

mod bot;
mod geom;
mod grid;
mod rules;

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;

pub use bot::Brain;
pub use geom::{Rect, Vec2};
pub use grid::Grid;
pub use rules::{radius, Rules, EJECTED_RADIUS, PELLET_RADIUS};

/// A player's number within its world (never reused in a world).
pub type PlayerId = u32;

/// What a player asks for during a tick.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct Input {
    /// Where to steer, relative to the player's centre of mass. A cell
    /// moves at full speed while the aim point is [`FULL_SPEED_DISTANCE`] or
    /// more away from it, slower as it gets closer.
    pub target: Vec2,
    /// Split every cell that can.
    pub split: bool,
    /// Eject mass from every cell that can.
    pub eject: bool,
}

/// A pointer this far from the centre (or farther) means full speed.
pub const FULL_SPEED_DISTANCE: f32 = 200.0;

/// One cell of a player.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Cell {
    /// Entity id, shared id space with pellets and blobs; what snapshots carry.
    pub id: u32,
    /// The player it belongs to; a player may have up to 16 cells.
    pub owner: PlayerId,
    /// Centre, in world units, kept inside the world.
    pub pos: Vec2,
    /// Extra velocity from a split, decaying.
    pub boost: Vec2,
    /// Decides radius, speed and what it can eat; starts at `start_mass`.
    pub mass: f32,
    /// Tick from which this cell may merge with its siblings.
    pub merge_tick: u32,
}

impl Cell {
    /// `10 * sqrt(mass)` world units; what eating and the view test against.
    pub fn radius(&self) -> f32 {
        radius(self.mass)
    }
}

/// Food that never moves.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Pellet {
    /// Entity id, fresh for every respawned pellet.
    pub id: u32,
    /// Centre, in world units; fixed for the pellet's life.
    pub pos: Vec2,
}

/// Ejected mass: moves, stops, can be eaten by anyone.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Blob {
    /// Entity id, shared id space with cells and pellets.
    pub id: u32,
    /// Centre, in world units.
    pub pos: Vec2,
    /// Velocity from the eject, in world units per second; decays to zero, then it stays put.
    pub boost: Vec2,
    /// Mass the eater gains (12 by default).
    pub mass: f32,
    /// Tick from which it can be eaten (so it leaves its cell first).
    pub edible_tick: u32,
}

/// A participant: a person or a server bot.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Player {
    /// Never reused within a world; 0 is never a player (it means "none" on the wire).
    pub id: PlayerId,
    /// Display name, as listed in the roster.
    pub name: String,
    /// Set for server bots.
    pub brain: Option<Brain>,
    /// Pending input: steering persists, split and eject are cleared once the tick runs.
    pub input: Input,
    /// Has at least one cell; `false` from being eaten until a respawn.
    pub alive: bool,
    /// Who ate the last cell, when dead.
    pub killed_by: Option<PlayerId>,
    /// Tick at which the last cell was eaten; bots respawn a fixed delay after it.
    pub died_tick: u32,
    /// Total mass of its cells after the last tick.
    pub mass: f32,
    /// Mass-weighted centre of its cells after the last tick (last place when dead).
    pub center: Vec2,
    /// Largest total mass reached in this life.
    pub peak_mass: f32,
}

/// The arena.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct World {
    rules: Rules,
    tick: u32,
    rng: Pcg64Mcg,
    next_entity: u32,
    next_player: PlayerId,
    players: BTreeMap<PlayerId, Player>,
    cells: Vec<Cell>,
    /// Slots; `None` is free (reused in order, so ids and slots stay deterministic).
    pellets: Vec<Option<Pellet>>,
    free_pellets: Vec<u32>,
    pellet_count: usize,
    pellet_grid: Grid,
    blobs: Vec<Blob>,
    cell_grid: Grid,
    scratch: Vec<u32>,
    stamp: Vec<u32>,
    generation: u32,
}

const GRID_CELL: f32 = 128.0;

impl World {
    /// A world with its pellets placed; no players yet.
    pub fn new(rules: Rules, seed: u64) -> World {
        let mut world = World {
            pellet_grid: Grid::new(rules.world_size, GRID_CELL),
            cell_grid: Grid::new(rules.world_size, GRID_CELL),
            rng: Pcg64Mcg::seed_from_u64(seed),
            rules,
            tick: 1,
            next_entity: 1,
            next_player: 1,
            players: BTreeMap::new(),
            cells: Vec::new(),
            pellets: Vec::new(),
            free_pellets: Vec::new(),
            pellet_count: 0,
            blobs: Vec::new(),
            scratch: Vec::new(),
            stamp: Vec::new(),
            generation: 0,
        };
        world.refill_pellets();
        world
    }

    /// The whole world as bytes, random generator included: a world read
    /// back with [`World::from_bytes`] and stepped with the same inputs
    /// stays equal to this one, bit for bit. This is what moves a match
    /// to another node.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serializing plain data into a growing buffer cannot fail.
        postcard::to_allocvec(self).unwrap_or_default()
    }

    /// A world from [`World::to_bytes`]; `None` for bytes that are not one
    /// (truncated, corrupted, another build's layout).
    pub fn from_bytes(bytes: &[u8]) -> Option<World> {
        let world: World = postcard::from_bytes(bytes).ok()?;
        // The grids index the entity vectors; a forged checkpoint must not
        // make a tick index out of bounds.
        world.consistent().then_some(world)
    }

    /// What a world read from bytes must satisfy before it is stepped.
    pub(crate) fn consistent(&self) -> bool {
        let size = self.rules.world_size;
        size.is_finite()
            && size > 0.0
            && self.tick >= 1
            && self.pellet_count == self.pellets.iter().flatten().count()
            && self.pellet_grid.valid(size, self.pellets.len())
            && self.cell_grid.valid(size, self.cells.len())
            && self.free_pellets.iter().all(|&i| (i as usize) < self.pellets.len())
            && self.cells.iter().all(|c| self.players.contains_key(&c.owner))
    }

    /// The rules the world was created with; fixed for its life.
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// The number of the next tick to run (starts at 1).
    pub fn tick(&self) -> u32 {
        self.tick
    }

    /// Every player, dead or alive, in id order (which keeps iteration deterministic).
    pub fn players(&self) -> &BTreeMap<PlayerId, Player> {
        &self.players
    }

    /// One player; `None` once removed from the world.
    pub fn player(&self, id: PlayerId) -> Option<&Player> {
        self.players.get(&id)
    }

    /// Every player's cells, in no particular order; indices change as cells are eaten.
    pub fn cells(&self) -> &[Cell] {
        &self.cells
    }

    /// Ejected mass still in the world.
    pub fn blobs(&self) -> &[Blob] {
        &self.blobs
    }

    /// Pellets in the world; refilled to `rules.pellets` each tick.
    pub fn pellet_count(&self) -> usize {
        self.pellet_count
    }

    /// Pellets whose centre is in (or near) `rect`.
    pub fn pellets_in(&self, rect: &Rect, mut visit: impl FnMut(&Pellet)) {
        self.pellet_grid.query(rect, |slot| {
            if let Some(Some(p)) = self.pellets.get(slot as usize) {
                if rect.touches(p.pos, PELLET_RADIUS) {
                    visit(p);
                }
            }
        });
    }

    fn entity_id(&mut self) -> u32 {
        let id = self.next_entity;
        self.next_entity = self.next_entity.wrapping_add(1).max(1);
        id
    }

    fn random_point(&mut self, margin: f32) -> Vec2 {
        let size = self.rules.world_size;
        Vec2::new(
            self.rng.random_range(margin..size - margin),
            self.rng.random_range(margin..size - margin),
        )
    }

    fn refill_pellets(&mut self) {
        while self.pellet_count < self.rules.pellets {
            let pos = self.random_point(PELLET_RADIUS);
            let id = self.entity_id();
            let slot = match self.free_pellets.pop() {
                Some(slot) => {
                    self.pellets[slot as usize] = Some(Pellet { id, pos });
                    slot
                }
                None => {
                    self.pellets.push(Some(Pellet { id, pos }));
                    (self.pellets.len() - 1) as u32
                }
            };
            self.pellet_grid.insert_point(slot, pos);
            self.pellet_count += 1;
        }
    }

    /// A spawn point away from cells that could eat a new one at once.
    fn spawn_point(&mut self) -> Vec2 {
        let mut best = self.random_point(100.0);
        for _ in 0..8 {
            let threat = self.cells.iter().any(|c| {
                c.mass > self.rules.start_mass * self.rules.eat_ratio && c.pos.distance(best) < c.radius() + 300.0
            });
            if !threat {
                break;
            }
            best = self.random_point(100.0);
        }
        best
    }

    /// Add a player with one cell; `bot` gives it a server brain.
    pub fn add_player(&mut self, name: &str, bot: bool) -> PlayerId {
        let id = self.next_player;
        self.next_player += 1;
        let brain = bot.then(|| Brain::new(id, self.tick));
        self.players.insert(
            id,
            Player {
                id,
                name: name.to_owned(),
                brain,
                input: Input::default(),
                alive: false,
                killed_by: None,
                died_tick: self.tick,
                mass: 0.0,
                center: Vec2::ZERO,
                peak_mass: 0.0,
            },
        );
        self.spawn(id);
        id
    }

    /// Put a dead player back into the world with one new cell; a no-op for
    /// the living.
    pub fn spawn(&mut self, id: PlayerId) {
        if self.players.get(&id).is_none_or(|p| p.alive) {
            return;
        }
        let pos = self.spawn_point();
        let cell_id = self.entity_id();
        let mass = self.rules.start_mass;
        self.cells.push(Cell {
            id: cell_id,
            owner: id,
            pos,
            boost: Vec2::ZERO,
            mass,
            merge_tick: 0,
        });
        if let Some(p) = self.players.get_mut(&id) {
            p.alive = true;
            p.killed_by = None;
            p.mass = mass;
            p.center = pos;
            p.peak_mass = mass;
            p.input = Input::default();
        }
    }

    /// Remove a player and its cells.
    pub fn remove_player(&mut self, id: PlayerId) {
        self.players.remove(&id);
        self.cells.retain(|c| c.owner != id);
    }

    /// Set what a player wants this tick. Steering replaces the last input;
    /// split and eject stay requested until the tick runs.
    pub fn set_input(&mut self, id: PlayerId, input: Input) {
        if let Some(p) = self.players.get_mut(&id) {
            let (split, eject) = (p.input.split || input.split, p.input.eject || input.eject);
            p.input = Input {
                target: input.target,
                split,
                eject,
            };
        }
    }

    /// Advance one fixed time step.
    pub fn step(&mut self) {
        self.think();
        self.split_and_eject();
        self.move_cells();
        self.settle_siblings();
        self.move_blobs();
        self.rebuild_cell_grid();
        self.eat_pellets();
        self.eat_blobs();
        self.eat_cells();
        self.decay();
        self.update_players();
        self.refill_pellets();
        self.rebuild_cell_grid();
        self.tick += 1;
    }

    fn think(&mut self) {
        let tick = self.tick;
        let ids: Vec<PlayerId> = self
            .players
            .values()
            .filter(|p| p.brain.as_ref().is_some_and(|b| b.due(tick)))
            .map(|p| p.id)
            .collect();
        for id in ids {
            let Some(player) = self.players.get(&id) else { continue };
            if !player.alive {
                let respawn_ticks = (self.rules.bot_respawn_secs * self.rules.tick_hz as f32) as u32;
                if tick.saturating_sub(player.died_tick) >= respawn_ticks {
                    self.spawn(id);
                }
                continue;
            }
            let decision = bot::decide(self, id);
            let wander = self.random_point(200.0);
            let roll: f32 = self.rng.random();
            if let Some(p) = self.players.get_mut(&id) {
                let center = p.center;
                if let Some(brain) = p.brain.as_mut() {
                    p.input = brain.apply(decision, center, wander, roll, tick);
                }
            }
        }
    }

    fn split_and_eject(&mut self) {
        let tick = self.tick;
        let merge_ticks = (self.rules.merge_secs * self.rules.tick_hz as f32) as u32;
        let requests: Vec<(PlayerId, Input, Vec2)> = self
            .players
            .values_mut()
            .filter(|p| p.alive && (p.input.split || p.input.eject))
            .map(|p| {
                let input = p.input;
                p.input.split = false;
                p.input.eject = false;
                (p.id, input, p.center)
            })
            .collect();
        for (owner, input, center) in requests {
            let aim = center + input.target;
            if input.split {
                let mut count = self.cells.iter().filter(|c| c.owner == owner).count();
                let mine: Vec<usize> = (0..self.cells.len())
                    .filter(|&i| self.cells[i].owner == owner)
                    .collect();
                for i in mine {
                    if count >= self.rules.max_cells || self.cells[i].mass < self.rules.min_split_mass {
                        continue;
                    }
                    let half = self.cells[i].mass / 2.0;
                    let dir = direction(aim - self.cells[i].pos);
                    self.cells[i].mass = half;
                    self.cells[i].merge_tick = tick + merge_ticks;
                    let pos = self.cells[i].pos + dir * radius(half);
                    let id = self.entity_id();
                    self.cells.push(Cell {
                        id,
                        owner,
                        pos,
                        boost: dir * (self.rules.base_speed * 2.4),
                        mass: half,
                        merge_tick: tick + merge_ticks,
                    });
                    count += 1;
                }
            }
            if input.eject {
                let mine: Vec<usize> = (0..self.cells.len())
                    .filter(|&i| self.cells[i].owner == owner)
                    .collect();
                for i in mine {
                    if self.cells[i].mass < self.rules.min_eject_mass {
                        continue;
                    }
                    self.cells[i].mass -= self.rules.eject_cost;
                    let dir = direction(aim - self.cells[i].pos);
                    let pos = self.cells[i].pos + dir * (self.cells[i].radius() + EJECTED_RADIUS);
                    let id = self.entity_id();
                    self.blobs.push(Blob {
                        id,
                        pos: self.clamp(pos),
                        boost: dir * (self.rules.base_speed * 2.0),
                        mass: self.rules.eject_mass,
                        edible_tick: tick + self.rules.tick_hz / 3,
                    });
                }
            }
        }
    }

    fn clamp(&self, p: Vec2) -> Vec2 {
        let max = self.rules.world_size;
        Vec2::new(p.x.clamp(0.0, max), p.y.clamp(0.0, max))
    }

    fn move_cells(&mut self) {
        let dt = self.rules.dt();
        let decay = self.rules.boost_decay();
        for i in 0..self.cells.len() {
            let Some(player) = self.players.get(&self.cells[i].owner) else {
                continue;
            };
            let aim = player.center + player.input.target;
            let cell = &self.cells[i];
            let to_aim = aim - cell.pos;
            // Each cell slows as it nears the aim point, so siblings gather there.
            let throttle = (to_aim.length() / FULL_SPEED_DISTANCE).min(1.0);
            let step = (self.rules.speed(cell.mass) * dt * throttle).min(to_aim.length());
            let pos = cell.pos + direction(to_aim) * step + cell.boost * dt;
            let pos = self.clamp(pos);
            let cell = &mut self.cells[i];
            cell.pos = pos;
            cell.boost = cell.boost * decay;
            if cell.boost.length_squared() < 1.0 {
                cell.boost = Vec2::ZERO;
            }
        }
    }

    /// Siblings that may not merge yet push each other apart; those that may
    /// and overlap enough merge into the larger.
    fn settle_siblings(&mut self) {
        let mut order: Vec<(PlayerId, usize)> = self.cells.iter().enumerate().map(|(i, c)| (c.owner, i)).collect();
        order.sort_unstable();
        let mut merged: Vec<usize> = Vec::new();
        let mut start = 0;
        while start < order.len() {
            let owner = order[start].0;
            let end = start + order[start..].iter().take_while(|(o, _)| *o == owner).count();
            let group: Vec<usize> = order[start..end].iter().map(|&(_, i)| i).collect();
            for a in 0..group.len() {
                for b in a + 1..group.len() {
                    let (i, j) = (group[a], group[b]);
                    if merged.contains(&i) || merged.contains(&j) {
                        continue;
                    }
                    let (ci, cj) = (&self.cells[i], &self.cells[j]);
                    let (ri, rj) = (ci.radius(), cj.radius());
                    let delta = cj.pos - ci.pos;
                    let dist = delta.length();
                    let mergeable = ci.merge_tick <= self.tick && cj.merge_tick <= self.tick;
                    if mergeable {
                        if dist < ri.max(rj) {
                            let (keep, gone) = if ci.mass >= cj.mass { (i, j) } else { (j, i) };
                            let mass = self.cells[gone].mass;
                            self.cells[keep].mass = (self.cells[keep].mass + mass).min(self.rules.max_cell_mass);
                            merged.push(gone);
                        }
                    } else if dist < ri + rj && self.cells[i].boost == Vec2::ZERO && self.cells[j].boost == Vec2::ZERO {
                        let push = (ri + rj - dist) / 2.0;
                        let dir = if dist < 1e-3 {
                            Vec2::new(1.0, 0.0)
                        } else {
                            delta * (1.0 / dist)
                        };
                        let pi = self.clamp(self.cells[i].pos - dir * push);
                        let pj = self.clamp(self.cells[j].pos + dir * push);
                        self.cells[i].pos = pi;
                        self.cells[j].pos = pj;
                    }
                }
            }
            start = end;
        }
        if !merged.is_empty() {
            merged.sort_unstable();
            for &i in merged.iter().rev() {
                self.cells.remove(i);
            }
        }
    }

    fn move_blobs(&mut self) {
        let dt = self.rules.dt();
        let decay = self.rules.boost_decay();
        for i in 0..self.blobs.len() {
            let pos = self.clamp(self.blobs[i].pos + self.blobs[i].boost * dt);
            let blob = &mut self.blobs[i];
            blob.pos = pos;
            blob.boost = blob.boost * decay;
            if blob.boost.length_squared() < 1.0 {
                blob.boost = Vec2::ZERO;
            }
        }
    }

    fn rebuild_cell_grid(&mut self) {
        self.cell_grid.clear();
        for (i, c) in self.cells.iter().enumerate() {
            self.cell_grid.insert_circle(i as u32, c.pos, c.radius());
        }
        if self.stamp.len() < self.cells.len() {
            self.stamp.resize(self.cells.len(), 0);
        }
    }

    /// Cells near `rect`, each once, into `self.scratch`.
    fn cells_near(&mut self, rect: &Rect) {
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            self.stamp.iter_mut().for_each(|s| *s = 0);
            self.generation = 1;
        }
        let (stamp, scratch, generation) = (&mut self.stamp, &mut self.scratch, self.generation);
        scratch.clear();
        self.cell_grid.query(rect, |k| {
            if let Some(s) = stamp.get_mut(k as usize) {
                if *s != generation {
                    *s = generation;
                    scratch.push(k);
                }
            }
        });
    }

    fn eat_pellets(&mut self) {
        let mut found = Vec::new();
        for i in 0..self.cells.len() {
            let (pos, r) = (self.cells[i].pos, self.cells[i].radius());
            found.clear();
            self.pellet_grid
                .query(&Rect::around(pos, r, r), |slot| found.push(slot));
            for &slot in &found {
                let Some(Some(p)) = self.pellets.get(slot as usize) else {
                    continue;
                };
                if p.pos.distance(pos) < r {
                    let p = *p;
                    self.pellets[slot as usize] = None;
                    self.free_pellets.push(slot);
                    self.pellet_grid.remove_point(slot, p.pos);
                    self.pellet_count -= 1;
                    self.cells[i].mass = (self.cells[i].mass + 1.0).min(self.rules.max_cell_mass);
                }
            }
        }
    }

    fn eat_blobs(&mut self) {
        let mut eaten = Vec::new();
        for b in 0..self.blobs.len() {
            let blob = &self.blobs[b];
            if blob.edible_tick > self.tick {
                continue;
            }
            let (pos, mass) = (blob.pos, blob.mass);
            self.cells_near(&Rect::around(pos, EJECTED_RADIUS, EJECTED_RADIUS));
            let eater = self
                .scratch
                .iter()
                .map(|&k| k as usize)
                .filter(|&i| {
                    let c = &self.cells[i];
                    c.mass >= mass * self.rules.eat_ratio && c.pos.distance(pos) < c.radius()
                })
                .max_by(|&a, &b| self.cells[a].mass.total_cmp(&self.cells[b].mass).then(b.cmp(&a)));
            if let Some(i) = eater {
                self.cells[i].mass = (self.cells[i].mass + mass).min(self.rules.max_cell_mass);
                eaten.push(b);
            }
        }
        for &b in eaten.iter().rev() {
            self.blobs.remove(b);
        }
    }

    fn eat_cells(&mut self) {
        let n = self.cells.len();
        let mut dead = vec![false; n];
        let mut killer: Vec<(PlayerId, PlayerId)> = Vec::new();
        for i in 0..n {
            if dead[i] {
                continue;
            }
            let r = self.cells[i].radius();
            self.cells_near(&Rect::around(self.cells[i].pos, r, r));
            let near = std::mem::take(&mut self.scratch);
            for &k in &near {
                let j = k as usize;
                if j == i || dead[j] || dead[i] || self.cells[j].owner == self.cells[i].owner {
                    continue;
                }
                let (a, b) = (&self.cells[i], &self.cells[j]);
                let dist = a.pos.distance(b.pos);
                let (eater, prey) = if a.mass >= b.mass * self.rules.eat_ratio && dist < a.radius() - 0.4 * b.radius() {
                    (i, j)
                } else if b.mass >= a.mass * self.rules.eat_ratio && dist < b.radius() - 0.4 * a.radius() {
                    (j, i)
                } else {
                    continue;
                };
                let gained = self.cells[prey].mass;
                self.cells[eater].mass = (self.cells[eater].mass + gained).min(self.rules.max_cell_mass);
                dead[prey] = true;
                killer.push((self.cells[prey].owner, self.cells[eater].owner));
            }
            self.scratch = near;
        }
        if killer.is_empty() {
            return;
        }
        let mut i = 0;
        self.cells.retain(|_| {
            i += 1;
            !dead[i - 1]
        });
        for (victim, by) in killer {
            if let Some(p) = self.players.get_mut(&victim) {
                p.killed_by = Some(by);
            }
        }
    }

    fn decay(&mut self) {
        let factor = 1.0 - self.rules.decay_per_sec * self.rules.dt();
        for c in &mut self.cells {
            if c.mass > self.rules.decay_floor {
                c.mass = (c.mass * factor).max(self.rules.decay_floor);
            }
        }
    }

    fn update_players(&mut self) {
        for p in self.players.values_mut() {
            p.mass = 0.0;
        }
        let mut weighted: BTreeMap<PlayerId, Vec2> = BTreeMap::new();
        for c in &self.cells {
            if let Some(p) = self.players.get_mut(&c.owner) {
                p.mass += c.mass;
                *weighted.entry(c.owner).or_default() += c.pos * c.mass;
            }
        }
        let tick = self.tick;
        for p in self.players.values_mut() {
            if p.mass > 0.0 {
                p.center = weighted.get(&p.id).copied().unwrap_or_default() * (1.0 / p.mass);
                p.peak_mass = p.peak_mass.max(p.mass);
            } else if p.alive {
                p.alive = false;
                p.died_tick = tick;
            }
        }
    }

    /// The living players, heaviest first (ties: lower id first).
    pub fn leaders(&self, n: usize) -> Vec<&Player> {
        let mut all: Vec<&Player> = self.players.values().filter(|p| p.alive).collect();
        all.sort_by(|a, b| b.mass.total_cmp(&a.mass).then(a.id.cmp(&b.id)));
        all.truncate(n);
        all
    }

    /// A digest of the whole state (FNV-1a over every field), for
    /// determinism checks.
    pub fn hash(&self) -> u64 {
        let mut h = Fnv(0xcbf2_9ce4_8422_2325);
        h.u32(self.tick);
        h.u32(self.next_entity);
        for p in self.players.values() {
            h.u32(p.id);
            h.bytes(p.name.as_bytes());
            h.u32(p.alive as u32);
            h.u32(p.killed_by.unwrap_or(0));
            h.f32(p.mass);
            h.f32(p.center.x);
            h.f32(p.center.y);
        }
        for c in &self.cells {
            h.u32(c.id);
            h.u32(c.owner);
            h.f32(c.pos.x);
            h.f32(c.pos.y);
            h.f32(c.boost.x);
            h.f32(c.boost.y);
            h.f32(c.mass);
            h.u32(c.merge_tick);
        }
        for p in self.pellets.iter().flatten() {
            h.u32(p.id);
            h.f32(p.pos.x);
            h.f32(p.pos.y);
        }
        for b in &self.blobs {
            h.u32(b.id);
            h.f32(b.pos.x);
            h.f32(b.pos.y);
            h.f32(b.mass);
        }
        h.0
    }

    /// Where a player looks and how far it sees: its centre and the half
    /// width and height of its view (bigger players see farther).
    pub fn view(&self, id: PlayerId) -> Option<(Vec2, f32)> {
        let p = self.players.get(&id)?;
        Some((p.center, view_scale(p.mass)))
    }

    /// Test hook: place a player's cells (first cell gets `mass` at `pos`, the
    /// others are removed).
    #[doc(hidden)]
    pub fn place(&mut self, id: PlayerId, pos: Vec2, mass: f32) {
        let mut first = true;
        self.cells.retain_mut(|c| {
            if c.owner != id {
                return true;
            }
            if first {
                first = false;
                c.pos = pos;
                c.mass = mass;
                c.boost = Vec2::ZERO;
                true
            } else {
                false
            }
        });
        self.update_players();
        self.rebuild_cell_grid();
    }
}

/// Base half-size of a view (16:9, like a browser window).
pub const VIEW_HALF_WIDTH: f32 = 800.0;
/// Base half-height of a view, in world units (before zoom and margin).
pub const VIEW_HALF_HEIGHT: f32 = 450.0;

/// Zoom factor for a player of this total mass (1 at start mass).
pub fn view_scale(mass: f32) -> f32 {
    (mass.max(10.0) / 10.0).powf(0.15).min(4.0)
}

fn direction(v: Vec2) -> Vec2 {
    let d = v.normalized();
    if d == Vec2::ZERO {
        Vec2::new(1.0, 0.0)
    } else {
        d
    }
}

struct Fnv(u64);

impl Fnv {
    fn bytes(&mut self, b: &[u8]) {
        for &x in b {
            self.0 ^= x as u64;
            self.0 = self.0.wrapping_mul(0x100_0000_01b3);
        }
    }
    fn u32(&mut self, v: u32) {
        self.bytes(&v.to_le_bytes());
    }
    fn f32(&mut self, v: f32) {
        self.u32(v.to_bits());
    }
}
