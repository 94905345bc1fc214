//! Interest management: the entities one player is sent, quantized.
//!
//! Encoding every viewer's snapshot is most of a tick's cost (the
//! simulation is a few percent), so the shared part is done once per tick:
//! [`ViewIndex::rebuild`] quantizes every cell and blob once and buckets
//! them by place; each viewer then only visits the buckets its view covers
//! instead of testing every cell of the room.

use crate::protocol::{EntityState, Kind, POSITION_SCALE};
use crate::sim::{radius, Rect, Vec2, World, EJECTED_RADIUS, PELLET_RADIUS, VIEW_HALF_HEIGHT, VIEW_HALF_WIDTH};

/// Extra border around the view, so entities entering at the edge are
/// already known when they become visible.
const MARGIN: f32 = 1.1;

/// Side of the index's buckets in world units: a view (1,760 x 990 units at
/// the base zoom) covers about 4 x 2 of them.
const BUCKET: f32 = 512.0;

/// `round(v * POSITION_SCALE)` clamped to a u16, without a call to libm's
/// `roundf` (the cast saturates: negative values give 0, too large ones
/// `u16::MAX`).
pub(crate) fn quantize(v: f32) -> u16 {
    (v * POSITION_SCALE + 0.5) as u16
}

/// The rectangle a view centred at `center` with zoom `scale` covers.
pub(crate) fn view_rect(center: Vec2, scale: f32) -> Rect {
    Rect::around(
        center,
        VIEW_HALF_WIDTH * scale * MARGIN,
        VIEW_HALF_HEIGHT * scale * MARGIN,
    )
}

/// The cells and blobs of one tick, quantized once and bucketed by place,
/// for every viewer's query.
#[derive(Debug, Default)]
pub(crate) struct ViewIndex {
    cols: usize,
    /// Indices into `moving` per bucket; an entity sits in every bucket its
    /// bounding box covers.
    buckets: Vec<Vec<u32>>,
    /// Quantized cells then blobs, with their centre and radius for the
    /// exact test against a view.
    moving: Vec<(EntityState, Vec2, f32)>,
    /// Per entity, the last query that took it (an entity in several
    /// buckets is taken once).
    stamp: Vec<u32>,
    generation: u32,
    /// One viewer's entities in the order found, and their sort keys.
    found: Vec<EntityState>,
    keys: Vec<u64>,
}

impl ViewIndex {
    /// Index the world as it is now; call after the tick's last change to
    /// cells and blobs, before the viewers' queries.
    pub(crate) fn rebuild(&mut self, world: &World) {
        let cols = ((world.rules().world_size / BUCKET).ceil() as usize).max(1);
        if self.cols != cols {
            self.cols = cols;
            self.buckets = vec![Vec::new(); cols * cols];
        }
        for bucket in &mut self.buckets {
            bucket.clear();
        }
        self.moving.clear();
        for c in world.cells() {
            let r = radius(c.mass);
            self.moving.push((
                EntityState {
                    id: c.id,
                    kind: Kind::Cell,
                    x: quantize(c.pos.x),
                    y: quantize(c.pos.y),
                    r: quantize(r),
                    owner: c.owner,
                },
                c.pos,
                r,
            ));
        }
        for b in world.blobs() {
            self.moving.push((
                EntityState {
                    id: b.id,
                    kind: Kind::Blob,
                    x: quantize(b.pos.x),
                    y: quantize(b.pos.y),
                    r: quantize(EJECTED_RADIUS),
                    owner: 0,
                },
                b.pos,
                EJECTED_RADIUS,
            ));
        }
        for (i, (_, pos, r)) in self.moving.iter().enumerate() {
            let (x0, x1, y0, y1) = span(cols, &Rect::around(*pos, *r, *r));
            for y in y0..=y1 {
                for x in x0..=x1 {
                    self.buckets[y * cols + x].push(i as u32);
                }
            }
        }
        if self.stamp.len() < self.moving.len() {
            self.stamp.resize(self.moving.len(), 0);
        }
    }

