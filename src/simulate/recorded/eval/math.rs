//! The numbers of PromQL functions and operators, as Prometheus 2.x computes them (its
//! `extrapolatedRate`, `instantValue`, `quantile`, `bucketQuantile`, Go's `math.Min`/`Max`).
//! Sample times are milliseconds, values f64; nothing here allocates per sample except the
//! sorts that quantiles need.

use super::BinaryOp;

/// `rate`, `increase` and `delta` over the samples of one window
/// `[range_end - range, range_end]` (ms). None when there are fewer than two samples.
pub fn extrapolated_rate(
    times: &[i64],
    values: &[f64],
    range_start: i64,
    range_end: i64,
    is_counter: bool,
    is_rate: bool,
) -> Option<f64> {
    let n = times.len();
    if n < 2 {
        return None;
    }
    let (first, last) = (values[0], values[n - 1]);
    let mut result = last - first;
    if is_counter {
        let mut previous = 0.0;
        for &value in values {
            if value < previous {
                result += previous;
            }
            previous = value;
        }
    }
    let mut to_start = (times[0] - range_start) as f64 / 1000.0;
    let to_end = (range_end - times[n - 1]) as f64 / 1000.0;
    let sampled = (times[n - 1] - times[0]) as f64 / 1000.0;
    let average_interval = sampled / (n - 1) as f64;
    if is_counter && result > 0.0 && first >= 0.0 {
        // A counter cannot go below zero: extrapolate back at most to where it would be zero.
        let to_zero = sampled * (first / result);
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    let threshold = average_interval * 1.1;
    let mut interval = sampled;
    interval += if to_start < threshold {
        to_start
    } else {
        average_interval / 2.0
    };
    interval += if to_end < threshold {
        to_end
    } else {
        average_interval / 2.0
    };
    result *= interval / sampled;
    if is_rate {
        result /= (range_end - range_start) as f64 / 1000.0;
    }
    Some(result)
}

/// `irate` and `idelta`: from the last two samples of the window.
pub fn instant_value(times: &[i64], values: &[f64], is_rate: bool) -> Option<f64> {
    let n = times.len();
    if n < 2 {
        return None;
    }
    let (previous, last) = (values[n - 2], values[n - 1]);
    let mut result = if is_rate && last < previous {
        last
    } else {
        last - previous
    };
    let interval = times[n - 1] - times[n - 2];
    if interval == 0 {
        return None;
    }
    if is_rate {
        result /= interval as f64 / 1000.0;
    }
    Some(result)
}

/// The mean as Prometheus 2.x accumulates it (incrementally, keeping infinities).
pub struct Mean {
    mean: f64,
    count: f64,
}

impl Mean {
    pub fn new(first: f64) -> Self {
        Self {
            mean: first,
            count: 1.0,
        }
    }

    pub fn add(&mut self, value: f64) {
        self.count += 1.0;
        if self.mean.is_infinite() {
            if value.is_infinite() && (self.mean > 0.0) == (value > 0.0) {
                return;
            }
            if !value.is_infinite() && !value.is_nan() {
                return;
            }
        }
        self.mean += value / self.count - self.mean / self.count;
    }

    pub fn value(&self) -> f64 {
        self.mean
    }
}

/// Variance by Welford's method, as the `stddev`/`stdvar` aggregations compute it.
pub struct Variance {
    mean: f64,
    sum_of_squares: f64,
    count: f64,
}

impl Variance {
    pub fn new(first: f64) -> Self {
        Self {
            mean: first,
            sum_of_squares: 0.0,
            count: 1.0,
        }
    }

    pub fn add(&mut self, value: f64) {
        self.count += 1.0;
        let delta = value - self.mean;
        self.mean += delta / self.count;
        self.sum_of_squares += delta * (value - self.mean);
    }

    pub fn variance(&self) -> f64 {
        self.sum_of_squares / self.count
    }
}

/// `max` as Go's aggregation loop keeps it: a NaN is replaced by any later value.
pub fn keep_max(current: f64, value: f64) -> f64 {
    if current < value || current.is_nan() {
        value
    } else {
        current
    }
}

pub fn keep_min(current: f64, value: f64) -> f64 {
    if current > value || current.is_nan() {
        value
    } else {
        current
    }
}

/// Go's `math.Max`: +Inf wins over NaN, NaN over anything else.
pub fn go_max(a: f64, b: f64) -> f64 {
    if a == f64::INFINITY || b == f64::INFINITY {
        f64::INFINITY
    } else if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if a == 0.0 && b == 0.0 {
        if a.is_sign_negative() { b } else { a }
    } else if a > b {
        a
    } else {
        b
    }
}

/// Go's `math.Min`: -Inf wins over NaN, NaN over anything else.
pub fn go_min(a: f64, b: f64) -> f64 {
    if a == f64::NEG_INFINITY || b == f64::NEG_INFINITY {
        f64::NEG_INFINITY
    } else if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if a == 0.0 && b == 0.0 {
        if a.is_sign_negative() { a } else { b }
    } else if a < b {
        a
    } else {
        b
    }
}

/// The φ-quantile of `values` (sorted in place), interpolating between the closest ranks:
/// `quantile` and `quantile_over_time`.
pub fn quantile(q: f64, values: &mut [f64]) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    values.sort_by(go_float_order);
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    values[lower as usize] * (1.0 - weight) + values[upper as usize] * weight
}

