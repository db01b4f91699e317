//! Evaluating a compiled [`Node`] tree at one time: windows found by binary search, one
//! `Vec<Option<f64>>` per vector node, no allocation per sample.

use super::super::LOOKBACK_SECONDS;
use super::math::{self, Mean, Variance};
use super::node::{
    Aggregation, ElementFunction, Node, RangeFunction, ScalarNode, Selection, VectorBinary,
    VectorKind, VectorNode, VectorSet,
};
use super::{EvalError, Outcome, SeriesStore, SetOp, StoredSeries};

const LOOKBACK_MS: i64 = LOOKBACK_SECONDS * 1000;

type Values = Vec<Option<f64>>;

pub struct Evaluator<'a> {
    store: &'a SeriesStore,
    time_ms: i64,
}

/// Puts a result in its slot; two results with the same labels are an error, as in Prometheus.
fn put(out: &mut Values, slot: usize, value: f64) -> Result<(), EvalError> {
    if out[slot].is_some() {
        return Err(EvalError(
            "vector cannot contain metrics with the same labelset".to_string(),
        ));
    }
    out[slot] = Some(value);
    Ok(())
}

/// The latest sample at or before `at`, if it is at most the lookback old.
fn sample_at(series: &StoredSeries, at: i64) -> Option<f64> {
    let end = series.times.partition_point(|&t| t <= at);
    let i = end.checked_sub(1)?;
    (series.times[i] >= at - LOOKBACK_MS).then(|| series.values[i])
}

/// The samples in `[at - range, at]`, both ends included (Prometheus 2.x).
fn window(series: &StoredSeries, at: i64, range_ms: i64) -> (&[i64], &[f64]) {
    let start = series.times.partition_point(|&t| t < at - range_ms);
    let end = series.times.partition_point(|&t| t <= at);
    let end = end.max(start);
    (&series.times[start..end], &series.values[start..end])
}

impl<'a> Evaluator<'a> {
    pub fn new(store: &'a SeriesStore, time_ms: i64) -> Self {
        Self { store, time_ms }
    }

    pub fn outcome(&self, node: &Node) -> Result<Outcome, EvalError> {
        Ok(match node {
            Node::Scalar(scalar) => Outcome::Scalar(self.scalar(scalar)?),
            Node::Vector(vector) => Outcome::Vector(self.vector(vector)?),
            Node::Matrix => Outcome::Matrix,
        })
    }

    fn scalar(&self, node: &ScalarNode) -> Result<f64, EvalError> {
        Ok(match node {
            ScalarNode::Literal(value) => *value,
            ScalarNode::Time => self.time_ms as f64 / 1000.0,
            ScalarNode::Negate(inner) => -self.scalar(inner)?,
            ScalarNode::Binary { op, lhs, rhs } => {
                let (value, keep) = math::apply(*op, self.scalar(lhs)?, self.scalar(rhs)?);
                if op.is_comparison() {
                    if keep { 1.0 } else { 0.0 }
                } else {
                    value
                }
            }
            ScalarNode::OfVector(vector) => {
                let values = self.vector(vector)?;
                let mut present = values.iter().flatten();
                match (present.next(), present.next()) {
                    (Some(value), None) => *value,
                    _ => f64::NAN,
                }
            }
        })
    }

    fn optional_scalar(&self, node: &Option<ScalarNode>) -> Result<f64, EvalError> {
        node.as_ref().map_or(Ok(f64::NAN), |n| self.scalar(n))
    }

