//! The game's constants, in one place so a room can be tuned (and tested)
//! without touching the step.

/// Tunables of one world. Units: world units, mass, ticks.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Rules {
    /// Side of the square world.
    pub world_size: f32,
    /// Pellets kept on the map (eaten ones respawn elsewhere).
    pub pellets: usize,
    /// Ticks per second; speeds are per second and scaled by it.
    pub tick_hz: u32,
    /// Mass of a new cell.
    pub start_mass: f32,
    /// A cell eats another cell of at least this many times less mass.
    pub eat_ratio: f32,
    /// Smallest mass that can split.
    pub min_split_mass: f32,
    /// Most cells one player may have.
    pub max_cells: usize,
    /// Seconds before split cells may merge again.
    pub merge_secs: f32,
    /// Mass an ejected blob carries.
    pub eject_mass: f32,
    /// Mass a cell loses by ejecting (more than the blob: ejecting costs).
    pub eject_cost: f32,
    /// Smallest mass that can eject.
    pub min_eject_mass: f32,
    /// Largest mass of one cell.
    pub max_cell_mass: f32,
    /// Fraction of mass above `decay_floor` lost per second.
    pub decay_per_sec: f32,
    /// Mass below which cells do not decay.
    pub decay_floor: f32,
    /// Speed of a cell of mass 1, in units per second (falls with mass).
    pub base_speed: f32,
    /// Seconds a dead bot waits before it respawns.
    pub bot_respawn_secs: f32,
}

impl Default for Rules {
    fn default() -> Rules {
        Rules {
            world_size: 6000.0,
            pellets: 3000,
            tick_hz: 30,
            start_mass: 10.0,
            eat_ratio: 1.25,
            min_split_mass: 36.0,
            max_cells: 16,
            merge_secs: 10.0,
            eject_mass: 12.0,
            eject_cost: 16.0,
            min_eject_mass: 32.0,
            max_cell_mass: 22_500.0,
            decay_per_sec: 0.002,
            decay_floor: 100.0,
            base_speed: 500.0,
            bot_respawn_secs: 2.0,
        }
    }
}

/// Radius of a cell (or blob) of this mass.
pub fn radius(mass: f32) -> f32 {
    10.0 * mass.sqrt()
}

/// Radius pellets are drawn and eaten with.
pub const PELLET_RADIUS: f32 = 6.0;

/// Radius of an ejected blob.
pub const EJECTED_RADIUS: f32 = 16.0;

impl Rules {
    /// Seconds per tick.
    pub fn dt(&self) -> f32 {
        1.0 / self.tick_hz as f32
    }

    /// Top speed of a cell in units per second: big cells are slow.
    pub fn speed(&self, mass: f32) -> f32 {
        self.base_speed * mass.max(1.0).powf(-0.22)
    }

    /// Per-tick factor by which a boost (split, eject) decays, the same per
    /// second at any tick rate.
    pub fn boost_decay(&self) -> f32 {
        0.02f32.powf(self.dt())
    }
}
