//! A compiled query: the PromQL tree with selectors resolved to recorded series and every
//! label computation done, so evaluating it at a time is arithmetic on indices.
//!
//! A vector node has a fixed list of output label sets ("slots"); evaluated, it gives one
//! `Option<f64>` per slot (None: no sample at that time).

use super::super::recording::Labels;
use super::{BinaryOp, SetOp};

pub enum Node {
    Scalar(ScalarNode),
    Vector(VectorNode),
    /// A bare range selector: only valid as a function argument.
    Matrix,
}

pub enum ScalarNode {
    Literal(f64),
    Time,
    Negate(Box<ScalarNode>),
    Binary {
        op: BinaryOp,
        lhs: Box<ScalarNode>,
        rhs: Box<ScalarNode>,
    },
    /// `scalar(v)`: the value of a one-element vector, else NaN.
    OfVector(Box<VectorNode>),
}

pub struct VectorNode {
    pub kind: VectorKind,
    pub slots: Vec<Labels>,
}

/// Recorded series chosen by a selector, and how far back it looks.
pub struct Selection {
    pub series: Vec<usize>,
    pub offset_ms: i64,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RangeFunction {
    Rate,
    Increase,
    Delta,
    Irate,
    Idelta,
    AvgOverTime,
    SumOverTime,
    MinOverTime,
    MaxOverTime,
    CountOverTime,
    LastOverTime,
    QuantileOverTime,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ElementFunction {
    Negate,
    Abs,
    Ceil,
    Floor,
    Sqrt,
    Exp,
    Ln,
    /// Second argument: round to the nearest multiple of it (default 1).
    Round,
    /// Arguments min, max.
    Clamp,
    ClampMin,
    ClampMax,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Aggregation {
    Sum,
    Avg,
    Min,
    Max,
    Count,
    Group,
    Stddev,
    Stdvar,
    Quantile,
    Topk,
    Bottomk,
}

pub enum VectorKind {
    /// Slot i is `selection.series[i]`.
    Instant(Selection),
    /// One result per selected series with samples in the window, into `slot_of[i]`.
    OverRange {
        function: RangeFunction,
        selection: Selection,
        range_ms: i64,
        parameter: Option<ScalarNode>,
        slot_of: Vec<usize>,
    },
    Element {
        function: ElementFunction,
        input: Box<VectorNode>,
        arguments: Vec<ScalarNode>,
        slot_of: Vec<usize>,
    },
    /// `vector op scalar` or `scalar op vector` (`scalar_left`).
    WithScalar {
        op: BinaryOp,
        return_bool: bool,
        scalar_left: bool,
        input: Box<VectorNode>,
        scalar: ScalarNode,
        slot_of: Vec<usize>,
    },
    /// Input slot i goes to group `group_of[i]`, the output slot; for topk/bottomk the output
    /// slots are the input's and `group_of` only says which compete.
    Aggregate {
        aggregation: Aggregation,
        input: Box<VectorNode>,
        parameter: Option<ScalarNode>,
        group_of: Vec<usize>,
        groups: usize,
    },
    HistogramQuantile {
        quantile: ScalarNode,
        input: Box<VectorNode>,
        /// Per input slot: its histogram and bucket bound, None without a parsable `le`.
        bucket_of: Vec<Option<(usize, f64)>>,
        /// Per histogram: its output slot.
        slot_of_histogram: Vec<usize>,
    },
    FromScalar(ScalarNode),
    Binary(Box<VectorBinary>),
    Set(Box<VectorSet>),
}

/// Vector-to-vector arithmetic or comparison. `many` is the left side unless the matching is
/// `group_right`, which swaps the sides; values are still computed as `left op right`.
pub struct VectorBinary {
    pub op: BinaryOp,
    pub return_bool: bool,
    pub one_to_one: bool,
    pub swapped: bool,
    pub many: VectorNode,
    pub one: VectorNode,
    pub many_signature: Vec<usize>,
    pub one_signature: Vec<usize>,
    pub signatures: usize,
    /// Per many-side slot: (one-side slot, output slot) for each one-side slot it can match.
    pub output: Vec<Vec<(usize, usize)>>,
}

pub struct VectorSet {
    pub op: SetOp,
    pub lhs: VectorNode,
    pub rhs: VectorNode,
    pub lhs_signature: Vec<usize>,
    pub rhs_signature: Vec<usize>,
    pub signatures: usize,
    pub lhs_slot: Vec<usize>,
    /// Output slots of the right-hand side (`or` only).
    pub rhs_slot: Vec<usize>,
}
