//! Order statistics of measured samples: percentiles of latencies, medians of repetitions,
//! and the growth of a cost with the number of connections.

/// The `p`-th percentile (`0.0 < p <= 100.0`) of `sorted` (ascending), by nearest rank.
///
/// That is the smallest sample such that at least `p` % of the samples are at most it.
/// `None` for no samples or `p` out of range.
#[must_use]
pub fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() || !(p > 0.0 && p <= 100.0) {
        return None;
    }
    #[allow(clippy::cast_precision_loss)] // sample counts are far below 2^52
    let rank = (p / 100.0 * sorted.len() as f64).ceil();
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // 1..=len
    let index = (rank as usize).clamp(1, sorted.len()) - 1;
    sorted.get(index).copied()
}

/// Median and tail of a set of latencies, in the samples' unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Latency {
    /// Number of samples.
    pub count: usize,
    /// 50th percentile.
    pub p50: u64,
    /// 99th percentile.
    pub p99: u64,
}

impl Latency {
    /// Summarizes `samples` (any order; sorted in place). `None` without samples.
    #[must_use]
    pub fn of(samples: &mut [u64]) -> Option<Self> {
        samples.sort_unstable();
        Some(Self {
            count: samples.len(),
            p50: percentile(samples, 50.0)?,
            p99: percentile(samples, 99.0)?,
        })
    }
}

/// The median of `values` (the mean of the two middle ones for an even count). `None` when
/// empty or when a value is NaN.
#[must_use]
pub fn median(values: &[f64]) -> Option<f64> {
    if values.iter().any(|v| v.is_nan()) {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    match sorted.len() {
        0 => None,
        n if n % 2 == 1 => sorted.get(mid).copied(),
        _ => Some((sorted.get(mid - 1)? + sorted.get(mid)?) / 2.0),
    }
}

/// How a cost grows from `small` to `large` units of load, relative to linear growth.
///
/// `(cost(large) / large) / (cost(small) / small)`: the cost per unit at the large load over
/// the cost per unit at the small one. A cost `a + b·n` with a fixed part `a >= 0` gives at
/// most 1; a cost growing faster than linearly gives more than 1 (`b·n²` gives
/// `large / small`). `None` unless both loads and both costs are positive.
#[must_use]
pub fn growth_over_linear(small: f64, cost_small: f64, large: f64, cost_large: f64) -> Option<f64> {
    let positive = |v: f64| v > 0.0 && v.is_finite();
    if !(positive(small) && positive(large) && positive(cost_small) && positive(cost_large)) {
        return None;
    }
    Some((cost_large / large) / (cost_small / small))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let sorted: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&sorted, 50.0), Some(50));
        assert_eq!(percentile(&sorted, 99.0), Some(99));
        assert_eq!(percentile(&sorted, 100.0), Some(100));
        assert_eq!(percentile(&sorted, 0.5), Some(1));
        // 99th of 10 samples: rank ceil(9.9) = 10, the largest.
        let ten: Vec<u64> = (10..20).collect();
        assert_eq!(percentile(&ten, 99.0), Some(19));
        assert_eq!(percentile(&ten, 50.0), Some(14));
        assert_eq!(percentile(&[7], 50.0), Some(7));
    }

    #[test]
    fn percentiles_refuse_nothing_and_bad_ranks() {
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&[1, 2], 0.0), None);
        assert_eq!(percentile(&[1, 2], 100.5), None);
        assert_eq!(percentile(&[1, 2], f64::NAN), None);
    }

    #[test]
    fn latency_sorts_its_samples() {
        let mut samples = vec![900, 5, 3, 1, 4, 2, 1000, 6, 7, 8];
        let latency = Latency::of(&mut samples).unwrap();
        assert_eq!(
            latency,
            Latency {
                count: 10,
                p50: 5,
                p99: 1000
            }
        );
        assert_eq!(Latency::of(&mut []), None);
    }

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[1.0, f64::NAN]), None);
    }

    #[test]
    fn linear_costs_stay_at_or_below_one_and_quadratic_ones_do_not() {
        // Purely linear: 0.05 ms per connection.
        let linear = growth_over_linear(100.0, 5.0, 1000.0, 50.0).unwrap();
        assert!((linear - 1.0).abs() < 1e-12, "{linear}");
        // A fixed part makes the per-connection cost fall with load.
        assert!(growth_over_linear(100.0, 7.0, 1000.0, 52.0).unwrap() < 1.0);
        // Quadratic: ten times the load, a hundred times the cost.
        let quadratic = growth_over_linear(100.0, 1.0, 1000.0, 100.0).unwrap();
        assert!((quadratic - 10.0).abs() < 1e-12, "{quadratic}");
        assert_eq!(growth_over_linear(0.0, 1.0, 1000.0, 2.0), None);
        assert_eq!(growth_over_linear(100.0, 0.0, 1000.0, 2.0), None);
    }
}
