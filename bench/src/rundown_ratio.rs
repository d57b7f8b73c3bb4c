//! Part 1: the rundown guard's cost as a ratio to a bare atomic pair, from criterion's
//! estimates (`src/bin/rundown.rs` runs the benchmarks, this turns them into rows).
//!
//! Criterion writes `<output dir>/<group>/<benchmark>/new/estimates.json`; the figure used is
//! the median time per iteration (robust against the shared machine's hiccups), with its 95%
//! confidence interval.

use std::{fmt::Write as _, fs, io, path::Path};

use serde::Deserialize;

use crate::report::{Goal, Row};

/// The criterion group of part 1.
pub const GROUP: &str = "rundown";
/// Benchmark names in the group.
pub const BARE_UNCONTENDED: &str = "bare_uncontended";
/// See [`BARE_UNCONTENDED`].
pub const RUNDOWN_UNCONTENDED: &str = "rundown_uncontended";
/// See [`BARE_UNCONTENDED`].
pub const BARE_CONTENDED: &str = "bare_contended";
/// See [`BARE_UNCONTENDED`].
pub const RUNDOWN_CONTENDED: &str = "rundown_contended";
/// The goal for both ratios.
pub const GOAL: Goal = Goal::AtMost(1.5);

/// One benchmark's time per iteration, in nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Estimate {
    /// Median.
    pub median: f64,
    /// Lower bound of the median's 95% confidence interval.
    pub low: f64,
    /// Upper bound of it.
    pub high: f64,
}

#[derive(Deserialize)]
struct Interval {
    lower_bound: f64,
    upper_bound: f64,
}

#[derive(Deserialize)]
struct Statistic {
    point_estimate: f64,
    confidence_interval: Interval,
}

#[derive(Deserialize)]
struct Estimates {
    median: Statistic,
}

fn invalid(reason: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, reason)
}

impl Estimate {
    /// Parses criterion's `estimates.json`.
    ///
    /// # Errors
    /// Not JSON of that shape, or a median that is not a positive finite time inside its
    /// interval.
    pub fn parse(json: &str) -> io::Result<Self> {
        let estimates: Estimates =
            serde_json::from_str(json).map_err(|error| invalid(error.to_string()))?;
        let median = estimates.median;
        let estimate = Self {
            median: median.point_estimate,
            low: median.confidence_interval.lower_bound,
            high: median.confidence_interval.upper_bound,
        };
        let valid = estimate.median.is_finite()
            && estimate.median > 0.0
            && estimate.low <= estimate.median
            && estimate.median <= estimate.high;
        if valid {
            Ok(estimate)
        } else {
            Err(invalid(format!("implausible median estimate {estimate:?}")))
        }
    }

    /// Reads `<dir>/<GROUP>/<benchmark>/new/estimates.json`.
    ///
    /// # Errors
    /// The file is missing (the benchmark did not run) or invalid; the error names the file.
    pub fn read(dir: &Path, benchmark: &str) -> io::Result<Self> {
        let path = dir.join(GROUP).join(benchmark).join("new/estimates.json");
        fs::read_to_string(&path)
            .and_then(|json| Self::parse(&json))
            .map_err(|error| io::Error::new(error.kind(), format!("{}: {error}", path.display())))
    }
}

/// How much the contending thread actually ran while one contended benchmark was measured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Contention {
    /// Pairs the measured thread made (criterion's `iter_custom` samples, warm-up included).
    pub measured_pairs: u64,
    /// Of those, pairs made in samples during which the contender made progress.
    pub contended_pairs: u64,
    /// Pairs the contender made during the samples.
    pub contender_pairs: u64,
}

impl Contention {
    /// Records one sample of `pairs` measured pairs during which the contender made
    /// `contender_pairs`.
    pub const fn record(&mut self, pairs: u64, contender_pairs: u64) {
        self.measured_pairs = self.measured_pairs.saturating_add(pairs);
        if contender_pairs > 0 {
            self.contended_pairs = self.contended_pairs.saturating_add(pairs);
        }
        self.contender_pairs = self.contender_pairs.saturating_add(contender_pairs);
    }

