//! Plane geometry for the simulation, in world units (f32).

use std::ops::{Add, AddAssign, Mul, Sub};

/// A point or a vector in the world plane.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct Vec2 {
    /// First coordinate, in world units; inside the world it lies in `0..=world_size`.
    pub x: f32,
    /// Second coordinate, in world units; inside the world it lies in `0..=world_size`.
    pub y: f32,
}

impl Vec2 {
    /// The origin, and "no boost" / "no steering" as a vector.
    pub const ZERO: Vec2 = Vec2 { x: 0.0, y: 0.0 };

    /// A vector from its components; `const` so it can build constants.
    pub const fn new(x: f32, y: f32) -> Vec2 {
        Vec2 { x, y }
    }

    /// Euclidean length; prefer [`Vec2::length_squared`] for comparisons (no square root).
    pub fn length(self) -> f32 {
        (self.x * self.x + self.y * self.y).sqrt()
    }

    /// Squared length: cheap, for comparing distances against a squared threshold.
    pub fn length_squared(self) -> f32 {
        self.x * self.x + self.y * self.y
    }

    /// The unit vector in this direction, or zero for a (near) zero vector.
    pub fn normalized(self) -> Vec2 {
        let len = self.length();
        if len < 1e-6 {
            Vec2::ZERO
        } else {
            Vec2::new(self.x / len, self.y / len)
        }
    }

    /// Euclidean distance between two points, in world units.
    pub fn distance(self, other: Vec2) -> f32 {
        (self - other).length()
    }
}

impl Add for Vec2 {
    type Output = Vec2;
    fn add(self, o: Vec2) -> Vec2 {
        Vec2::new(self.x + o.x, self.y + o.y)
    }
}

impl AddAssign for Vec2 {
    fn add_assign(&mut self, o: Vec2) {
        self.x += o.x;
        self.y += o.y;
    }
}

impl Sub for Vec2 {
    type Output = Vec2;
    fn sub(self, o: Vec2) -> Vec2 {
        Vec2::new(self.x - o.x, self.y - o.y)
    }
}

impl Mul<f32> for Vec2 {
    type Output = Vec2;
    fn mul(self, k: f32) -> Vec2 {
        Vec2::new(self.x * k, self.y * k)
    }
}

/// An axis-aligned rectangle: what a player sees.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rect {
    /// Corner with the smallest coordinates; may lie outside the world.
    pub min: Vec2,
    /// Corner with the largest coordinates; may lie outside the world.
    pub max: Vec2,
}

impl Rect {
    /// The rectangle centred on `center` extending `half_w` and `half_h` each way (not clamped).
    pub fn around(center: Vec2, half_w: f32, half_h: f32) -> Rect {
        Rect {
            min: Vec2::new(center.x - half_w, center.y - half_h),
            max: Vec2::new(center.x + half_w, center.y + half_h),
        }
    }

    /// Whether a circle at `p` with radius `r` touches the rectangle.
    pub fn touches(&self, p: Vec2, r: f32) -> bool {
        p.x + r >= self.min.x && p.x - r <= self.max.x && p.y + r >= self.min.y && p.y - r <= self.max.y
    }
}
