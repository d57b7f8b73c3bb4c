//! The report format shared by every measuring program, and the merge into one table.

use std::{
    fmt::Write as _,
    fs, io,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

/// A performance goal, checked by the part that measured the value.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "limit", rename_all = "snake_case")]
pub enum Goal {
    /// The value must be at most the limit.
    AtMost(f64),
    /// The value must be below the limit.
    Below(f64),
}

impl Goal {
    /// Whether `value` meets the goal.
    #[must_use]
    pub fn is_met(self, value: f64) -> bool {
        match self {
            Self::AtMost(limit) => value <= limit,
            Self::Below(limit) => value < limit,
        }
    }

    fn describe(self) -> String {
        match self {
            Self::AtMost(limit) => format!("<= {}", number(limit)),
            Self::Below(limit) => format!("< {}", number(limit)),
        }
    }
}

/// One measured figure.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// What was measured, e.g. `rundown acquire+release / bare atomic pair, uncontended`.
    pub metric: String,
    /// The measured value, in `unit`.
    pub value: f64,
    /// Unit of `value`: `ns`, `x` (a ratio), `instructions`, `bytes`, `ms`, `MiB/s`, ...
    pub unit: String,
    /// The goal, if this figure has one.
    pub goal: Option<Goal>,
    /// Whether the goal is met (`None` without a goal).
    pub met: Option<bool>,
    /// How it was measured or what to read into it; short.
    pub note: String,
}

impl Row {
    /// A row without a goal.
    #[must_use]
    pub fn new(metric: impl Into<String>, value: f64, unit: impl Into<String>) -> Self {
        Self {
            metric: metric.into(),
            value,
            unit: unit.into(),
            goal: None,
            met: None,
            note: String::new(),
        }
    }

    /// Sets the goal and whether the value meets it.
    #[must_use]
    pub fn with_goal(mut self, goal: Goal) -> Self {
        self.met = Some(goal.is_met(self.value));
        self.goal = Some(goal);
        self
    }

    /// Sets the note.
    #[must_use]
    pub fn with_note(mut self, note: impl Into<String>) -> Self {
        self.note = note.into();
        self
    }
}

/// The rows one measuring program wrote.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Part {
    /// File stem and sort key, e.g. `1-rundown`.
    pub name: String,
    /// Heading of the part in the table.
    pub title: String,
    /// The rows, in display order.
    pub rows: Vec<Row>,
}

/// The bench directory: `$WSKECHO_BENCH_DIR`, else `<workspace>/target/bench`.
#[must_use]
pub fn bench_dir() -> PathBuf {
    std::env::var_os("WSKECHO_BENCH_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench"),
        PathBuf::from,
    )
}

/// Writes `part` as `<dir>/parts/<name>.json` and returns that path.
///
/// # Errors
/// The file or directory cannot be written.
pub fn write_part(dir: &Path, part: &Part) -> io::Result<PathBuf> {
    let parts = dir.join("parts");
    fs::create_dir_all(&parts)?;
    let path = parts.join(format!("{}.json", part.name));
    fs::write(&path, serde_json::to_string_pretty(part)?)?;
    Ok(path)
}

/// Reads every `<dir>/parts/*.json`, sorted by part name.
///
/// # Errors
/// A part cannot be read or is not a valid part (the error names the file).
pub fn read_parts(dir: &Path) -> io::Result<Vec<Part>> {
    let mut parts = Vec::new();
    for entry in fs::read_dir(dir.join("parts"))? {
        let path = entry?.path();
        if path.extension().is_some_and(|ext| ext == "json") {
            let text = fs::read_to_string(&path)?;
            let part: Part = serde_json::from_str(&text).map_err(|error| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: {error}", path.display()),
                )
            })?;
            parts.push(part);
        }
    }
    parts.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(parts)
}

/// A number for the table: integers without decimals, others with up to 3 significant decimals.
#[must_use]
pub fn number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{value:.0}")
    } else if value.abs() >= 100.0 {
        format!("{value:.1}")
    } else if value.abs() >= 1.0 {
        format!("{value:.2}")
    } else {
        format!("{value:.3}")
    }
}

/// The parts as one Markdown table (the form docs/performance.md quotes).
#[must_use]
pub fn table(parts: &[Part]) -> String {
    let mut out =
        String::from("| # | metric | value | goal | met | note |\n|---|---|---|---|---|---|\n");
    for part in parts {
        for row in &part.rows {
            let goal = row.goal.map_or_else(String::new, Goal::describe);
            let met = match row.met {
                Some(true) => "yes",
                Some(false) => "NO",
                None => "",
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} {} | {goal} | {met} | {} |",
                part.title,
                row.metric,
                number(row.value),
                row.unit,
                row.note
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn goals_compare_at_the_limit() {
        assert!(Goal::AtMost(1.5).is_met(1.5));
        assert!(!Goal::AtMost(1.5).is_met(1.51));
        assert!(!Goal::Below(1000.0).is_met(1000.0));
        assert!(Goal::Below(1000.0).is_met(999.0));
    }

    #[test]
    fn rows_record_whether_the_goal_is_met() {
        let row = Row::new("x", 2.0, "x").with_goal(Goal::AtMost(1.5));
        assert_eq!(row.met, Some(false));
        assert_eq!(Row::new("y", 1.0, "x").met, None);
    }

    #[test]
    fn parts_round_trip_and_sort_by_name() {
        let dir = std::env::temp_dir().join(format!("wskecho-bench-report-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let second = Part {
            name: "2-b".into(),
            title: "2".into(),
            rows: vec![Row::new("b", 0.25, "ns").with_note("n")],
        };
        let first = Part {
            name: "1-a".into(),
            title: "1".into(),
            rows: vec![Row::new("a", 3.0, "x").with_goal(Goal::AtMost(1.5))],
        };
        write_part(&dir, &second).unwrap();
        write_part(&dir, &first).unwrap();
        let parts = read_parts(&dir).unwrap();
        assert_eq!(parts, vec![first, second]);
        let table = table(&parts);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines[2], "| 1 | a | 3 x | <= 1.50 | NO |  |");
        assert_eq!(lines[3], "| 2 | b | 0.250 ns |  |  | n |");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_broken_part_names_its_file() {
        let dir = std::env::temp_dir().join(format!("wskecho-bench-broken-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("parts")).unwrap();
        fs::write(dir.join("parts/9-x.json"), "{").unwrap();
        let error = read_parts(&dir).unwrap_err();
        assert!(error.to_string().contains("9-x.json"), "{error}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
