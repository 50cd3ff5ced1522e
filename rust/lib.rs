//! kpod's native scheduler core: knapsack-constrained maximisation of a
//! modular-plus-concave-over-clusters objective, and the KPOD progressive
//! curriculum built on it. Pure Rust; the Python bindings live in `py.rs`
//! behind the `python` feature.
#![deny(missing_docs)]

pub mod curriculum;
pub mod error;
pub mod objective;
pub mod select;

#[cfg(feature = "python")]
mod py;

pub use curriculum::{Curriculum, CurriculumConfig, StageResult};
pub use error::{Error, Result};
pub use objective::{Concave, DenseClusters, Problem};
pub use select::{select, Algorithm, Options, Selection};
