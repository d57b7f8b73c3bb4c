//! `wskecho-pecheck <image.sys> [options]`: checks a cross-built driver image (see `cli`).

use wskecho_pecheck::cli::{self, Stop};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = match cli::parse(&args) {
        Ok(options) => cli::run(&options),
        Err(Stop::Help(text)) => {
            print!("{text}");
            0
        }
        Err(Stop::Usage(message)) => {
            eprintln!("pecheck: error: {message}\n{}", cli::usage());
            2
        }
    };
    std::process::exit(code);
}
