//! # zoo-data: data with exact densities, and exact metrics
//!
//! Shared by every ebm-zoo family (a family crate never imports another): the 2-D sets of
//! [`toy2d`] have closed-form densities, so [`grid::evaluate`] scores any model that defines an
//! energy exactly (held-out NLL, KL, total variation, mode weights) by quadrature on a grid;
//! [`digits`] ships the 8×8 UCI digits compiled into the crate, and [`features`] scores digit
//! samples by the Fréchet distance and k-NN precision/recall on a fixed classifier's features; [`embedded`] puts a 2-D set into a
//! higher dimension with its exact density; [`graphs`] ships Cora and CiteSeer (`.npz`) and reads
//! any graph in that format.

pub mod digits;
pub mod embedded;
pub mod features;
pub mod graphs;
pub mod grid;
pub mod toy2d;

pub use digits::{Digits, Split};
pub use embedded::Embedded;
pub use graphs::GraphData;
pub use grid::{Grid2d, GridDensity, GridMetrics, SampleMetrics, evaluate, sample_metrics};
pub use toy2d::{Toy2d, ToyDensity};
