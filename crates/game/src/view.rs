//! Interest management: the entities one player is sent, quantized.

use crate::protocol::{EntityState, Kind, POSITION_SCALE};
use crate::sim::{radius, Rect, Vec2, World, EJECTED_RADIUS, PELLET_RADIUS, VIEW_HALF_HEIGHT, VIEW_HALF_WIDTH};

/// Extra border around the view, so entities entering at the edge are
/// already known when they become visible.
const MARGIN: f32 = 1.1;

pub(crate) fn quantize(v: f32) -> u16 {
    (v * POSITION_SCALE).round().clamp(0.0, u16::MAX as f32) as u16
}

/// The rectangle a view centred at `center` with zoom `scale` covers.
pub(crate) fn view_rect(center: Vec2, scale: f32) -> Rect {
    Rect::around(
        center,
        VIEW_HALF_WIDTH * scale * MARGIN,
        VIEW_HALF_HEIGHT * scale * MARGIN,
    )
}

/// Fill `out` with every entity touching the view, sorted by id.
pub(crate) fn visible(world: &World, rect: &Rect, out: &mut Vec<EntityState>) {
    out.clear();
    world.pellets_in(rect, |p| {
        out.push(EntityState {
            id: p.id,
            kind: Kind::Pellet,
            x: quantize(p.pos.x),
            y: quantize(p.pos.y),
            r: quantize(PELLET_RADIUS),
            owner: 0,
        })
    });
    for c in world.cells() {
        let r = radius(c.mass);
        if rect.touches(c.pos, r) {
            out.push(EntityState {
                id: c.id,
                kind: Kind::Cell,
                x: quantize(c.pos.x),
                y: quantize(c.pos.y),
                r: quantize(r),
                owner: c.owner,
            });
        }
    }
    for b in world.blobs() {
        if rect.touches(b.pos, EJECTED_RADIUS) {
            out.push(EntityState {
                id: b.id,
                kind: Kind::Blob,
                x: quantize(b.pos.x),
                y: quantize(b.pos.y),
                r: quantize(EJECTED_RADIUS),
                owner: 0,
            });
        }
    }
    out.sort_unstable_by_key(|e| e.id);
}
