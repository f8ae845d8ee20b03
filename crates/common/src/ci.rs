//! Tests that need what only some machines have (root, containerd, nftables) skip where it
//! is missing; under CI (`RKUBE_REQUIRE_ALL_TESTS=1`, which `.ci/run` sets) a skip is a
//! failure, so a green CI means every such test ran.

/// The variable that turns skips into failures.
pub const REQUIRE_ALL: &str = "RKUBE_REQUIRE_ALL_TESTS";

/// Skips the calling test for `reason`, or panics if every test must run.
pub fn skip(reason: &str) {
    if std::env::var(REQUIRE_ALL).is_ok_and(|v| !v.is_empty() && v != "0") {
        panic!("{REQUIRE_ALL} is set and this test would skip: {reason}");
    }
    eprintln!("skipping: {reason}");
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_skip_fails_when_every_test_must_run() {
        // The guard itself, run in a child so the environment of this process is untouched.
        let exe = std::env::current_exe().unwrap();
        let out = std::process::Command::new(exe)
            .args([
                "--exact",
                "ci::tests::skipper",
                "--nocapture",
                "--include-ignored",
            ])
            .env(super::REQUIRE_ALL, "1")
            .output()
            .unwrap();
        assert!(!out.status.success(), "a skip under CI must fail");
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "ci::tests::skipper",
                "--nocapture",
                "--include-ignored",
            ])
            .env_remove(super::REQUIRE_ALL)
            .output()
            .unwrap();
        assert!(out.status.success(), "a skip outside CI passes");
    }

    /// Run only by the test above.
    #[test]
    #[ignore]
    fn skipper() {
        super::skip("the guard's own check");
    }
}
