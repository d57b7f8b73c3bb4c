//! Part 1: one rundown `try_acquire` + `release` pair against a bare atomic increment +
//! decrement pair (the limit), uncontended and with a second thread hammering the same word.
//!
//! Criterion (as a library, in benchmark mode) runs the four benchmarks into
//! `<bench dir>/criterion` for the absolute times. The goal's ratios come from paired rounds
//! measured right after: short blocks of bare pairs and of rundown pairs timed back to back
//! (alternating which goes first), the contender switching to whichever object is measured;
//! the median of the per-round ratios cancels the shared machine's drift. Everything is written
//! as part `1-rundown` (module `wskecho_bench::rundown_ratio`).
//!
//! A program like the other parts rather than a `cargo bench` target, so that scripts/bench
//! builds and starts every part the same way.

use std::{
    hint::black_box,
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use criterion::Criterion;
use wsk_primitives::rundown::{Acquisition, Rundown};
use wskecho_bench::{
    report::{Part, bench_dir, write_part},
    rundown_ratio::{
        BARE_CONTENDED, BARE_UNCONTENDED, Contention, GROUP, Measured, Paired, RUNDOWN_CONTENDED,
        RUNDOWN_UNCONTENDED,
    },
};

/// What a benchmark hammers: one pair of operations on a shared object.
trait Pair: Send + Sync + 'static {
    fn pair(&self);
}

/// The limit: the cheapest possible reference count, same orderings as the rundown's.
struct Bare(AtomicUsize);

impl Pair for Bare {
    #[inline]
    fn pair(&self) {
        black_box(self.0.fetch_add(2, Ordering::Acquire));
        black_box(self.0.fetch_sub(2, Ordering::AcqRel));
    }
}

impl Pair for Rundown {
    #[inline]
    fn pair(&self) {
        if self.try_acquire() == Acquisition::Acquired {
            // SAFETY: the reference just taken; the benchmark's rundown outlives the call.
            black_box(unsafe { Self::release(self) });
        } else {
            unreachable!("the benchmark never closes the rundown");
        }
    }
}

/// A second thread making pairs on the same object until dropped.
struct Contender {
    stop: Arc<AtomicBool>,
    progress: Arc<AtomicU64>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Contender {
    fn start<T: Pair>(object: Arc<T>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let progress = Arc::new(AtomicU64::new(0));
        let thread = {
            let (stop, progress) = (Arc::clone(&stop), Arc::clone(&progress));
            thread::spawn(move || {
                let mut pairs = 0_u64;
                while !stop.load(Ordering::Relaxed) {
                    for _ in 0..64 {
                        object.pair();
                    }
                    pairs += 64;
                    progress.store(pairs, Ordering::Relaxed);
                }
            })
        };
        Self {
            stop,
            progress,
            thread: Some(thread),
        }
    }

    fn pairs(&self) -> u64 {
        self.progress.load(Ordering::Relaxed)
    }

    /// Waits (bounded) until the contender is seen running, so a sample starts contended.
    fn wait_running(&self) {
        let seen = self.pairs();
        let deadline = Instant::now() + Duration::from_millis(100);
        while self.pairs() == seen && Instant::now() < deadline {
            std::hint::spin_loop();
        }
    }
}

impl Drop for Contender {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn uncontended<T: Pair>(c: &mut Criterion, name: &str, object: &T) {
    c.benchmark_group(GROUP)
        .bench_function(name, |b| b.iter(|| object.pair()));
}

fn contended<T: Pair>(c: &mut Criterion, name: &str, object: T) -> Contention {
    let object = Arc::new(object);
    let contender = Contender::start(Arc::clone(&object));
    let mut contention = Contention::default();
    c.benchmark_group(GROUP).bench_function(name, |b| {
        b.iter_custom(|iterations| {
            contender.wait_running();
            let before = contender.pairs();
            let start = Instant::now();
            for _ in 0..iterations {
                object.pair();
            }
            let elapsed = start.elapsed();
            contention.record(iterations, contender.pairs().saturating_sub(before));
            elapsed
        });
    });
    drop(contender);
    contention
}

/// Runs the four benchmarks into `output`; returns how much the contender ran in each
/// contended one.
fn run_benchmarks(output: &Path) -> (Contention, Contention) {
    let mut c = Criterion::default()
        .output_directory(output)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50)
        .without_plots();