    /// Share of the measured pairs made while the contender was seen running (0 without any).
    #[must_use]
    pub fn share(&self) -> f64 {
        if self.measured_pairs == 0 {
            0.0
        } else {
            ratio_of(self.contended_pairs, self.measured_pairs)
        }
    }

    fn describe(&self) -> String {
        let per_pair = if self.measured_pairs == 0 {
            0.0
        } else {
            ratio_of(self.contender_pairs, self.measured_pairs)
        };
        format!(
            "contender running during {:.0}% of measured pairs, made {per_pair:.2} pairs per measured pair",
            self.share() * 100.0
        )
    }
}

#[allow(clippy::cast_precision_loss)] // counts far below 2^52
fn ratio_of(numerator: u64, denominator: u64) -> f64 {
    numerator as f64 / denominator as f64
}

/// The ratio from paired rounds.
///
/// In each round one block of bare pairs and one block of rundown pairs were timed back to
/// back, so both saw the same machine; the figure is the median of the per-round ratios
/// (rundown time / bare time).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Paired {
    /// Median of the per-round ratios.
    pub median: f64,
    /// First quartile.
    pub q1: f64,
    /// Third quartile.
    pub q3: f64,
    /// Rounds used.
    pub rounds: usize,
    /// Rounds dropped (the contender was not seen running during both blocks).
    pub dropped: usize,
}

impl Paired {
    /// From the per-round ratios; non-finite or non-positive ratios count as dropped. `None`
    /// without any usable round.
    #[must_use]
    pub fn from_ratios(mut ratios: Vec<f64>, dropped: usize) -> Option<Self> {
        let all = ratios.len();
        ratios.retain(|r| r.is_finite() && *r > 0.0);
        if ratios.is_empty() {
            return None;
        }
        ratios.sort_by(f64::total_cmp);
        Some(Self {
            median: quantile(&ratios, 0.5),
            q1: quantile(&ratios, 0.25),
            q3: quantile(&ratios, 0.75),
            rounds: ratios.len(),
            dropped: dropped + (all - ratios.len()),
        })
    }

    fn describe(&self) -> String {
        format!(
            "median of {} paired rounds (IQR {:.2}..{:.2}; {} dropped)",
            self.rounds, self.q1, self.q3, self.dropped
        )
    }
}

/// Quantile `p` of sorted, non-empty `values` (linear interpolation between neighbours).
#[allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)] // indexes far below 2^52; `position` is in 0..len
fn quantile(values: &[f64], p: f64) -> f64 {
    let position = (values.len() - 1) as f64 * p.clamp(0.0, 1.0);
    let low = position.floor() as usize;
    let high = position.ceil() as usize;
    let (Some(&a), Some(&b)) = (values.get(low), values.get(high)) else {
        return f64::NAN;
    };
    (b - a).mul_add(position - position.floor(), a)
}

/// The four measurements of part 1.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Measured {
    /// `fetch_add` + `fetch_sub` on an atomic no one else touches.
    pub bare_uncontended: Estimate,
    /// `try_acquire` + `release` on a rundown no one else touches.
    pub rundown_uncontended: Estimate,
    /// The bare pair while a second thread makes the same pairs on the same atomic.
    pub bare_contended: Estimate,
    /// The rundown pair while a second thread makes the same pairs on the same rundown.
    pub rundown_contended: Estimate,
    /// The contender during `bare_contended`.
    pub bare_contention: Contention,
    /// The contender during `rundown_contended`.
    pub rundown_contention: Contention,
    /// Paired rounds without contender: the goal's figure.
    pub paired_uncontended: Paired,
    /// Paired rounds with the contender on the measured word: the goal's figure.
    pub paired_contended: Paired,
}

