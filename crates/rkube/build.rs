//! Stamps the binary with the commit it was built from (`rkube --version`).

fn main() {
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=RKUBE_GIT_COMMIT={commit}");
    // What users run (release, and the profiles inheriting it): the PIE's relative
    // relocations packed as DT_RELR (glibc 2.36+, Debian 12), 2 MB of the binary as RELA.
    // (lld's identical-code folding was measured too: nothing left to fold after LLVM's
    // function merging.)
    if std::env::var("PROFILE").as_deref() == Ok("release") {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
    // A new commit (or checkout) changes HEAD or the ref it points at.
    for f in [
        "../../.git/HEAD",
        "../../.git/refs/heads",
        "../../.git/packed-refs",
    ] {
        println!("cargo:rerun-if-changed={f}");
    }
}
