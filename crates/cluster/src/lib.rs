//! `volley cluster`: a whole distributed deployment on one machine, and the
//! means to prove it loses nothing when things fail.
//!
//! - [`cluster`]: PostgreSQL, a broker (Redis or NATS), N `volley serve`
//!   nodes and a proxy (`volley proxy`, HAProxy or nginx) as child
//!   processes on free loopback ports, each started once the one before is
//!   healthy, with a [`relay`] on every link a fault may cut; faults by name.
//! - the foreground `up`, the state file other terminals read, and the
//!   admin address (live page and API) they talk to.
//! - [`nemesis`]: a fault schedule drawn from a seed.
//! - [`workload`]: chat clients and game bots that record what they did
//!   and saw ([`history`]).
//! - [`checker`]: the verdict on a history, pure and tested with planted
//!   violations; [`report`]: Markdown and an SVG timeline.
//!
//! It drives the real binaries; none of the product's logic lives here.

mod admin;
pub mod checker;
pub mod cluster;
mod error;
pub mod history;
mod http;
pub mod nemesis;
mod process;
mod proxies;
pub mod relay;
pub mod report;
pub mod run;
pub mod spec;
pub mod state;
pub mod target;
pub mod up;
pub mod workload;

pub use error::Error;
