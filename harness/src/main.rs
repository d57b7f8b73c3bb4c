//! `wskecho-harness`: runs the driver's core in user mode on loopback sockets (scripts/run).
//!
//! Prints `listening ADDR:PORT` per socket; SIGINT/SIGTERM plays `sc stop` (Unload); the last
//! stdout line is the JSON report. Exit code: 0 clean, 1 violations or leaks, 2 start error.

use std::{io::Write, process::ExitCode, time::Duration};

use signal_hook::{
    consts::{SIGINT, SIGTERM},
    iterator::Signals,
};
use wsk_primitives::platform::Level;
use wskecho_harness::harness::{Harness, Options};

const USAGE: &str = "usage: scripts/run [--listen ADDR:PORT]... [--max-connections N] [--max-connections-per-address N] [--buffer-size BYTES] [--idle-timeout SECONDS] [--no-delay 0|1] [--log off|error|warning|trace|info]";
const DEFAULT_LISTEN: [&str; 2] = ["127.0.0.1:40007", "[::1]:40007"];
const START_TIMEOUT: Duration = Duration::from_secs(10);

struct Args {
    listen: Vec<String>,
    max_connections: Option<u32>,
    max_connections_per_address: Option<u32>,
    buffer_size: Option<u32>,
    idle_timeout: Option<u32>,
    no_delay: Option<u32>,
    verbosity: Option<Level>,
}

fn value(
    flag: &str,
    inline: Option<String>,
    rest: &mut impl Iterator<Item = String>,
) -> Result<String, String> {
    inline
        .or_else(|| rest.next())
        .ok_or_else(|| format!("{flag} needs a value"))
}

fn number(flag: &str, text: &str) -> Result<u32, String> {
    text.parse()
        .map_err(|_| format!("invalid {flag} value '{text}': expected a whole number"))
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut parsed = Args {
        listen: Vec::new(),
        max_connections: None,
        max_connections_per_address: None,
        buffer_size: None,
        idle_timeout: None,
        no_delay: None,
        verbosity: None,
    };
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => {
                (flag.to_owned(), Some(value.to_owned()))
            }
            _ => (arg.clone(), None),
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(None),
            "--listen" => {
                // Validated by the core's configuration rules, in `options`.
                parsed.listen.push(value(&flag, inline, &mut args)?);
            }
            "--max-connections" => {
                parsed.max_connections = Some(number(&flag, &value(&flag, inline, &mut args)?)?);
            }
            "--max-connections-per-address" => {
                parsed.max_connections_per_address =
                    Some(number(&flag, &value(&flag, inline, &mut args)?)?);
            }
            "--buffer-size" => {
                parsed.buffer_size = Some(number(&flag, &value(&flag, inline, &mut args)?)?);
            }
            "--idle-timeout" => {
                parsed.idle_timeout = Some(number(&flag, &value(&flag, inline, &mut args)?)?);
            }
            "--no-delay" => {
                parsed.no_delay = Some(number(&flag, &value(&flag, inline, &mut args)?)?);
            }
            "--log" => {
                parsed.verbosity = match value(&flag, inline, &mut args)?.as_str() {
                    "off" => None,
                    "error" => Some(Level::Error),
                    "warning" => Some(Level::Warning),
                    "trace" => Some(Level::Trace),
                    "info" => Some(Level::Info),
                    other => {
                        return Err(format!(
                            "invalid --log value '{other}': expected off, error, warning, trace or info"
                        ));
                    }
                };
            }
            other => return Err(format!("unknown argument '{other}'")),
        }
    }
    if parsed.listen.is_empty() {
        parsed.listen = DEFAULT_LISTEN.iter().map(|a| (*a).to_owned()).collect();
    }
    Ok(Some(parsed))
}

fn options(args: &Args) -> Result<Options, String> {
    let listen: Vec<&str> = args.listen.iter().map(String::as_str).collect();
    let mut options = Options::new(&listen)?;
    if let Some(n) = args.max_connections {
        options = options.with_max_connections(n)?;
    }
    if let Some(n) = args.max_connections_per_address {
        options = options.with_max_connections_per_address(n)?;
    }
    if let Some(n) = args.buffer_size {
        options = options.with_buffer_size(n)?;
    }
    if let Some(n) = args.idle_timeout {
        options = options.with_idle_timeout(n)?;
    }
    if let Some(n) = args.no_delay {
        options = options.with_no_delay(n)?;
    }
    options.verbosity = args.verbosity;
    Ok(options)
}

fn fail(message: &str) -> ExitCode {
    eprintln!("wskecho-harness: {message}");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => return fail(&format!("{message} (see --help)")),
    };
    let options = match options(&args) {
        Ok(options) => options,
        Err(message) => return fail(&message),
    };
    // Installed before the driver loads, so an early Ctrl-C still unloads it.
    let mut signals = match Signals::new([SIGINT, SIGTERM]) {
        Ok(signals) => signals,
        Err(error) => return fail(&format!("cannot handle SIGINT/SIGTERM: {error}")),
    };
    let harness = match Harness::start(options) {
        Ok(harness) => harness,
        Err(error) => return fail(&format!("cannot start the emulated WSK subsystem: {error}")),
    };
    match harness.wait_listening(START_TIMEOUT) {
        Ok(listening) => {
            let mut out = std::io::stdout().lock();
            for addr in listening {
                let _ = writeln!(out, "listening {addr}");
            }
            let _ = out.flush();
        }
        Err(error) => {
            let report = harness.unload();
            if !report.clean() {
                eprintln!(
                    "wskecho-harness: unloading after the start-up error: {}",
                    report.to_json()
                );
            }
            return fail(&error.0);
        }
    }
    let _ = signals.forever().next();
    let report = harness.unload();
    println!("{}", report.to_json());
    if report.clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
