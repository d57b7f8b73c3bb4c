//! Reads callgrind's output format: per-function self costs and call edges (part 2).
//!
//! Only what the echo-step measurement needs: the first event's count (`Ir`, instructions) of
//! every cost line, attributed to the current `fn=` (self cost) or, right after a `calls=`
//! line, to the call edge from `fn=` to `cfn=` (inclusive cost of that call). Name compression
//! (`fn=(12) name`, later `fn=(12)`) is resolved; file and object lines are skipped.

use std::{
    collections::{HashMap, HashSet},
    fmt,
};

/// A callgrind file that cannot be read as such.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong there.
    pub reason: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "callgrind output, line {}: {}", self.line, self.reason)
    }
}

impl std::error::Error for ParseError {}

/// One caller → callee edge, summed over the file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Edge {
    /// Calls made.
    pub calls: u64,
    /// Instructions executed inside those calls (inclusive).
    pub inclusive: u64,
}

/// The instruction counts of one callgrind output file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Profile {
    /// Self cost (instructions executed in the function itself) by function name.
    pub self_cost: HashMap<String, u64>,
    /// Call edges by (caller, callee).
    pub edges: HashMap<(String, String), Edge>,
    /// The `summary:` or `totals:` line, if present.
    pub summary: Option<u64>,
}

impl Profile {
    /// All instructions collected: the sum of the self costs.
    #[must_use]
    pub fn total(&self) -> u64 {
        self.self_cost.values().sum()
    }

    /// Instructions executed inside functions matching `excluded` (and what they call), counted
    /// at the calls into them from functions that do not match.
    #[must_use]
    pub fn excluded(&self, excluded: impl Fn(&str) -> bool) -> u64 {
        self.edges
            .iter()
            .filter(|((caller, callee), _)| !excluded(caller) && excluded(callee))
            .map(|(_, edge)| edge.inclusive)
            .sum()
    }

    /// Every function name in the profile.
    fn names(&self) -> HashSet<&str> {
        self.self_cost
            .keys()
            .chain(
                self.edges
                    .keys()
                    .flat_map(|(caller, callee)| [caller, callee]),
            )
            .map(String::as_str)
            .collect()
    }

    /// The functions reached from `start` through the call edges, not entering those `stop`
    /// matches.
    fn reach<'a>(
        &'a self,
        start: impl IntoIterator<Item = &'a str>,
        stop: impl Fn(&str) -> bool,
    ) -> HashSet<&'a str> {
        let mut callees: HashMap<&str, Vec<&str>> = HashMap::new();
        for (caller, callee) in self.edges.keys() {
            callees
                .entry(caller.as_str())
                .or_default()
                .push(callee.as_str());
        }
        let mut reached: HashSet<&str> = start.into_iter().collect();
        let mut pending: Vec<&str> = reached.iter().copied().collect();
        while let Some(caller) = pending.pop() {
            for &callee in callees.get(caller).into_iter().flatten() {
                if !stop(callee) && reached.insert(callee) {
                    pending.push(callee);
                }
            }
        }
        reached
    }

    /// The functions only `roots` run: those matching `roots` and every function reached only
    /// through them (what a double runs on its own behalf: formatting, the allocator, copies).
    /// The rest is what the outermost functions (those no collected call reaches) reach
    /// without passing through a root.
    #[must_use]
    pub fn run_only_by(&self, roots: impl Fn(&str) -> bool) -> HashSet<&str> {
        let called: HashSet<&str> = self
            .edges
            .keys()
            .map(|(_, callee)| callee.as_str())
            .collect();
        let names = self.names();
        let outermost = names
            .iter()
            .copied()
            .filter(|f| !called.contains(f) && !roots(f));
        let reached = self.reach(outermost, &roots);
        names.into_iter().filter(|f| !reached.contains(f)).collect()
    }

    /// Instructions inside functions matching `callee`, counted at the calls into them from
    /// functions that both the roots and the rest reach: whose they are, the call graph cannot
    /// tell. `inside` is [`Profile::run_only_by`]'s set for the same `roots`.
    #[must_use]
    pub fn shared_calls_into(
        &self,
        inside: &HashSet<&str>,
        roots: impl Fn(&str) -> bool,
        callee: impl Fn(&str) -> bool,
    ) -> u64 {
        let by_roots = self.reach(self.names().into_iter().filter(|f| roots(f)), |_| false);
        self.edges
            .iter()
            .filter(|((from, to), _)| {
                !inside.contains(from.as_str())
                    && by_roots.contains(from.as_str())
                    && !callee(from)
                    && callee(to)
            })
            .map(|(_, edge)| edge.inclusive)
            .sum()
    }

    /// Instructions inside functions matching `callee`, counted at the calls into them from
    /// functions neither in `inside` nor matching `callee`.
    #[must_use]
    pub fn called_from_outside(
        &self,
        inside: &HashSet<&str>,
        callee: impl Fn(&str) -> bool,
    ) -> u64 {
        self.edges
            .iter()
            .filter(|((from, to), _)| {
                !inside.contains(from.as_str()) && !callee(from) && callee(to)
            })
            .map(|(_, edge)| edge.inclusive)
            .sum()
    }

    /// Calls into functions matching `excluded` from functions that do not match.
    #[must_use]
    pub fn calls_into(&self, excluded: impl Fn(&str) -> bool) -> u64 {
        self.edges
            .iter()
            .filter(|((caller, callee), _)| !excluded(caller) && excluded(callee))
            .map(|(_, edge)| edge.calls)
            .sum()
    }
}