    uncontended(&mut c, BARE_UNCONTENDED, &Bare(AtomicUsize::new(2)));
    uncontended(&mut c, RUNDOWN_UNCONTENDED, &Rundown::new());
    let bare_contention = contended(&mut c, BARE_CONTENDED, Bare(AtomicUsize::new(2)));
    let rundown_contention = contended(&mut c, RUNDOWN_CONTENDED, Rundown::new());
    c.final_summary();
    drop(c);
    (bare_contention, rundown_contention)
}

/// Paired rounds, and the pairs timed per block (a few tens of microseconds).
const ROUNDS: usize = 4000;
const PAIRS_PER_BLOCK: u32 = 2000;

/// What the switching contender of the paired rounds hammers.
const ON_BARE: u8 = 1;
const ON_RUNDOWN: u8 = 2;
const STOP: u8 = 3;

fn time_block<T: Pair>(object: &T) -> Duration {
    let start = Instant::now();
    for _ in 0..PAIRS_PER_BLOCK {
        object.pair();
    }
    start.elapsed()
}

/// Paired rounds (see the module documentation). With `contended`, a round counts only if the
/// contender was seen working on the measured object during both of its blocks.
fn paired(contended: bool) -> Option<Paired> {
    let bare = Arc::new(Bare(AtomicUsize::new(2)));
    let rundown = Arc::new(Rundown::new());
    let phase = Arc::new(AtomicU8::new(ON_BARE));
    let progress = Arc::new(AtomicU64::new(0));
    let hammer = contended.then(|| {
        let (bare, rundown) = (Arc::clone(&bare), Arc::clone(&rundown));
        let (phase, progress) = (Arc::clone(&phase), Arc::clone(&progress));
        thread::spawn(move || {
            let mut pairs = 0_u64;
            loop {
                match phase.load(Ordering::Relaxed) {
                    ON_BARE => (0..64).for_each(|_| bare.pair()),
                    ON_RUNDOWN => (0..64).for_each(|_| rundown.pair()),
                    _ => break,
                }
                pairs += 64;
                progress.store(pairs, Ordering::Relaxed);
            }
        })
    });
    // Bounded wait until the contender finished a whole chunk on the current target.
    let settle = || {
        let start = progress.load(Ordering::Relaxed);
        let deadline = Instant::now() + Duration::from_millis(20);
        while progress.load(Ordering::Relaxed) < start + 128 && Instant::now() < deadline {
            std::hint::spin_loop();
        }
    };
    let mut ratios = Vec::with_capacity(ROUNDS);
    let mut dropped = 0;
    for round in 0..ROUNDS {
        let order = if round % 2 == 0 {
            [ON_BARE, ON_RUNDOWN]
        } else {
            [ON_RUNDOWN, ON_BARE]
        };
        let (mut bare_time, mut rundown_time) = (Duration::ZERO, Duration::ZERO);
        let mut seen = true;
        for target in order {
            if contended {
                phase.store(target, Ordering::Relaxed);
                settle();
            }
            let before = progress.load(Ordering::Relaxed);
            if target == ON_BARE {
                bare_time = time_block(&*bare);
            } else {
                rundown_time = time_block(&*rundown);
            }
            seen &= !contended || progress.load(Ordering::Relaxed) > before;
        }
        if seen {
            ratios.push(rundown_time.as_secs_f64() / bare_time.as_secs_f64());
        } else {
            dropped += 1;
        }
    }
    phase.store(STOP, Ordering::Relaxed);
    if let Some(hammer) = hammer {
        let _ = hammer.join();
    }
    Paired::from_ratios(ratios, dropped)
}

fn main() {
    let output = bench_dir().join("criterion");
    // Stale estimates of an earlier run must not stand in for a benchmark that did not run.
    let _ = std::fs::remove_dir_all(output.join(GROUP));
    let contention = run_benchmarks(&output);
    let (Some(paired_uncontended), Some(paired_contended)) = (paired(false), paired(true)) else {
        eprintln!("rundown: no usable paired round (the contender never ran?)");
        std::process::exit(1);
    };
    let measured = match Measured::read(&output, contention, (paired_uncontended, paired_contended))
    {
        Ok(measured) => measured,
        Err(error) => {
            eprintln!("rundown: reading criterion's estimates: {error}");
            std::process::exit(1);
        }
    };
    let part = Part {
        name: "1-rundown".into(),
        title: "1 rundown".into(),
        rows: measured.rows(),
    };
    match write_part(&bench_dir(), &part) {
        Ok(path) => println!("rundown: wrote {}", path.display()),
        Err(error) => {
            eprintln!("rundown: writing the part: {error}");
            std::process::exit(1);
        }
    }
}