    fn vector(&self, node: &VectorNode) -> Result<Values, EvalError> {
        let mut out: Values = vec![None; node.slots.len()];
        match &node.kind {
            VectorKind::Instant(selection) => {
                let at = self.time_ms - selection.offset_ms;
                for (slot, &i) in selection.series.iter().enumerate() {
                    out[slot] = sample_at(&self.store.series[i], at);
                }
            }
            VectorKind::OverRange {
                function,
                selection,
                range_ms,
                parameter,
                slot_of,
            } => {
                let parameter = self.optional_scalar(parameter)?;
                self.over_range(
                    *function, selection, *range_ms, parameter, slot_of, &mut out,
                )?;
            }
            VectorKind::Element {
                function,
                input,
                arguments,
                slot_of,
            } => {
                let arguments = arguments
                    .iter()
                    .map(|a| self.scalar(a))
                    .collect::<Result<Vec<_>, _>>()?;
                if *function == ElementFunction::Clamp && arguments[1] < arguments[0] {
                    return Ok(out);
                }
                for (i, value) in self.vector(input)?.into_iter().enumerate() {
                    if let Some(value) = value {
                        put(&mut out, slot_of[i], element(*function, value, &arguments))?;
                    }
                }
            }
            VectorKind::WithScalar {
                op,
                return_bool,
                scalar_left,
                input,
                scalar,
                slot_of,
            } => {
                let scalar = self.scalar(scalar)?;
                for (i, value) in self.vector(input)?.into_iter().enumerate() {
                    let Some(value) = value else { continue };
                    let (lhs, rhs) = if *scalar_left {
                        (scalar, value)
                    } else {
                        (value, scalar)
                    };
                    let (mut result, keep) = math::apply(*op, lhs, rhs);
                    // A comparison keeps the vector's value, whichever side it is on.
                    if op.is_comparison() {
                        result = value;
                    }
                    if *return_bool {
                        result = if keep { 1.0 } else { 0.0 };
                    } else if !keep {
                        continue;
                    }
                    put(&mut out, slot_of[i], result)?;
                }
            }
            VectorKind::Aggregate {
                aggregation,
                input,
                parameter,
                group_of,
                groups,
            } => {
                let parameter = self.optional_scalar(parameter)?;
                let values = self.vector(input)?;
                aggregate(
                    *aggregation,
                    parameter,
                    &values,
                    group_of,
                    *groups,
                    &mut out,
                );
            }
            VectorKind::HistogramQuantile {
                quantile,
                input,
                bucket_of,
                slot_of_histogram,
            } => {
                let quantile = self.scalar(quantile)?;
                let mut buckets: Vec<Vec<(f64, f64)>> = vec![Vec::new(); slot_of_histogram.len()];
                for (i, value) in self.vector(input)?.into_iter().enumerate() {
                    if let (Some(count), Some((histogram, bound))) = (value, bucket_of[i]) {
                        buckets[histogram].push((bound, count));
                    }
                }
                for (histogram, mut buckets) in buckets.into_iter().enumerate() {
                    if !buckets.is_empty() {
                        let value = math::bucket_quantile(quantile, &mut buckets);
                        put(&mut out, slot_of_histogram[histogram], value)?;
                    }
                }
            }
            VectorKind::FromScalar(scalar) => out[0] = Some(self.scalar(scalar)?),
            VectorKind::Binary(binary) => self.binary(binary, &mut out)?,
            VectorKind::Set(set) => self.set(set, &mut out)?,
        }
        Ok(out)
    }

    fn over_range(
        &self,
        function: RangeFunction,
        selection: &Selection,
        range_ms: i64,
        parameter: f64,
        slot_of: &[usize],
        out: &mut Values,
    ) -> Result<(), EvalError> {
        let end = self.time_ms - selection.offset_ms;
        let start = end - range_ms;
        for (i, &series) in selection.series.iter().enumerate() {
            let (times, values) = window(&self.store.series[series], end, range_ms);
            if times.is_empty() {
                continue;
            }
            let result = match function {
                RangeFunction::Rate => {
                    math::extrapolated_rate(times, values, start, end, true, true)
                }
                RangeFunction::Increase => {
                    math::extrapolated_rate(times, values, start, end, true, false)
                }
                RangeFunction::Delta => {
                    math::extrapolated_rate(times, values, start, end, false, false)
                }
                RangeFunction::Irate => math::instant_value(times, values, true),
                RangeFunction::Idelta => math::instant_value(times, values, false),
                RangeFunction::AvgOverTime => {
                    let mut mean = Mean::new(values[0]);
                    values[1..].iter().for_each(|&v| mean.add(v));
                    Some(mean.value())
                }
                RangeFunction::SumOverTime => Some(values.iter().sum()),
                RangeFunction::MinOverTime => {
                    Some(values.iter().fold(values[0], |m, &v| math::keep_min(m, v)))
                }
                RangeFunction::MaxOverTime => {
                    Some(values.iter().fold(values[0], |m, &v| math::keep_max(m, v)))
                }
                RangeFunction::CountOverTime => Some(values.len() as f64),
                RangeFunction::LastOverTime => values.last().copied(),
                RangeFunction::QuantileOverTime => {
                    Some(math::quantile(parameter, &mut values.to_vec()))
                }
            };
            if let Some(result) = result {
                put(out, slot_of[i], result)?;
            }
        }
        Ok(())
    }

