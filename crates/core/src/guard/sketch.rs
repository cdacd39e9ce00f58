//! [`UnitSketch`]: a HyperLogLog sketch of the distinct units (targeting keys) seen, so
//! that counts of *units* merge across SDK instances, minutes and server replicas.
//!
//! # The sketch
//!
//! A unit's key is hashed to 64 bits (`murmur3_x64_128(utf8(key), seed 0)`, the first
//! 64 bits read little-endian). The top [`PRECISION`] bits choose one of
//! `m = 2^PRECISION` registers; the register keeps the largest *rank* seen, the number
//! of leading zeros of the remaining `q = 64 − PRECISION` bits plus one (1 to `q + 1`).
//! Merging two sketches takes the register-wise maximum: the merge of the sketches of
//! two sets is the sketch of their union, whatever the order, and merging a sketch
//! twice changes nothing — so a retried upload, or the same minute read twice, never
//! counts a unit twice.
//!
//! The cardinality is Ertl's improved estimator (O. Ertl, *New cardinality estimation
//! algorithms for HyperLogLog sketches*, 2017, algorithm 6), which needs no empirical
//! bias tables and is unbiased from one unit to far beyond 2^40.
//!
//! # Error
//!
//! The relative standard error of an estimate is about `1.04 / √m` ([`RELATIVE_ERROR`],
//! 0.81 % at `m = 16 384`); below a few thousand units the sketch is close to exact (the
//! estimate is then driven by the count of empty registers). The guard's statistics
//! add this error to their variances (`docs/guard.md`).
//!
//! # Wire form
//!
//! [`UnitSketch::encode`] writes the non-empty registers as `index << 8 | rank`
//! numbers in index order ([`SketchWire`]), so a sketch of a few units is a few numbers
//! and a full one at most `m` of them.

use serde::{Deserialize, Serialize};

/// Bits of the hash that choose the register.
pub const PRECISION: u32 = 14;
/// Registers: `2^PRECISION`.
pub const REGISTERS: usize = 1 << PRECISION;
/// The relative standard error of an estimate, `1.04 / √m`.
pub const RELATIVE_ERROR: f64 = 1.04 / 128.0;
/// The largest rank: `64 − PRECISION + 1`.
const MAX_RANK: u8 = (64 - PRECISION + 1) as u8;

/// The 64-bit hash of a unit's key (the module docs say which).
pub fn unit_hash(key: &str) -> u64 {
    mur3::murmurhash3_x64_128(key.as_bytes(), 0).0
}

/// The register and rank a hash sets.
pub fn register_of(hash: u64) -> (usize, u8) {
    let index = (hash >> (64 - PRECISION)) as usize;
    let rest = hash << PRECISION;
    // `rest` has PRECISION zero bits at the bottom; cap the rank at q + 1.
    let rank = (rest.leading_zeros() + 1).min(u32::from(MAX_RANK)) as u8;
    (index, rank)
}

/// A HyperLogLog sketch of distinct units (the module docs).
#[derive(Clone, PartialEq, Eq)]
pub struct UnitSketch {
    registers: Box<[u8; REGISTERS]>,
}

impl std::fmt::Debug for UnitSketch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnitSketch")
            .field("estimate", &self.estimate())
            .finish()
    }
}

impl Default for UnitSketch {
    fn default() -> Self {
        UnitSketch {
            registers: Box::new([0; REGISTERS]),
        }
    }
}

/// A sketch on the wire and in the stores: the non-empty registers as
/// `index << 8 | rank`, in index order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SketchWire(pub Vec<u32>);

/// A wire sketch that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SketchError {
    /// A register index beyond the sketch.
    #[error("register {index} is out of range (a sketch has {REGISTERS})")]
    Index {
        /// The index.
        index: u32,
    },
    /// A rank of 0 or above the largest possible.
    #[error("register {index} has rank {rank}; ranks are 1 to {MAX_RANK}")]
    Rank {
        /// The index.
        index: u32,
        /// The rank.
        rank: u32,
    },
}

impl UnitSketch {
    /// An empty sketch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a unit by its key.
    pub fn insert(&mut self, key: &str) {
        self.insert_hash(unit_hash(key));
    }

    /// Adds a unit by its [`unit_hash`].
    pub fn insert_hash(&mut self, hash: u64) {
        let (index, rank) = register_of(hash);
        self.set(index, rank);
    }

    /// Raises register `index` to `rank` (an index beyond the sketch is ignored).
    pub fn set(&mut self, index: usize, rank: u8) {
        if let Some(register) = self.registers.get_mut(index) {
            *register = (*register).max(rank.min(MAX_RANK));
        }
    }

    /// The sketch of the union.
    pub fn merge(&mut self, other: &UnitSketch) {
        for (mine, theirs) in self.registers.iter_mut().zip(other.registers.iter()) {
            *mine = (*mine).max(*theirs);
        }
    }

    /// Whether no unit was added.
    pub fn is_empty(&self) -> bool {
        self.registers.iter().all(|r| *r == 0)
    }

    /// The estimated number of distinct units (Ertl's improved estimator).
    pub fn estimate(&self) -> f64 {
        let mut histogram = [0u32; MAX_RANK as usize + 1];
        for register in self.registers.iter() {
            histogram[usize::from(*register)] += 1;
        }
        ertl_estimate(&histogram, REGISTERS)
    }

    /// The estimate rounded to a whole number of units.
    pub fn count(&self) -> u64 {
        self.estimate().round() as u64
    }

