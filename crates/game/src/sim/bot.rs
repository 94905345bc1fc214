//! Server bots: cheap, deterministic steering that fills rooms with
//! something to eat and something to run from.

use super::{Input, PlayerId, Rect, Vec2, World, FULL_SPEED_DISTANCE};

/// How often a bot reconsiders, in ticks (staggered by id so bots spread
/// their cost over ticks).
const THINK_EVERY: u32 = 6;
const SIGHT: f32 = 500.0;

/// A bot's memory between decisions.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Brain {
    phase: u32,
    wander: Vec2,
    wander_until: u32,
}

/// What a bot chose to do.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Decision {
    /// Run along this direction.
    Flee(Vec2),
    /// Go for a smaller cell at this place; `split` if it is worth a split.
    Chase(Vec2, bool),
    /// Eat the pellet at this place.
    Graze(Vec2),
    /// Nothing in sight.
    Wander,
}

impl Brain {
    pub(super) fn new(id: PlayerId, tick: u32) -> Brain {
        Brain {
            phase: id % THINK_EVERY,
            wander: Vec2::ZERO,
            wander_until: tick,
        }
    }

    pub(super) fn due(&self, tick: u32) -> bool {
        tick % THINK_EVERY == self.phase
    }

    /// Turn a decision into an input; `wander` is a fresh random point and
    /// `roll` a fresh number in [0, 1), both from the world's generator.
    pub(super) fn apply(&mut self, decision: Decision, center: Vec2, wander: Vec2, roll: f32, tick: u32) -> Input {
        let full = FULL_SPEED_DISTANCE;
        match decision {
            Decision::Flee(dir) => Input {
                target: dir.normalized() * full,
                ..Input::default()
            },
            Decision::Chase(at, split) => Input {
                target: (at - center).normalized() * full,
                split: split && roll < 0.3,
                eject: false,
            },
            Decision::Graze(at) => Input {
                target: (at - center).normalized() * full,
                ..Input::default()
            },
            Decision::Wander => {
                if tick >= self.wander_until || center.distance(self.wander) < 50.0 {
                    self.wander = wander;
                    self.wander_until = tick + 150;
                }
                Input {
                    target: (self.wander - center).normalized() * full,
                    ..Input::default()
                }
            }
        }
    }
}

/// Look around a bot: flee what can eat it, chase what it can eat, else graze.
pub(super) fn decide(world: &World, id: PlayerId) -> Decision {
    let Some(me) = world.players.get(&id) else {
        return Decision::Wander;
    };
    let ratio = world.rules.eat_ratio;
    // The bot's biggest cell decides what is a threat and what is prey.
    let Some(big) = world
        .cells
        .iter()
        .filter(|c| c.owner == id)
        .max_by(|a, b| a.mass.total_cmp(&b.mass))
    else {
        return Decision::Wander;
    };
    let small = world
        .cells
        .iter()
        .filter(|c| c.owner == id)
        .map(|c| c.mass)
        .fold(f32::MAX, f32::min);
    let center = me.center;
    let mut flee = Vec2::ZERO;
    let mut prey: Option<(f32, Vec2, f32)> = None;
    world.cell_grid.query(&Rect::around(center, SIGHT, SIGHT), |k| {
        let Some(other) = world.cells.get(k as usize) else {
            return;
        };
        if other.owner == id {
            return;
        }
        let away = center - other.pos;
        let dist = away.length().max(1.0);
        if dist > SIGHT {
            return;
        }
        if other.mass > small * ratio {
            flee += away * (1.0 / (dist * dist));
        } else if big.mass >= other.mass * ratio && prey.is_none_or(|(d, _, _)| dist < d) {
            prey = Some((dist, other.pos, other.mass));
        }
    });
    if flee != Vec2::ZERO {
        return Decision::Flee(flee);
    }
    if let Some((dist, at, mass)) = prey {
        let split = big.mass / 2.0 >= mass * ratio && dist < 250.0 + big.radius();
        return Decision::Chase(at, split);
    }
    let mut nearest: Option<(f32, Vec2)> = None;
    world.pellets_in(&Rect::around(center, 300.0, 300.0), |p| {
        let d = p.pos.distance(center);
        if nearest.is_none_or(|(best, _)| d < best) {
            nearest = Some((d, p.pos));
        }
    });
    match nearest {
        Some((_, at)) => Decision::Graze(at),
        None => Decision::Wander,
    }
}
