//! Snapshots: what one player sees at one tick, as a delta against a
//! snapshot it acknowledged (or in full).

use super::codec::{Reader, Writer};
use super::{kind, DecodeError};

/// Positions and radii travel as integers in units of 1/`POSITION_SCALE`
/// world units (so a world up to 16,383 units fits a u16).
pub const POSITION_SCALE: f32 = 4.0;

/// What an entity is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Kind {
    /// Food of mass 1 that never moves.
    Pellet = 0,
    /// A player's cell; the only kind with an `owner`.
    Cell = 1,
    /// Ejected mass (12): slides, stops, and anyone may eat it.
    Blob = 2,
}

impl Kind {
    fn from_u8(v: u8) -> Result<Kind, DecodeError> {
        match v {
            0 => Ok(Kind::Pellet),
            1 => Ok(Kind::Cell),
            2 => Ok(Kind::Blob),
            _ => Err(DecodeError::Invalid("entity kind")),
        }
    }
}

/// One visible entity, quantized as sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntityState {
    /// Unique among all entities of the world (pellets, cells, blobs share one id space); never 0.
    pub id: u32,
    /// What the entity is; never changes for an id.
    pub kind: Kind,
    /// Centre x in world units times [`POSITION_SCALE`].
    pub x: u16,
    /// Centre y in world units times [`POSITION_SCALE`].
    pub y: u16,
    /// Radius in world units times [`POSITION_SCALE`].
    pub r: u16,
    /// The owning player of a cell (0 otherwise).
    pub owner: u32,
}

/// The per-player part of a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Header {
    /// The tick this snapshot shows; the client acknowledges it in its next input.
    pub tick: u32,
    /// The tick this snapshot is a delta against; 0 for a full snapshot.
    pub baseline: u32,
    /// The newest input of this player the world has applied.
    pub input_seq: u32,
    /// The player has cells; `false` after being eaten, until a respawn.
    pub alive: bool,
    /// The viewer spectates: no cells of its own, the view follows the heaviest player.
    pub spectator: bool,
    /// Total mass, rounded.
    pub mass: u32,
    /// Who ate the player, while dead (0: nobody or alive).
    pub killer: u32,
    /// Centre of the view, quantized like positions.
    pub view_x: u16,
    /// Centre of the view, y, quantized like positions.
    pub view_y: u16,
    /// Zoom of the view, in hundredths (100 = the base view).
    pub view_scale: u16,
}

/// A change to an entity the baseline holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Update {
    /// The entity changed; the baseline must hold it.
    pub id: u32,
    /// Change of `x` from the baseline, in quantized units (0: unchanged).
    pub dx: i32,
    /// Change of `y` from the baseline, in quantized units (0: unchanged).
    pub dy: i32,
    /// Change of `r` from the baseline, in quantized units (0: unchanged).
    pub dr: i32,
}

/// A decoded snapshot frame.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Snapshot {
    /// The viewer's own state and the tick and baseline of this delta.
    pub header: Header,
    /// Ids the baseline holds that left the view or the world, ascending.
    pub removed: Vec<u32>,
    /// Entities the baseline lacks, in full, ascending by id.
    pub created: Vec<EntityState>,
    /// Entities of the baseline that moved or changed size, ascending by id.
    pub updated: Vec<Update>,
}

const MASK_X: u8 = 1;
const MASK_Y: u8 = 2;
const MASK_R: u8 = 4;

/// Append a snapshot frame to `out`: `current` as a delta against `base`
/// (both sorted by id). For a full snapshot pass an empty `base` and
/// `header.baseline == 0`.
pub fn encode_snapshot(out: &mut Vec<u8>, header: &Header, base: &[EntityState], current: &[EntityState]) {
    SnapshotEncoder::default().encode(out, header, base, current);
}

/// [`encode_snapshot`] with its working lists kept between calls: a server
/// encodes a snapshot per viewer per tick, and three allocations each were
/// a tenth of that work.
#[derive(Debug, Default)]
pub struct SnapshotEncoder {
    removed: Vec<u32>,
    created: Vec<EntityState>,
    changed: Vec<(EntityState, EntityState)>,
}