/// Resolves `(id) name` / `(id)` name compression.
fn resolve(
    names: &mut HashMap<String, String>,
    spec: &str,
    line: usize,
) -> Result<String, ParseError> {
    let spec = spec.trim();
    let Some(rest) = spec.strip_prefix('(') else {
        return Ok(spec.to_owned());
    };
    let Some((id, name)) = rest.split_once(')') else {
        return Err(ParseError {
            line,
            reason: format!("unclosed name id in {spec:?}"),
        });
    };
    let name = name.trim();
    if name.is_empty() {
        names.get(id).cloned().ok_or_else(|| ParseError {
            line,
            reason: format!("name id ({id}) used before it was defined"),
        })
    } else {
        names.insert(id.to_owned(), name.to_owned());
        Ok(name.to_owned())
    }
}

/// Parses callgrind output text.
///
/// # Errors
/// No `events:` line with `Ir`, a malformed number, a cost line outside a function, an
/// undefined name id, or a `calls=` line not followed by its cost line.
pub fn parse(text: &str) -> Result<Profile, ParseError> {
    let mut profile = Profile::default();
    let mut names = HashMap::new();
    let mut positions = 1_usize;
    let mut ir_index: Option<usize> = None;
    let mut function: Option<String> = None;
    let mut call_target: Option<String> = None;
    // Set by `calls=`: the next cost line is that call's inclusive cost.
    let mut call: Option<(usize, u64)> = None;
    for (index, raw) in text.lines().enumerate() {
        let number = index + 1;
        let line = raw.trim_end();
        let error = |reason: String| ParseError {
            line: number,
            reason,
        };
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let first = line.as_bytes()[0];
        if first.is_ascii_digit() || matches!(first, b'+' | b'-' | b'*') {
            let ir_index = ir_index.ok_or_else(|| error("cost line before `events:`".into()))?;
            let fields: Vec<&str> = line.split_ascii_whitespace().collect();
            // Trailing zero counts may be left out.
            let ir = match fields.get(positions + ir_index) {
                Some(field) => field
                    .parse::<u64>()
                    .map_err(|_| error(format!("bad count {field:?}")))?,
                None => 0,
            };
            let caller = function
                .clone()
                .ok_or_else(|| error("cost line outside a function".into()))?;
            if let Some((_, calls)) = call.take() {
                let target = call_target
                    .clone()
                    .ok_or_else(|| error("call without `cfn=`".into()))?;
                let edge = profile.edges.entry((caller, target)).or_default();
                edge.calls += calls;
                edge.inclusive += ir;
            } else {
                *profile.self_cost.entry(caller).or_default() += ir;
            }
            continue;
        }
        if let Some((at, _)) = call {
            return Err(ParseError {
                line: number,
                reason: format!("the `calls=` line {at} is not followed by its cost line"),
            });
        }
        let Some((key, value)) = line.split_once([':', '=']) else {
            return Err(error(format!("unknown line {line:?}")));
        };
        match key {
            "events" => {
                ir_index = value.split_ascii_whitespace().position(|e| e == "Ir");
                if ir_index.is_none() {
                    return Err(error(format!("no Ir event in {value:?}")));
                }
            }
            "positions" => positions = value.split_ascii_whitespace().count().max(1),
            "summary" | "totals" => {
                let first = value.split_ascii_whitespace().next().unwrap_or("0");
                let total = first
                    .parse()
                    .map_err(|_| error(format!("bad total {first:?}")))?;
                profile.summary = Some(total);
            }
            "fn" => {
                function = Some(resolve(&mut names, value, number)?);
                call_target = None;
            }
            "cfn" => {
                call_target = Some(resolve(&mut names, value, number)?);
            }
            "calls" => {
                let count = value.split_ascii_whitespace().next().unwrap_or("");
                let count = count
                    .parse()
                    .map_err(|_| error(format!("bad call count {count:?}")))?;
                call = Some((number, count));
            }
            // Files, objects, jumps and header fields do not change whose cost a line is.
            _ => {}
        }
    }
    if let Some((at, _)) = call {
        return Err(ParseError {
            line: at,
            reason: "`calls=` at the end of the file".into(),
        });
    }
    if ir_index.is_none() {
        return Err(ParseError {
            line: 0,
            reason: "no `events:` line (not callgrind output?)".into(),
        });
    }
    Ok(profile)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
# callgrind format
version: 1
creator: callgrind-3.19.0
positions: line
events: Ir
summary: 1110

ob=(1) /bench
fl=(1) src/echo_step.rs
fn=(1) wskecho_bench::echo_step::core_step
5 10
cfl=(2) src/core/socket.rs
cfn=(2) wsk_client::socket::Socket<P>::run
calls=2 40
+3 1100
fn=(2)
40 900
cfn=(3) <wsk_client::testing::provider::calls::TestProvider as wsk_client::provider::Provider>::send
calls=2 0
* 150
cfn=(4) memcpy
calls=1 0
* 50
fl=(3) src/echo_step.rs
fn=(3)
0 140
cfn=(5) std::sync::Mutex::lock
calls=2 0
0 10
fn=(5)
0 10
fn=(4)
0 50
totals: 1110
";

    fn bench_double(name: &str) -> bool {
        name.starts_with("<wsk_client::testing::")
    }

    #[test]
    fn self_costs_and_edges_resolve_compressed_names() {
        let profile = parse(SAMPLE).unwrap();
        assert_eq!(profile.summary, Some(1110));
        assert_eq!(profile.total(), 1110);
        assert_eq!(profile.self_cost["wskecho_bench::echo_step::core_step"], 10);
        assert_eq!(profile.self_cost["wsk_client::socket::Socket<P>::run"], 900);
        let edge = &profile.edges[&(
            "wsk_client::socket::Socket<P>::run".to_owned(),
            "memcpy".to_owned(),
        )];
        assert_eq!((edge.calls, edge.inclusive), (1, 50));
    }

    #[test]
    fn what_only_the_roots_run_is_found_through_the_callers() {
        // main calls the core; the core calls the double and memcpy; the double formats
        // (format and display call each other) and copies.
        let profile = parse(
            "events: Ir\n\
             fn=(9) main\n0 1\ncfn=(1) core\ncalls=1 0\n0 13\n\
             fn=(1)\n0 1\ncfn=(2) double\ncalls=1 0\n0 10\ncfn=(4) memcpy\ncalls=1 0\n0 2\n\
             fn=(2)\n0 1\ncfn=(3) format\ncalls=1 0\n0 9\n\
             fn=(3)\n0 2\ncfn=(4)\ncalls=1 0\n0 2\ncfn=(5) display\ncalls=1 0\n0 5\n\
             fn=(5)\n0 3\ncfn=(3)\ncalls=1 0\n0 2\n\
             fn=(4)\n0 4\n",
        )
        .unwrap();
        let inside = profile.run_only_by(|f| f == "double");
        let mut names: Vec<&str> = inside.iter().copied().collect();
        names.sort_unstable();
        // memcpy is also called by the core: not only the double runs it.
        assert_eq!(names, ["display", "double", "format"]);
        assert_eq!(profile.called_from_outside(&inside, |f| f == "memcpy"), 2);
        assert_eq!(
            profile.shared_calls_into(&inside, |f| f == "double", |f| f == "memcpy"),
            0
        );
    }

    #[test]
    fn copies_under_a_function_both_sides_reach_are_reported() {
        // The core and the double both call `grow`, which copies.
        let profile = parse(
            "events: Ir\n\
             fn=(9) main\n0 1\ncfn=(1) core\ncalls=1 0\n0 14\n\
             fn=(1)\n0 1\ncfn=(2) double\ncalls=1 0\n0 6\ncfn=(3) grow\ncalls=1 0\n0 7\n\
             fn=(2)\n0 1\ncfn=(3)\ncalls=1 0\n0 5\n\
             fn=(3)\n0 4\ncfn=(4) memcpy\ncalls=2 0\n0 8\n\
             fn=(4)\n0 8\n",
        )
        .unwrap();
        let inside = profile.run_only_by(|f| f == "double");
        assert_eq!(
            profile.shared_calls_into(&inside, |f| f == "double", |f| f == "memcpy"),
            8
        );
    }

    #[test]
    fn excluded_cost_counts_calls_into_excluded_functions_once() {
        let profile = parse(SAMPLE).unwrap();
        // The provider's send (150, including its Mutex::lock) called from the core.
        assert_eq!(profile.excluded(bench_double), 150);
        assert_eq!(profile.calls_into(bench_double), 2);
        assert_eq!(profile.excluded(|name| name == "memcpy"), 50);
        // Excluding Mutex::lock as well does not count it twice (its caller is excluded).
        let both = |name: &str| bench_double(name) || name.contains("Mutex");
        assert_eq!(profile.excluded(both), 150);
    }

    #[test]
    fn costs_of_two_events_and_two_positions_take_ir() {
        let text = "positions: instr line\nevents: Dr Ir\nfn=f\n0x10 3 7 9\n0x14 4\n";
        let profile = parse(text).unwrap();
        // The second line has no Ir count (trailing zeros left out).
        assert_eq!(profile.self_cost["f"], 9);
    }

    #[test]
    fn malformed_input_names_the_line() {
        let error = parse("events: Ir\nfn=(7)\n").unwrap_err();
        assert_eq!(error.line, 2);
        assert!(error.reason.contains("(7)"), "{error}");
        let error = parse("events: Ir\nfn=f\ncfn=g\ncalls=1 0\nfn=h\n").unwrap_err();
        assert_eq!(error.line, 5);
        let error = parse("events: Ir\nfn=f\n1 x\n").unwrap_err();
        assert!(error.reason.contains("bad count"), "{error}");
        assert!(parse("fn=f\n").is_err(), "no events line");
        assert!(parse("events: Dr\n").is_err(), "no Ir event");
        assert!(
            parse("events: Ir\n1 5\n").is_err(),
            "cost outside a function"
        );
    }
}
