//! Part 7: size of the cross-built driver image and its largest stack frames.
//!
//!   sys-image <wskecho.sys> <wskecho.pdb>
//!
//! Frames from the image's x64 unwind information (decoded by `wskecho_pecheck::unwind`, the
//! same code as `scripts/test`'s `pecheck --max-stack-frame 1024`), named from the PDB's
//! procedures (`wskecho_pecheck::pdb`), whose `S_FRAMEPROC` records cross-check the sizes
//! (module `wskecho_bench::image`). Writes part `7-image`.

use std::{
    fs,
    path::{Path, PathBuf},
};

use clap::{Arg, Command, value_parser};

use wskecho_bench::{
    image::{name_frames, rows},
    report::{Part, bench_dir, write_part},
};
use wskecho_pecheck::{image::ImageFacts, pdb};

fn run(sys: &Path, pdb: &Path) -> Result<Part, String> {
    let data = fs::read(sys).map_err(|error| format!("{}: {error}", sys.display()))?;
    let image = ImageFacts::parse(&data).map_err(|error| format!("{}: {error}", sys.display()))?;
    let frames = image
        .frames
        .map_err(|error| format!("{}: {error}", sys.display()))?;
    if frames.is_empty() {
        return Err(format!("{}: no unwind information (.pdata)", sys.display()));
    }
    let pdb_data = fs::read(pdb).map_err(|error| format!("{}: {error}", pdb.display()))?;
    let procedures =
        pdb::procedures(&pdb_data).map_err(|error| format!("{}: {error}", pdb.display()))?;
    let named = name_frames(&image.sections, &frames, &procedures);
    for frame in named.iter().take(10) {
        println!(
            "{:6} bytes  (sub rsp {:5}, pushes {:3})  {}",
            frame.frame.bytes(),
            frame.frame.allocation,
            frame.frame.pushes,
            frame.name
        );
    }
    let disagreeing: Vec<&str> = named
        .iter()
        .filter(|n| n.pdb_agrees == Some(false))
        .map(|n| n.name.as_str())
        .collect();
    if !disagreeing.is_empty() {
        println!("PDB S_FRAMEPROC differs from the unwind info for: {disagreeing:?}");
    }
    let file_size = u64::try_from(data.len()).unwrap_or(u64::MAX);
    Ok(Part {
        name: "7-image".into(),
        title: "7 image".into(),
        rows: rows(file_size, &image.sections, &named),
    })
}

fn main() {
    // Bad usage exits with status 2 (clap).
    let matches = Command::new("sys-image")
        .about("Part 7: size of the cross-built driver image and its largest stack frames")
        .args(["wskecho.sys", "wskecho.pdb"].map(|name| {
            Arg::new(name)
                .required(true)
                .value_parser(value_parser!(PathBuf))
        }))
        .get_matches();
    let [sys, pdb] = ["wskecho.sys", "wskecho.pdb"].map(|name| {
        matches
            .get_one::<PathBuf>(name)
            .cloned()
            .unwrap_or_default()
    });
    let part = match run(&sys, &pdb) {
        Ok(part) => part,
        Err(error) => {
            eprintln!("sys-image: {error}");
            std::process::exit(1);
        }
    };
    match write_part(&bench_dir(), &part) {
        Ok(path) => println!("sys-image: wrote {}", path.display()),
        Err(error) => {
            eprintln!("sys-image: writing the part: {error}");
            std::process::exit(1);
        }
    }
}