impl Measured {
    /// Reads the four estimates from criterion's output directory; the rest is given.
    ///
    /// # Errors
    /// As [`Estimate::read`].
    pub fn read(
        dir: &Path,
        (bare_contention, rundown_contention): (Contention, Contention),
        (paired_uncontended, paired_contended): (Paired, Paired),
    ) -> io::Result<Self> {
        Ok(Self {
            bare_uncontended: Estimate::read(dir, BARE_UNCONTENDED)?,
            rundown_uncontended: Estimate::read(dir, RUNDOWN_UNCONTENDED)?,
            bare_contended: Estimate::read(dir, BARE_CONTENDED)?,
            rundown_contended: Estimate::read(dir, RUNDOWN_CONTENDED)?,
            bare_contention,
            rundown_contention,
            paired_uncontended,
            paired_contended,
        })
    }

    /// The rows of part 1: four absolute times and the two ratios with the goal.
    #[must_use]
    pub fn rows(&self) -> Vec<Row> {
        let contended = "second thread making the same pairs on the same word";
        vec![
            time_row(
                "bare atomic inc+dec pair, uncontended",
                self.bare_uncontended,
                None,
            ),
            time_row(
                "rundown try_acquire+release, uncontended",
                self.rundown_uncontended,
                None,
            ),
            time_row(
                "bare atomic inc+dec pair, contended",
                self.bare_contended,
                Some(self.bare_contention.describe()),
            ),
            time_row(
                "rundown try_acquire+release, contended",
                self.rundown_contended,
                Some(self.rundown_contention.describe()),
            ),
            ratio_row(
                "rundown pair / bare pair, uncontended",
                self.paired_uncontended,
                self.rundown_uncontended.median / self.bare_uncontended.median,
                "",
            ),
            ratio_row(
                "rundown pair / bare pair, contended",
                self.paired_contended,
                self.rundown_contended.median / self.bare_contended.median,
                contended,
            ),
        ]
    }
}

fn time_row(metric: &str, estimate: Estimate, extra: Option<String>) -> Row {
    let mut note = format!(
        "median, 95% CI {:.2}..{:.2} ns",
        estimate.low, estimate.high
    );
    if let Some(extra) = extra {
        let _ = write!(note, "; {extra}");
    }
    Row::new(metric, estimate.median, "ns").with_note(note)
}

fn ratio_row(metric: &str, paired: Paired, criterion: f64, extra: &str) -> Row {
    let mut note = format!(
        "{}; ratio of criterion's medians {criterion:.2}",
        paired.describe()
    );
    if !extra.is_empty() {
        let _ = write!(note, "; {extra}");
    }
    Row::new(metric, paired.median, "x")
        .with_goal(GOAL)
        .with_note(note)
}

#[cfg(test)]
#[allow(clippy::float_cmp)] // the compared values are exact (small integers, binary fractions)
mod tests {
    use super::*;