    /// The wire form (the module docs).
    pub fn encode(&self) -> SketchWire {
        SketchWire(
            self.registers
                .iter()
                .enumerate()
                .filter(|(_, rank)| **rank > 0)
                .map(|(index, rank)| ((index as u32) << 8) | u32::from(*rank))
                .collect(),
        )
    }

    /// Reads the wire form; a register out of range or a rank that cannot be is an error
    /// naming it. A register listed twice keeps its largest rank.
    pub fn decode(wire: &SketchWire) -> Result<UnitSketch, SketchError> {
        let mut sketch = UnitSketch::new();
        sketch.merge_wire(wire)?;
        Ok(sketch)
    }

    /// Merges a wire sketch in; on error nothing is changed.
    pub fn merge_wire(&mut self, wire: &SketchWire) -> Result<(), SketchError> {
        for entry in &wire.0 {
            let (index, rank) = (entry >> 8, entry & 0xff);
            if index as usize >= REGISTERS {
                return Err(SketchError::Index { index });
            }
            if rank == 0 || rank > u32::from(MAX_RANK) {
                return Err(SketchError::Rank { index, rank });
            }
        }
        for entry in &wire.0 {
            self.set((entry >> 8) as usize, (entry & 0xff) as u8);
        }
        Ok(())
    }
}

/// Ertl 2017, algorithm 6: the cardinality from the histogram of register values
/// (`histogram[k]` registers hold `k`, for `k` in `0..=q+1`) of `m` registers.
fn ertl_estimate(histogram: &[u32], m: usize) -> f64 {
    let m = m as f64;
    let q = histogram.len() - 2;
    let mut z = m * tau(1.0 - f64::from(histogram[q + 1]) / m);
    for k in (1..=q).rev() {
        z = 0.5 * (z + f64::from(histogram[k]));
    }
    z += m * sigma(f64::from(histogram[0]) / m);
    let alpha_infinity = 1.0 / (2.0 * std::f64::consts::LN_2);
    if z.is_infinite() {
        return 0.0;
    }
    alpha_infinity * m * m / z
}

/// `σ(x) = x + Σ_{k≥1} x^(2^k) 2^(k−1)`; `∞` at `x = 1` (an empty sketch).
fn sigma(x: f64) -> f64 {
    if x >= 1.0 {
        return f64::INFINITY;
    }
    let (mut x, mut y, mut z) = (x, 1.0, x);
    loop {
        x *= x;
        let previous = z;
        z += x * y;
        y += y;
        if z == previous {
            return z;
        }
    }
}

/// `τ(x) = (1 − x − Σ_{k≥1} (1 − x^(2^−k))² 2^−k) / 3`; 0 at `x` = 0 or 1.
fn tau(x: f64) -> f64 {
    if x <= 0.0 || x >= 1.0 {
        return 0.0;
    }
    let (mut x, mut y, mut z) = (x, 1.0, 1.0 - x);
    loop {
        x = x.sqrt();
        let previous = z;
        y *= 0.5;
        z -= (1.0 - x).powi(2) * y;
        if z == previous {
            return z / 3.0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sketch_of(range: std::ops::Range<u64>) -> UnitSketch {
        let mut s = UnitSketch::new();
        for i in range {
            s.insert(&format!("user-{i}"));
        }
        s
    }

    #[test]
    fn small_sets_are_counted_almost_exactly() {
        assert_eq!(UnitSketch::new().estimate(), 0.0);
        assert_eq!(sketch_of(0..1).count(), 1);
        for n in [10u64, 100, 1000] {
            let estimate = sketch_of(0..n).estimate();
            assert!(
                (estimate - n as f64).abs() <= (n as f64 * 0.01).max(1.0),
                "{n}: {estimate}"
            );
        }
    }

    #[test]
    fn large_sets_are_within_four_standard_errors() {
        for n in [20_000u64, 200_000] {
            let estimate = sketch_of(0..n).estimate();
            let error = (estimate / n as f64 - 1.0).abs();
            assert!(error < 4.0 * RELATIVE_ERROR, "{n}: {estimate}");
        }
    }

    #[test]
    fn merging_is_the_union_and_idempotent() {
        let (a, b) = (sketch_of(0..3000), sketch_of(2000..5000));
        let mut union = a.clone();
        union.merge(&b);
        union.merge(&b);
        assert_eq!(union, sketch_of(0..5000));
        let mut other_order = b.clone();
        other_order.merge(&a);
        assert_eq!(union, other_order);
    }

    #[test]
    fn the_wire_form_round_trips_and_names_what_is_wrong() {
        let s = sketch_of(0..500);
        let wire = s.encode();
        assert!(wire.0.len() <= 500);
        assert_eq!(UnitSketch::decode(&wire).unwrap(), s);
        assert_eq!(
            UnitSketch::decode(&SketchWire(vec![(REGISTERS as u32) << 8 | 1])),
            Err(SketchError::Index {
                index: REGISTERS as u32
            })
        );
        assert_eq!(
            UnitSketch::decode(&SketchWire(vec![7 << 8])),
            Err(SketchError::Rank { index: 7, rank: 0 })
        );
        let mut unchanged = s.clone();
        assert!(unchanged
            .merge_wire(&SketchWire(vec![1 << 8 | 60, 5 << 8]))
            .is_err());
        assert_eq!(unchanged, s);
    }

    #[test]
    fn ranks_are_capped() {
        let (index, rank) = register_of(0);
        assert_eq!((index, rank), (0, MAX_RANK));
        let (index, rank) = register_of(u64::MAX);
        assert_eq!((index, rank), (REGISTERS - 1, 1));
    }
}