    fn binary(&self, binary: &VectorBinary, out: &mut Values) -> Result<(), EvalError> {
        let many = self.vector(&binary.many)?;
        let one = self.vector(&binary.one)?;
        let mut one_by_signature: Vec<Option<usize>> = vec![None; binary.signatures];
        for (o, value) in one.iter().enumerate() {
            if value.is_none() {
                continue;
            }
            let signature = binary.one_signature[o];
            if one_by_signature[signature].is_some() {
                let side = if binary.swapped { "left" } else { "right" };
                return Err(EvalError(format!(
                    "found duplicate series for the match group on the {side} hand-side of the operation; \
                     many-to-many matching not allowed: matching labels must be unique on one side"
                )));
            }
            one_by_signature[signature] = Some(o);
        }
        let mut matched = vec![false; binary.signatures];
        for (m, value) in many.iter().enumerate() {
            let Some(many_value) = *value else { continue };
            let signature = binary.many_signature[m];
            let Some(o) = one_by_signature[signature] else {
                continue;
            };
            let Some(one_value) = one[o] else { continue };
            let (lhs, rhs) = if binary.swapped {
                (one_value, many_value)
            } else {
                (many_value, one_value)
            };
            let (mut result, keep) = math::apply(binary.op, lhs, rhs);
            if binary.return_bool {
                result = if keep { 1.0 } else { 0.0 };
            } else if !keep {
                continue;
            }
            if binary.one_to_one {
                if matched[signature] {
                    return Err(EvalError(
                        "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)"
                            .to_string(),
                    ));
                }
                matched[signature] = true;
            }
            let Some(&(_, slot)) = binary.output[m].iter().find(|(one_slot, _)| *one_slot == o)
            else {
                continue;
            };
            if out[slot].is_some() && !binary.one_to_one {
                return Err(EvalError(
                    "multiple matches for labels: grouping labels must ensure unique label set"
                        .to_string(),
                ));
            }
            put(out, slot, result)?;
        }
        Ok(())
    }

    fn set(&self, set: &VectorSet, out: &mut Values) -> Result<(), EvalError> {
        let lhs = self.vector(&set.lhs)?;
        let rhs = self.vector(&set.rhs)?;
        let mut in_rhs = vec![false; set.signatures];
        for (j, value) in rhs.iter().enumerate() {
            if value.is_some() {
                in_rhs[set.rhs_signature[j]] = true;
            }
        }
        let mut in_lhs = vec![false; set.signatures];
        for (i, value) in lhs.iter().enumerate() {
            let Some(value) = *value else { continue };
            let signature = set.lhs_signature[i];
            in_lhs[signature] = true;
            let keep = match set.op {
                SetOp::And => in_rhs[signature],
                SetOp::Or => true,
                SetOp::Unless => !in_rhs[signature],
            };
            if keep {
                put(out, set.lhs_slot[i], value)?;
            }
        }
        if set.op == SetOp::Or {
            for (j, value) in rhs.iter().enumerate() {
                if let Some(value) = *value
                    && !in_lhs[set.rhs_signature[j]]
                {
                    put(out, set.rhs_slot[j], value)?;
                }
            }
        }
        Ok(())
    }
}

fn element(function: ElementFunction, value: f64, arguments: &[f64]) -> f64 {
    match function {
        ElementFunction::Negate => -value,
        ElementFunction::Abs => value.abs(),
        ElementFunction::Ceil => value.ceil(),
        ElementFunction::Floor => value.floor(),
        ElementFunction::Sqrt => value.sqrt(),
        ElementFunction::Exp => value.exp(),
        ElementFunction::Ln => value.ln(),
        ElementFunction::Round => {
            let nearest = arguments.first().copied().unwrap_or(1.0);
            // Prometheus multiplies by the inverse: fewer rounding surprises than dividing.
            let inverse = 1.0 / nearest;
            (value * inverse + 0.5).floor() / inverse
        }
        ElementFunction::Clamp => math::go_max(arguments[0], math::go_min(arguments[1], value)),
        ElementFunction::ClampMin => math::go_max(arguments[0], value),
        ElementFunction::ClampMax => math::go_min(arguments[0], value),
    }
}