    /// Fill `out` with every entity touching the view, sorted by id: the
    /// pellets from the world's grid, cells and blobs from this index.
    pub(crate) fn visible(&mut self, world: &World, rect: &Rect, out: &mut Vec<EntityState>) {
        let found = &mut self.found;
        found.clear();
        world.pellets_in(rect, |p| {
            found.push(EntityState {
                id: p.id,
                kind: Kind::Pellet,
                x: quantize(p.pos.x),
                y: quantize(p.pos.y),
                r: quantize(PELLET_RADIUS),
                owner: 0,
            })
        });
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            self.stamp.iter_mut().for_each(|s| *s = 0);
            self.generation = 1;
        }
        if self.cols > 0 {
            let (x0, x1, y0, y1) = span(self.cols, rect);
            for y in y0..=y1 {
                for bucket in &self.buckets[y * self.cols + x0..=y * self.cols + x1] {
                    for &i in bucket {
                        let (state, pos, r) = &self.moving[i as usize];
                        let seen = &mut self.stamp[i as usize];
                        if *seen != self.generation && rect.touches(*pos, *r) {
                            *seen = self.generation;
                            found.push(*state);
                        }
                    }
                }
            }
        }
        // Sorting plain integers (id above, position below) is about twice
        // as fast as sorting the entities by a key, and this sort is a
        // third of the encoding.
        self.keys.clear();
        self.keys
            .extend(found.iter().enumerate().map(|(i, e)| (e.id as u64) << 32 | i as u64));
        self.keys.sort_unstable();
        out.clear();
        out.extend(self.keys.iter().map(|&k| found[k as u32 as usize]));
    }
}

/// The bucket range a rectangle covers, clamped to the index.
fn span(cols: usize, rect: &Rect) -> (usize, usize, usize, usize) {
    let col = |v: f32| ((v / BUCKET).max(0.0) as usize).min(cols - 1);
    (col(rect.min.x), col(rect.max.x), col(rect.min.y), col(rect.max.y))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::Rules;

    /// What the index finds is exactly what testing every entity finds.
    #[test]
    fn the_index_finds_what_a_full_scan_finds() {
        let rules = Rules {
            world_size: 3000.0,
            pellets: 800,
            ..Rules::default()
        };
        let mut world = World::new(rules, 7);
        for i in 0..60 {
            world.add_player(&format!("bot {i}"), true);
        }
        let mut index = ViewIndex::default();
        let (mut got, mut want) = (Vec::new(), Vec::new());
        for tick in 0..120 {
            world.step();
            index.rebuild(&world);
            for (i, p) in world.players().values().enumerate() {
                let rect = view_rect(p.center, 1.0 + (i % 3) as f32 * 0.7 + tick as f32 * 0.001);
                index.visible(&world, &rect, &mut got);
                want.clear();
                world.pellets_in(&rect, |p| want.push(p.id));
                want.extend(
                    world
                        .cells()
                        .iter()
                        .filter(|c| rect.touches(c.pos, c.radius()))
                        .map(|c| c.id),
                );
                want.extend(
                    world
                        .blobs()
                        .iter()
                        .filter(|b| rect.touches(b.pos, EJECTED_RADIUS))
                        .map(|b| b.id),
                );
                want.sort_unstable();
                assert_eq!(got.iter().map(|e| e.id).collect::<Vec<_>>(), want, "tick {tick}");
            }
        }
    }

    #[test]
    fn quantize_rounds_and_saturates() {
        assert_eq!(quantize(0.0), 0);
        assert_eq!(quantize(-3.0), 0);
        assert_eq!(quantize(1.1), 4);
        assert_eq!(quantize(1.13), 5);
        assert_eq!(quantize(1.125), 5);
        assert_eq!(quantize(1e9), u16::MAX);
    }
}
