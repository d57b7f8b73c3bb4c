//! Part 2's arithmetic: the core's share of a callgrind profile, and per-cycle figures from
//! two runs of different lengths.

use crate::{callgrind::Profile, echo_step::is_test_double};

/// libc's memory fill and copy routines (`__memset_avx2_unaligned_erms`, `memcpy`, ...).
#[must_use]
pub fn is_copy(function: &str) -> bool {
    let name = function.trim_start_matches('_');
    ["memset", "memcpy", "memmove"]
        .iter()
        .any(|routine| name.starts_with(routine))
}

/// What one callgrind run collected inside the toggled entries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Count {
    /// Instructions of the core: everything collected minus `double` and `copy`.
    pub core: u64,
    /// Instructions in the WSK double and the platform ([`is_test_double`]) and below.
    pub double: u64,
    /// Instructions in memset/memcpy/memmove called by the core (not those the double runs).
    pub copy: u64,
    /// Calls from the core into the double.
    pub double_calls: u64,
    /// Instructions in memset/memcpy/memmove called by functions both the core and the double
    /// reach: neither side's for sure (a measurement with any is refused).
    pub shared_copy: u64,
}

impl Count {
    /// Splits a profile into the core's, the double's and the copies' instructions.
    #[must_use]
    pub fn of(profile: &Profile) -> Self {
        let total = profile.total();
        let double = profile.excluded(is_test_double);
        let inside = profile.run_only_by(is_test_double);
        let copy = profile.called_from_outside(&inside, is_copy);
        Self {
            core: total.saturating_sub(double + copy),
            double,
            copy,
            double_calls: profile.calls_into(is_test_double),
            shared_copy: profile.shared_calls_into(&inside, is_test_double, is_copy),
        }
    }
}

/// Per-cycle figures from a run of `short.0` cycles and one of `long.0` cycles.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PerCycle {
    /// Core instructions per cycle.
    pub core: f64,
    /// Double instructions per cycle.
    pub double: f64,
    /// memset/memcpy instructions per cycle.
    pub copy: f64,
    /// Core instructions that do not scale with the cycles (should be about 0: the entries
    /// only run in cycles).
    pub fixed: f64,
}

impl PerCycle {
    /// The difference of the two runs over the difference of their cycles. Each cycle must
    /// have made `calls_per_cycle` calls into the double: otherwise its functions were not
    /// recognized in the profile (and would be counted as the core's).
    ///
    /// # Errors
    /// The runs are not of increasing length, or the calls into the double do not add up.
    #[allow(clippy::cast_precision_loss)] // instruction counts far below 2^52
    pub fn from_runs(
        short: (u64, Count),
        long: (u64, Count),
        calls_per_cycle: u64,
    ) -> Result<Self, String> {
        let ((n1, c1), (n2, c2)) = (short, long);
        let Some(cycles) = n2.checked_sub(n1).filter(|&d| d > 0) else {
            return Err(format!(
                "runs of {n1} and {n2} cycles: the second must be longer"
            ));
        };
        let calls = c2.double_calls.saturating_sub(c1.double_calls);
        if Some(calls) != calls_per_cycle.checked_mul(cycles) {
            return Err(format!(
                "{calls} calls into the WSK double over {cycles} cycles, expected \
                 {calls_per_cycle} per cycle: its functions are not recognized in the profile"
            ));
        }
        let per = |a: u64, b: u64| (b as f64 - a as f64) / cycles as f64;
        let core = per(c1.core, c2.core);
        Ok(Self {
            core,
            double: per(c1.double, c2.double),
            copy: per(c1.copy, c2.copy),
            fixed: core.mul_add(-(n1 as f64), c1.core as f64),
        })
    }
}

#[cfg(test)]
#[allow(clippy::float_cmp)] // exact small values
mod tests {
    use super::*;
    use crate::callgrind::parse;

    /// A profile of `cycles` cycles: 300 core + 40 in the double's send (+10 in its lock, +8
    /// in a copy it makes) per cycle, 20 core and 64 of memset once.
    fn profile(cycles: u64) -> Profile {
        let core = 300 * cycles + 20;
        let send_self = 40 * cycles;
        let lock = 10 * cycles;
        let copy = 8 * cycles;
        parse(&format!(
            "events: Ir\n\
             fn=(1) wskecho_bench::echo_step::core_step\n0 {core}\n\
             cfn=(2) <wsk_client::testing::provider::calls::TestProvider as wsk_client::provider::Provider>::send\n\
             calls={cycles} 0\n0 {}\n\
             cfn=(3) __memset_avx2_unaligned_erms\ncalls=1 0\n0 64\n\
             fn=(2)\n0 {send_self}\ncfn=(4) std::sync::Mutex<T>::lock\ncalls={cycles} 0\n0 {lock}\n\
             cfn=(5) __memcpy_avx_unaligned_erms\ncalls={cycles} 0\n0 {copy}\n\
             fn=(4)\n0 {lock}\nfn=(3)\n0 64\nfn=(5)\n0 {copy}\n",
            send_self + lock + copy
        ))
        .unwrap()
    }

    #[test]
    fn copies_are_told_from_other_functions() {
        assert!(is_copy("__memset_avx2_unaligned_erms"));
        assert!(is_copy("memcpy"));
        assert!(is_copy("__memmove_avx_unaligned_erms"));
        assert!(!is_copy("wsk_client::socket::Socket<P>::post"));
        assert!(!is_copy("mem::replace"));
    }

    #[test]
    fn a_profile_splits_into_core_double_and_copy() {
        let count = Count::of(&profile(10));
        assert_eq!(
            count,
            Count {
                core: 3020,
                double: 580,
                copy: 64,
                double_calls: 10,
                shared_copy: 0,
            }
        );
    }

    #[test]
    fn per_cycle_figures_are_differences() {
        let per = PerCycle::from_runs(
            (10, Count::of(&profile(10))),
            (50, Count::of(&profile(50))),
            1,
        )
        .unwrap();
        assert_eq!(per.core, 300.0);
        assert_eq!(per.double, 58.0);
        assert_eq!(per.copy, 0.0);
        assert_eq!(per.fixed, 20.0);
    }

    #[test]
    fn unrecognized_double_or_bad_runs_are_errors() {
        let short = (10, Count::of(&profile(10)));
        let long = (50, Count::of(&profile(50)));
        let error = PerCycle::from_runs(short, long, 2).unwrap_err();
        assert!(error.contains("not recognized"), "{error}");
        assert!(PerCycle::from_runs(long, short, 1).is_err());
        assert!(PerCycle::from_runs(short, short, 1).is_err());
    }
}
