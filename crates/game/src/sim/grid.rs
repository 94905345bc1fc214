//! The broad phase: a uniform grid of buckets over the square world, so a
//! query touches the entities near a place instead of all of them.

use super::geom::{Rect, Vec2};

/// Buckets of `u32` keys (indices into the caller's storage).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Grid {
    cell: f32,
    cols: usize,
    buckets: Vec<Vec<u32>>,
}

impl Grid {
    /// A grid over `[0, size)²` with square buckets of side `cell`.
    pub fn new(size: f32, cell: f32) -> Grid {
        let cols = ((size / cell).ceil() as usize).max(1);
        Grid {
            cell,
            cols,
            buckets: vec![Vec::new(); cols * cols],
        }
    }

    fn col(&self, v: f32) -> usize {
        ((v / self.cell).max(0.0) as usize).min(self.cols - 1)
    }

    /// The bucket range a rectangle covers, clamped to the grid.
    fn span(&self, rect: &Rect) -> (usize, usize, usize, usize) {
        (
            self.col(rect.min.x),
            self.col(rect.max.x),
            self.col(rect.min.y),
            self.col(rect.max.y),
        )
    }

    /// The shape matches a world of `size` and every key is below `keys`:
    /// what a grid read from a checkpoint must satisfy before a query
    /// indexes with it.
    pub fn valid(&self, size: f32, keys: usize) -> bool {
        self.cell > 0.0
            && self.cols == ((size / self.cell).ceil() as usize).max(1)
            && self.cols.checked_mul(self.cols) == Some(self.buckets.len())
            && self.buckets.iter().flatten().all(|&k| (k as usize) < keys)
    }

    /// Empty every bucket, keeping their allocations for the next rebuild.
    pub fn clear(&mut self) {
        for bucket in &mut self.buckets {
            bucket.clear();
        }
    }

    /// Put a point entity in its one bucket.
    pub fn insert_point(&mut self, key: u32, p: Vec2) {
        let i = self.col(p.y) * self.cols + self.col(p.x);
        self.buckets[i].push(key);
    }

    /// Take a point entity out of its bucket (it must be at the same place).
    pub fn remove_point(&mut self, key: u32, p: Vec2) {
        let i = self.col(p.y) * self.cols + self.col(p.x);
        if let Some(at) = self.buckets[i].iter().position(|&k| k == key) {
            self.buckets[i].swap_remove(at);
        }
    }

    /// Put a circle in every bucket its bounding box covers; a query may then
    /// see it more than once.
    pub fn insert_circle(&mut self, key: u32, p: Vec2, r: f32) {
        let (x0, x1, y0, y1) = self.span(&Rect::around(p, r, r));
        for y in y0..=y1 {
            for x in x0..=x1 {
                self.buckets[y * self.cols + x].push(key);
            }
        }
    }

    /// Every key in the buckets the rectangle covers (point entities once
    /// each; circles possibly several times).
    pub fn query(&self, rect: &Rect, mut visit: impl FnMut(u32)) {
        let (x0, x1, y0, y1) = self.span(rect);
        for y in y0..=y1 {
            for bucket in &self.buckets[y * self.cols + x0..=y * self.cols + x1] {
                for &key in bucket {
                    visit(key);
                }
            }
        }
    }
}
