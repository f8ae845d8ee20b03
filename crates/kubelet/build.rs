//! Compiles the pod sandbox ("pause") program into a static binary that `images.rs` embeds.
//!
//! C with `gcc -static` because it is the smallest thing that builds reliably on a plain Debian
//! machine with a Rust toolchain (which already needs `cc` and libc6-dev's `libc.a`).

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let src = PathBuf::from("pause/pause.c");
    println!("cargo::rerun-if-changed={}", src.display());
    println!("cargo::rerun-if-env-changed=CC");
    let Some(out_dir) = env::var_os("OUT_DIR") else {
        println!("cargo::error=OUT_DIR is not set");
        return;
    };
    let out = PathBuf::from(out_dir).join("pause");
    let cc = env::var("CC").unwrap_or_else(|_| "cc".to_owned());
    // -s and --build-id=none keep the binary (and so the image digest) byte-reproducible.
    let status = Command::new(&cc)
        .args([
            "-Os",
            "-static",
            "-s",
            "-Wall",
            "-Werror",
            "-Wl,--build-id=none",
            "-o",
        ])
        .arg(&out)
        .arg(&src)
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => println!(
            "cargo::error={cc} -static failed ({s}) building the pause program: install gcc and libc6-dev"
        ),
        Err(e) => println!("cargo::error=cannot run {cc} to build the pause program: {e}"),
    }
}
