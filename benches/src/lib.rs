//! What the benchmarks share, written once: nearest-rank percentiles and the summary
//! line the load binaries print ([`percentiles`]).

pub mod fixtures;
pub mod percentiles;
