//! `wskecho-harness`: runs the wskecho sample's echo service on the client, in user mode on
//! loopback sockets (scripts/run).
//!
//! Prints `listening ADDR:PORT` per socket; SIGINT/SIGTERM plays `sc stop` (Unload); the last
//! stdout line is the JSON report. Exit code: 0 clean, 1 violations or leaks, 2 bad usage or
//! start error.

use std::{io::Write, process::ExitCode, time::Duration};

use clap::{Arg, ArgAction, ArgMatches, Command};
use signal_hook::{
    consts::{SIGINT, SIGTERM},
    iterator::Signals,
};
use wsk_harness::harness::{Harness, Options};
use wsk_primitives::platform::Level;
use wskecho_echo::ECHO;

const LOG_LEVELS: [(&str, Option<Level>); 5] = [
    ("off", None),
    ("error", Some(Level::Error)),
    ("warning", Some(Level::Warning)),
    ("trace", Some(Level::Trace)),
    ("info", Some(Level::Info)),
];
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Sets one numeric flag's registry value, checked by the core's configuration rules.
type Setter = fn(Options, u32) -> Result<Options, String>;

/// The command line (clap's builder: its derive's `#[allow(clippy::restriction)]` clashes with
/// the workspace's forbidden lints). A repeated flag other than `--listen` takes the last value.
fn command() -> Command {
    // A `u32`, whose range the core's configuration rules check (`options`).
    let number = |(flag, value, setting): (&'static str, &'static str, &str)| {
        Arg::new(flag)
            .long(flag)
            .value_name(value)
            .help(format!("Sets {setting} [default: the driver's]"))
            .allow_negative_numbers(true)
            .value_parser(|text: &str| {
                (text.parse::<u32>()).map_err(|_| "expected a whole number from 0 to 4294967295")
            })
    };
    Command::new("wskecho-harness")
        .about(
            "Runs the wskecho core inside an emulated NMR and WSK subsystem on host sockets. The \
             numbers are the driver's registry values (docs/installing.md).",
        )
        .after_help(
            "Prints `listening ADDR:PORT` per socket; SIGINT or SIGTERM plays `sc stop` and the \
             last stdout line is the JSON report.\nExit status: 0 clean, 1 contract violations \
             or leaks, 2 bad usage or start-up error.",
        )
        .args_override_self(true)
        .arg(
            Arg::new("listen")
                .long("listen")
                .value_name("ADDR:PORT")
                .action(ArgAction::Append)
                .default_values(["127.0.0.1:40007", "[::1]:40007"])
                .help("An endpoint to listen on, port 0 = ephemeral (repeatable)"),
        )
        .args(
            [
                ("max-connections", "N", "MaxConnections"),
                (
                    "max-connections-per-address",
                    "N",
                    "MaxConnectionsPerAddress, 0 = no limit",
                ),
                ("buffer-size", "BYTES", "BufferSize"),
                ("idle-timeout", "SECONDS", "IdleTimeout, 0 = never"),
                ("no-delay", "0|1", "NoDelay (TCP_NODELAY)"),
            ]
            .map(number),
        )
        .arg(
            Arg::new("log")
                .long("log")
                .value_name("off|error|warning|trace|info")
                .value_parser(LOG_LEVELS.map(|(name, _)| name))
                .hide_possible_values(true)
                .default_value("off")
                .help("Driver log lines (DbgPrintEx) to stderr"),
        )
}

fn options(matches: &ArgMatches) -> Result<Options, String> {
    let listen = matches.get_many::<String>("listen").into_iter().flatten();
    let mut options = Options::new(ECHO, &listen.map(String::as_str).collect::<Vec<_>>())?;
    let setters: [(&str, Setter); 5] = [
        ("max-connections", Options::with_max_connections),
        (
            "max-connections-per-address",
            Options::with_max_connections_per_address,
        ),
        ("buffer-size", Options::with_buffer_size),
        ("idle-timeout", Options::with_idle_timeout),
        ("no-delay", Options::with_no_delay),
    ];
    for (flag, set) in setters {
        if let Some(&value) = matches.get_one::<u32>(flag) {
            options = set(options, value)?;
        }
    }
    let log = matches.get_one::<String>("log");
    let level = LOG_LEVELS
        .into_iter()
        .find(|(name, _)| log.is_some_and(|log| log == name));
    options.verbosity = level.and_then(|(_, level)| level);
    Ok(options)
}

fn fail(message: &str) -> ExitCode {
    eprintln!("wskecho-harness: {message}");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let matches = match command().try_get_matches() {
        Ok(matches) => matches,
        Err(help) if !help.use_stderr() => {
            let _ = help.print();
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            // One line: clap's first, which names the flag and the value (the rest is usage).
            let text = error.render().to_string();
            let first = text.lines().next().unwrap_or_default();
            let message = first.trim_start_matches("error: ");
            return fail(&format!("{message} (see --help)"));
        }
    };
    let options = match options(&matches) {
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
