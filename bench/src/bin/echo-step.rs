//! Placeholder until this measurement lands (scripts/bench reports its part as missing).

fn main() {
    eprintln!("not implemented yet");
    std::process::exit(1);
}