/// Go's `sort.Float64Slice` order: NaN first, then ascending.
fn go_float_order(a: &f64, b: &f64) -> std::cmp::Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        (false, false) => a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal),
    }
}

/// `histogram_quantile` over classic buckets `(upper bound, cumulative count)`: sorted,
/// buckets with the same bound merged, counts forced monotonic, linear interpolation inside
/// the bucket (from 0 in the first one when its bound is positive).
pub fn bucket_quantile(q: f64, buckets: &mut Vec<(f64, f64)>) -> f64 {
    if q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    buckets.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal));
    if buckets.last().is_none_or(|b| b.0 != f64::INFINITY) {
        return f64::NAN;
    }
    buckets.dedup_by(|later, kept| {
        let same = later.0 == kept.0;
        if same {
            kept.1 += later.1;
        }
        same
    });
    let mut max = f64::NEG_INFINITY;
    for bucket in buckets.iter_mut() {
        if bucket.1 > max {
            max = bucket.1;
        } else if bucket.1 < max {
            bucket.1 = max;
        }
    }
    if buckets.len() < 2 {
        return f64::NAN;
    }
    let observations = buckets[buckets.len() - 1].1;
    if observations == 0.0 {
        return f64::NAN;
    }
    let mut rank = q * observations;
    let last = buckets.len() - 1;
    let b = buckets[..last].partition_point(|bucket| bucket.1 < rank);
    if b == last {
        return buckets[last - 1].0;
    }
    if b == 0 && buckets[0].0 <= 0.0 {
        return buckets[0].0;
    }
    let (mut start, end, mut count) = (0.0, buckets[b].0, buckets[b].1);
    if b > 0 {
        start = buckets[b - 1].0;
        count -= buckets[b - 1].1;
        rank -= buckets[b - 1].1;
    }
    start + (end - start) * (rank / count)
}

/// `lhs op rhs` for one pair of samples: the value, and whether a comparison keeps it.
pub fn apply(op: BinaryOp, lhs: f64, rhs: f64) -> (f64, bool) {
    match op {
        BinaryOp::Add => (lhs + rhs, true),
        BinaryOp::Sub => (lhs - rhs, true),
        BinaryOp::Mul => (lhs * rhs, true),
        BinaryOp::Div => (lhs / rhs, true),
        BinaryOp::Mod => (lhs % rhs, true),
        BinaryOp::Pow => (lhs.powf(rhs), true),
        BinaryOp::Eq => (lhs, lhs == rhs),
        BinaryOp::Ne => (lhs, lhs != rhs),
        BinaryOp::Gt => (lhs, lhs > rhs),
        BinaryOp::Lt => (lhs, lhs < rhs),
        BinaryOp::Ge => (lhs, lhs >= rhs),
        BinaryOp::Le => (lhs, lhs <= rhs),
    }
}