    fn estimates_json(median: f64, low: f64, high: f64) -> String {
        format!(
            r#"{{"mean":{{"confidence_interval":{{"confidence_level":0.95,"lower_bound":1.0,"upper_bound":2.0}},"point_estimate":1.5,"standard_error":0.1}},
               "median":{{"confidence_interval":{{"confidence_level":0.95,"lower_bound":{low},"upper_bound":{high}}},"point_estimate":{median},"standard_error":0.1}},
               "median_abs_dev":{{"confidence_interval":{{"confidence_level":0.95,"lower_bound":0.0,"upper_bound":0.1}},"point_estimate":0.05,"standard_error":0.01}},
               "slope":null,
               "std_dev":{{"confidence_interval":{{"confidence_level":0.95,"lower_bound":0.0,"upper_bound":0.1}},"point_estimate":0.05,"standard_error":0.01}}}}"#
        )
    }

    fn estimate(median: f64) -> Estimate {
        Estimate {
            median,
            low: median * 0.9,
            high: median * 1.1,
        }
    }

    #[test]
    fn the_median_is_read_from_criterion_estimates() {
        let estimate = Estimate::parse(&estimates_json(12.5, 12.0, 13.25)).unwrap();
        assert_eq!(
            estimate,
            Estimate {
                median: 12.5,
                low: 12.0,
                high: 13.25
            }
        );
    }

    #[test]
    fn implausible_or_missing_estimates_are_errors() {
        assert!(Estimate::parse(&estimates_json(0.0, 0.0, 0.0)).is_err());
        assert!(Estimate::parse(&estimates_json(5.0, 6.0, 7.0)).is_err());
        assert!(Estimate::parse(r#"{"mean":{}}"#).is_err());
        let dir =
            std::env::temp_dir().join(format!("wskecho-rundown-missing-{}", std::process::id()));
        let error = Estimate::read(&dir, BARE_UNCONTENDED).unwrap_err();
        assert!(error.to_string().contains("bare_uncontended"), "{error}");
    }

    #[test]
    fn estimates_are_read_from_criterion_layout() {
        let dir =
            std::env::temp_dir().join(format!("wskecho-rundown-layout-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        for (name, median) in [
            (BARE_UNCONTENDED, 10.0),
            (RUNDOWN_UNCONTENDED, 12.0),
            (BARE_CONTENDED, 40.0),
            (RUNDOWN_CONTENDED, 80.0),
        ] {
            let path = dir.join(GROUP).join(name).join("new");
            fs::create_dir_all(&path).unwrap();
            fs::write(
                path.join("estimates.json"),
                estimates_json(median, median - 1.0, median + 1.0),
            )
            .unwrap();
        }
        let paired = Paired::from_ratios(vec![1.0], 0).unwrap();
        let measured = Measured::read(
            &dir,
            (Contention::default(), Contention::default()),
            (paired, paired),
        )
        .unwrap();
        assert_eq!(measured.rundown_contended.median, 80.0);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn paired_ratios_take_median_and_quartiles() {
        let paired = Paired::from_ratios(vec![5.0, 1.0, 4.0, 2.0, 3.0], 1).unwrap();
        assert_eq!((paired.median, paired.q1, paired.q3), (3.0, 2.0, 4.0));
        assert_eq!((paired.rounds, paired.dropped), (5, 1));
        let even = Paired::from_ratios(vec![1.0, 2.0], 0).unwrap();
        assert_eq!(even.median, 1.5);
        assert_eq!(Paired::from_ratios(vec![f64::INFINITY, 0.0], 0), None);
    }

    #[test]
    fn ratios_carry_the_goal() {
        let measured = Measured {
            bare_uncontended: estimate(10.0),
            rundown_uncontended: estimate(12.0),
            bare_contended: estimate(40.0),
            rundown_contended: estimate(80.0),
            bare_contention: {
                let mut contention = Contention::default();
                contention.record(75, 40);
                contention.record(25, 0);
                contention.record(0, 10);
                contention
            },
            rundown_contention: Contention::default(),
            paired_uncontended: Paired::from_ratios(vec![1.3, 1.1, 1.2], 0).unwrap(),
            paired_contended: Paired::from_ratios(vec![2.0, f64::NAN, 1.0, 3.0, 2.5], 4).unwrap(),
        };
        let rows = measured.rows();
        assert_eq!(rows.len(), 6);
        assert_eq!(rows[0].value, 10.0);
        assert_eq!(rows[0].goal, None);
        assert!(
            rows[2]
                .note
                .contains("75% of measured pairs, made 0.50 pairs"),
            "{}",
            rows[2].note
        );
        assert!((rows[4].value - 1.2).abs() < 1e-12);
        assert_eq!(rows[4].met, Some(true));
        assert!((rows[5].value - 2.25).abs() < 1e-12);
        assert_eq!(rows[5].met, Some(false));
        assert!(
            rows[5]
                .note
                .contains("median of 4 paired rounds (IQR 1.75..")
                && rows[5].note.contains("; 5 dropped)")
                && rows[5].note.contains("criterion's medians 2.00"),
            "{}",
            rows[5].note
        );
        assert_eq!(rows[5].goal, Some(GOAL));
    }
}