impl SnapshotEncoder {
    /// Append a snapshot frame to `out`, as [`encode_snapshot`] does.
    pub fn encode(&mut self, out: &mut Vec<u8>, header: &Header, base: &[EntityState], current: &[EntityState]) {
        let SnapshotEncoder {
            removed,
            created,
            changed,
        } = self;
        removed.clear();
        created.clear();
        changed.clear();
        encode_into(out, header, base, current, removed, created, changed);
    }
}

fn encode_into(
    out: &mut Vec<u8>,
    header: &Header,
    base: &[EntityState],
    current: &[EntityState],
    removed: &mut Vec<u32>,
    created: &mut Vec<EntityState>,
    changed: &mut Vec<(EntityState, EntityState)>,
) {
    let mut w = Writer {
        buf: std::mem::take(out),
    };
    w.u8(kind::SNAPSHOT);
    w.varint(header.tick);
    w.varint(header.baseline);
    w.varint(header.input_seq);
    w.u8(header.alive as u8 | (header.spectator as u8) << 1);
    w.varint(header.mass);
    w.varint(header.killer);
    w.u16(header.view_x);
    w.u16(header.view_y);
    w.u16(header.view_scale);

    // One merge walk sorts every entity into removed, created or changed.
    let (mut i, mut j) = (0, 0);
    while i < base.len() || j < current.len() {
        match (base.get(i), current.get(j)) {
            (Some(b), Some(c)) if b.id == c.id => {
                if b.x != c.x || b.y != c.y || b.r != c.r {
                    changed.push((*b, *c));
                }
                i += 1;
                j += 1;
            }
            (Some(b), Some(c)) if b.id < c.id => {
                removed.push(b.id);
                i += 1;
            }
            (Some(b), None) => {
                removed.push(b.id);
                i += 1;
            }
            (_, Some(c)) => {
                created.push(*c);
                j += 1;
            }
            (None, None) => break,
        }
    }
    w.varint(removed.len() as u32);
    let mut last = 0;
    for &id in removed.iter() {
        w.varint(id - last);
        last = id;
    }
    w.varint(created.len() as u32);
    let mut last = 0;
    for c in created.iter() {
        w.varint(c.id - last);
        last = c.id;
        w.u8(c.kind as u8);
        w.u16(c.x);
        w.u16(c.y);
        w.varint(c.r as u32);
        if c.kind == Kind::Cell {
            w.varint(c.owner);
        }
    }
    w.varint(changed.len() as u32);
    let mut last = 0;
    for (b, c) in changed.iter() {
        w.varint(c.id - last);
        last = c.id;
        let mask = ((b.x != c.x) as u8 * MASK_X) | ((b.y != c.y) as u8 * MASK_Y) | ((b.r != c.r) as u8 * MASK_R);
        w.u8(mask);
        if mask & MASK_X != 0 {
            w.zigzag(c.x as i32 - b.x as i32);
        }
        if mask & MASK_Y != 0 {
            w.zigzag(c.y as i32 - b.y as i32);
        }
        if mask & MASK_R != 0 {
            w.zigzag(c.r as i32 - b.r as i32);
        }
    }
    *out = w.buf;
}

/// Reads strictly increasing ids written as differences.
fn next_id(r: &mut Reader<'_>, last: &mut u32) -> Result<u32, DecodeError> {
    let delta = r.varint()?;
    if delta == 0 {
        return Err(DecodeError::Invalid("ids must increase"));
    }
    *last = last.checked_add(delta).ok_or(DecodeError::Invalid("id overflow"))?;
    Ok(*last)
}