/// One accumulator per group, fed in input order.
enum Accumulator {
    Sum(f64),
    Mean(Mean),
    Min(f64),
    Max(f64),
    Count(f64),
    Variance(Variance),
    Values(Vec<f64>),
}

fn aggregate(
    aggregation: Aggregation,
    parameter: f64,
    values: &Values,
    group_of: &[usize],
    groups: usize,
    out: &mut Values,
) {
    if matches!(aggregation, Aggregation::Topk | Aggregation::Bottomk) {
        let top = aggregation == Aggregation::Topk;
        select_k(top, parameter, values, group_of, groups, out);
        return;
    }
    let mut accumulators: Vec<Option<Accumulator>> = (0..groups).map(|_| None).collect();
    for (i, value) in values.iter().enumerate() {
        let Some(value) = *value else { continue };
        let accumulator = &mut accumulators[group_of[i]];
        match accumulator {
            None => {
                *accumulator = Some(match aggregation {
                    Aggregation::Sum => Accumulator::Sum(value),
                    Aggregation::Avg => Accumulator::Mean(Mean::new(value)),
                    Aggregation::Min => Accumulator::Min(value),
                    Aggregation::Max => Accumulator::Max(value),
                    Aggregation::Count | Aggregation::Group => Accumulator::Count(1.0),
                    Aggregation::Stddev | Aggregation::Stdvar => {
                        Accumulator::Variance(Variance::new(value))
                    }
                    Aggregation::Quantile | Aggregation::Topk | Aggregation::Bottomk => {
                        Accumulator::Values(vec![value])
                    }
                });
            }
            Some(Accumulator::Sum(sum)) => *sum += value,
            Some(Accumulator::Mean(mean)) => mean.add(value),
            Some(Accumulator::Min(min)) => *min = math::keep_min(*min, value),
            Some(Accumulator::Max(max)) => *max = math::keep_max(*max, value),
            Some(Accumulator::Count(count)) => *count += 1.0,
            Some(Accumulator::Variance(variance)) => variance.add(value),
            Some(Accumulator::Values(all)) => all.push(value),
        }
    }
    for (group, accumulator) in accumulators.into_iter().enumerate() {
        let Some(accumulator) = accumulator else {
            continue;
        };
        out[group] = Some(match accumulator {
            Accumulator::Sum(value) | Accumulator::Min(value) | Accumulator::Max(value) => value,
            Accumulator::Count(count) if aggregation == Aggregation::Group => count.min(1.0),
            Accumulator::Count(count) => count,
            Accumulator::Mean(mean) => mean.value(),
            Accumulator::Variance(variance) if aggregation == Aggregation::Stddev => {
                variance.variance().sqrt()
            }
            Accumulator::Variance(variance) => variance.variance(),
            Accumulator::Values(mut all) => math::quantile(parameter, &mut all),
        });
    }
}

/// `topk`/`bottomk`: the k largest (smallest) of each group keep their slots; NaN comes last.
fn select_k(
    top: bool,
    k: f64,
    values: &Values,
    group_of: &[usize],
    groups: usize,
    out: &mut Values,
) {
    // Go converts with int64(k): truncation toward zero.
    let k = if k.is_nan() { 0 } else { k as i64 };
    if k < 1 {
        return;
    }
    let mut members: Vec<Vec<(usize, f64)>> = vec![Vec::new(); groups];
    for (i, value) in values.iter().enumerate() {
        if let Some(value) = *value {
            members[group_of[i]].push((i, value));
        }
    }
    for mut group in members {
        group.sort_by(|a, b| {
            let order = match (a.1.is_nan(), b.1.is_nan()) {
                (true, true) => std::cmp::Ordering::Equal,
                (true, false) => std::cmp::Ordering::Greater,
                (false, true) => std::cmp::Ordering::Less,
                (false, false) if top => b.1.total_cmp(&a.1),
                (false, false) => a.1.total_cmp(&b.1),
            };
            order.then(a.0.cmp(&b.0))
        });
        for (i, value) in group.into_iter().take(k as usize) {
            out[i] = Some(value);
        }
    }
}
