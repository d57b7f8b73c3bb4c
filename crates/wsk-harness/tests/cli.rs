//! `scripts/run` end to end: build and start it on ephemeral loopback ports, echo through it,
//! stop it with SIGTERM (`sc stop`), and check its JSON report and exit code. Also: a bad
//! flag and a port in use are one clear line and a non-zero exit.
//!
//! Every started `scripts/run` is held by a [`Server`], which kills it when dropped, so a
//! failing test leaves no server listening.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{Shutdown, SocketAddr, TcpListener, TcpStream},
    ops::{Deref, DerefMut},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/run")
}

/// The first build of the CLI can take a while on a busy 2-core machine.
const BUILD_AND_START: Duration = Duration::from_mins(5);

/// A started `scripts/run` (which `exec`s the harness, so the pid is the server's), killed with
/// SIGKILL and reaped on drop unless a test already waited for it.
struct Server(Child);

impl Server {
    fn start(command: &mut Command) -> Self {
        Self(command.spawn().expect("scripts/run starts"))
    }

    /// Sends `signal` (`sc stop` is SIGTERM or SIGINT) to the server, panicking on failure.
    fn signal(&self, signal: libc::c_int) {
        let pid = libc::pid_t::try_from(self.0.id()).expect("a pid fits pid_t");
        // SAFETY: kill(2) takes plain integers and touches no memory of this process; the pid is
        // our own child's, not yet reaped (`Child::wait` has not returned), so it names no other
        // process.
        let result = unsafe { libc::kill(pid, signal) };
        assert_eq!(
            result,
            0,
            "kill({pid}, {signal}): {}",
            std::io::Error::last_os_error()
        );
    }
}

impl Deref for Server {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl DerefMut for Server {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[test]
fn scripts_run_serves_echo_and_unloads_cleanly_on_sigterm() {
    let mut child = Server::start(
        Command::new(script())
            .args([
                "--listen",
                "127.0.0.1:0",
                "--listen",
                "[::1]:0",
                "--max-connections",
                "8",
                "--buffer-size",
                "4096",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit()),
    );
    let stdout = child.stdout.take().unwrap();
    let (lines_tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if lines_tx.send(line.unwrap_or_default()).is_err() {
                return;
            }
        }
    });
    let mut listening: Vec<SocketAddr> = Vec::new();
    while listening.len() < 2 {
        let line = lines
            .recv_timeout(BUILD_AND_START)
            .expect("a `listening` line");
        let addr = line
            .strip_prefix("listening ")
            .unwrap_or_else(|| panic!("unexpected line {line:?}"));
        listening.push(addr.parse().expect("ADDR:PORT"));
    }
    assert!(
        listening[0].is_ipv4() && listening[1].is_ipv6(),
        "{listening:?}"
    );
    assert!(
        listening
            .iter()
            .all(|a| a.port() != 0 && a.ip().is_loopback()),
        "{listening:?}"
    );

    let mut echoed = 0;
    for addr in &listening {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let payload: Vec<u8> = (0..20_000_u32).map(|i| (i * 7).to_le_bytes()[0]).collect();
        stream.write_all(&payload).unwrap();
        stream.shutdown(Shutdown::Write).unwrap();
        let mut back = Vec::new();
        stream.read_to_end(&mut back).unwrap();
        assert!(back == payload);
        echoed += payload.len();
    }

    child.signal(libc::SIGTERM);
    let mut rest = Vec::new();
    while let Ok(line) = lines.recv_timeout(Duration::from_mins(1)) {
        rest.push(line);
    }
    let exit = child.wait().unwrap();
    let last = rest.last().expect("a report line");
    let report: serde_json::Value = serde_json::from_str(last).expect("last line is JSON");
    assert_eq!(report["contract_violations"], 0, "{report}");
    assert_eq!(report["pool_outstanding_bytes"], 0, "{report}");
    assert_eq!(report["accepted"], 2, "{report}");
    assert_eq!(report["refused"], 0, "{report}");
    assert_eq!(report["bytes_sent"], echoed, "{report}");
    assert!(report["unload_ms"].as_u64().is_some(), "{report}");
    assert!(
        matches!(report["detach"].as_str(), Some("success" | "pending")),
        "{report}"
    );
    assert_eq!(exit.code(), Some(0), "{report}");
}

fn run_to_end(args: &[&str]) -> (Option<i32>, String, String) {
    let output = Command::new(script())
        .args(args)
        .output()
        .expect("scripts/run runs");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn scripts_run_rejects_bad_flags_and_ports_in_use_with_one_clear_line() {
    let (code, stdout, stderr) = run_to_end(&["--listen", "nonsense"]);
    assert_eq!(code, Some(2), "{stdout}{stderr}");
    assert!(
        stderr.contains("invalid --listen") && stderr.contains("nonsense"),
        "{stderr}"
    );

    let (code, _, stderr) = run_to_end(&["--max-connections", "lots"]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("--max-connections"), "{stderr}");

    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (code, stdout, stderr) = run_to_end(&["--listen", &addr]);
    assert_eq!(code, Some(2), "{stdout}{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("wskecho-harness:"))
        .collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].contains(&addr) && lines[0].contains("in use"),
        "{stderr}"
    );
}

#[test]
fn scripts_run_unloads_on_sigint_too() {
    let mut child = Server::start(
        Command::new(script())
            .args(["--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit()),
    );
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).expect("a line");
    assert!(line.starts_with("listening 127.0.0.1:"), "{line:?}");
    child.signal(libc::SIGINT);
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let exit = child.wait().unwrap();
    let report: serde_json::Value =
        serde_json::from_str(rest.lines().last().expect("report")).expect("JSON");
    assert_eq!(report["contract_violations"], 0, "{report}");
    assert_eq!(report["accepted"], 0, "{report}");
    assert_eq!(exit.code(), Some(0), "{report}");
}