impl Snapshot {
    /// Read a snapshot frame; apply it with [`apply`] against the baseline its header names.
    pub fn decode(frame: &[u8]) -> Result<Snapshot, DecodeError> {
        let mut r = Reader::new(frame);
        match r.u8().map_err(|_| DecodeError::Empty)? {
            kind::SNAPSHOT => {}
            other => return Err(DecodeError::UnknownType(other)),
        }
        let tick = r.varint()?;
        let baseline = r.varint()?;
        let input_seq = r.varint()?;
        let flags = r.u8()?;
        if flags & !3 != 0 {
            return Err(DecodeError::Invalid("snapshot flags"));
        }
        let header = Header {
            tick,
            baseline,
            input_seq,
            alive: flags & 1 != 0,
            spectator: flags & 2 != 0,
            mass: r.varint()?,
            killer: r.varint()?,
            view_x: r.u16()?,
            view_y: r.u16()?,
            view_scale: r.u16()?,
        };
        let n = r.count(1)?;
        let mut removed = Vec::with_capacity(n);
        let mut last = 0;
        for _ in 0..n {
            removed.push(next_id(&mut r, &mut last)?);
        }
        let n = r.count(7)?;
        let mut created = Vec::with_capacity(n);
        let mut last = 0;
        for _ in 0..n {
            let id = next_id(&mut r, &mut last)?;
            let kind = Kind::from_u8(r.u8()?)?;
            let x = r.u16()?;
            let y = r.u16()?;
            let radius = u16::try_from(r.varint()?).map_err(|_| DecodeError::Invalid("radius"))?;
            let owner = if kind == Kind::Cell { r.varint()? } else { 0 };
            created.push(EntityState {
                id,
                kind,
                x,
                y,
                r: radius,
                owner,
            });
        }
        let n = r.count(2)?;
        let mut updated = Vec::with_capacity(n);
        let mut last = 0;
        for _ in 0..n {
            let id = next_id(&mut r, &mut last)?;
            let mask = r.u8()?;
            if mask == 0 || mask & !(MASK_X | MASK_Y | MASK_R) != 0 {
                return Err(DecodeError::Invalid("update mask"));
            }
            let mut field = |bit: u8| -> Result<i32, DecodeError> {
                if mask & bit != 0 {
                    r.zigzag()
                } else {
                    Ok(0)
                }
            };
            let (dx, dy, dr) = (field(MASK_X)?, field(MASK_Y)?, field(MASK_R)?);
            updated.push(Update { id, dx, dy, dr });
        }
        r.finish()?;
        Ok(Snapshot {
            header,
            removed,
            created,
            updated,
        })
    }
}

fn offset(v: u16, d: i32) -> Result<u16, DecodeError> {
    u16::try_from(v as i32 + d).map_err(|_| DecodeError::Invalid("delta out of range"))
}

/// The entities of `snapshot` given the baseline it refers to (sorted by
/// id; empty for a full snapshot). Fails if the delta does not fit the
/// baseline, which means the client holds the wrong one.
pub fn apply(base: &[EntityState], snapshot: &Snapshot) -> Result<Vec<EntityState>, DecodeError> {
    let mut out: Vec<EntityState> = Vec::with_capacity(base.len() + snapshot.created.len());
    let mut removed = snapshot.removed.iter().peekable();
    let mut updated = snapshot.updated.iter().peekable();
    for e in base {
        if removed.peek().is_some_and(|&&id| id == e.id) {
            removed.next();
            continue;
        }
        let mut e = *e;
        if let Some(u) = updated.peek().filter(|u| u.id == e.id) {
            e.x = offset(e.x, u.dx)?;
            e.y = offset(e.y, u.dy)?;
            e.r = offset(e.r, u.dr)?;
            updated.next();
        }
        if let Some(&&id) = removed.peek().filter(|&&&id| id < e.id) {
            return Err(DecodeError::UnknownEntity(id));
        }
        if let Some(u) = updated.peek().filter(|u| u.id < e.id) {
            return Err(DecodeError::UnknownEntity(u.id));
        }
        out.push(e);
    }
    if let Some(&id) = removed.next() {
        return Err(DecodeError::UnknownEntity(id));
    }
    if let Some(u) = updated.next() {
        return Err(DecodeError::UnknownEntity(u.id));
    }
    // Merge the created ones in; they must be new.
    let kept = out.len();
    out.extend_from_slice(&snapshot.created);
    out.sort_unstable_by_key(|e| e.id);
    if out.windows(2).any(|w| w[0].id == w[1].id) {
        return Err(DecodeError::Invalid("created entity already exists"));
    }
    debug_assert_eq!(out.len(), kept + snapshot.created.len());
    Ok(out)
}
