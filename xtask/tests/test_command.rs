//! `cargo xtask test` against a stand-in cargo that records its calls: the checks run in
//! order before the suite (the build with clippy as the wrapper), a failing one stops it,
//! and extra arguments reach only the
//! test runner.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

struct FakeCargo {
    dir: tempfile::TempDir,
}

impl FakeCargo {
    fn new() -> FakeCargo {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("cargo");
        std::fs::write(
            &script,
            concat!(
                "#!/bin/sh\n",
                "w=; [ -n \"$RUSTC_WORKSPACE_WRAPPER\" ] && w=\" (clippy: $CLIPPY_ARGS)\"\n",
                "echo \"$*$w\" >> \"$FAKE_CARGO_LOG\"\n",
                "[ -n \"$FAKE_CARGO_FAIL\" ] && case \"$*\" in \"$FAKE_CARGO_FAIL\"*) exit 7;; esac\n",
                "exit 0\n",
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        FakeCargo { dir }
    }

    /// Runs `xtask test ARGS` with `cargo SUBCOMMAND` failing when `fail` names it.
    fn xtask_test(&self, args: &[&str], fail: &str) -> (Output, Vec<String>) {
        let log = self.dir.path().join("calls");
        let _ = std::fs::remove_file(&log);
        let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
            .arg("test")
            .args(args)
            .env("CARGO", self.dir.path().join("cargo"))
            .env("FAKE_CARGO_LOG", &log)
            .env("FAKE_CARGO_FAIL", fail)
            // Set when this test itself runs under `cargo xtask test`.
            .env_remove("RUSTC_WORKSPACE_WRAPPER")
            .env_remove("CLIPPY_ARGS")
            .output()
            .unwrap();
        let calls = std::fs::read_to_string(&log).unwrap_or_default();
        (out, calls.lines().map(str::to_owned).collect())
    }
}

/// `xtask test` installs the tools first; where they are not installed yet that needs
/// PyPI, which these tests should not.
fn tools_installed() -> bool {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let ok = Path::new(&root).join("tools/bin/nats-server").is_file();
    if !ok {
        eprintln!("skipped: tools/ is not installed (run `cargo xtask tools`)");
    }
    ok
}

const FMT: &str = "fmt --all --check";
const BUILD: &str =
    "nextest run --no-run --workspace (clippy: -D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__)";

#[test]
fn fmt_then_a_clippy_linted_build_run_before_the_suite_and_extra_args_go_to_nextest_only() {
    if !tools_installed() {
        return;
    }
    let cargo = FakeCargo::new();
    let (out, calls) = cargo.xtask_test(&["-p", "gitfleet-model", "--", "--nocapture"], "");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        calls,
        [
            "nextest --version",
            FMT,
            BUILD,
            "nextest run --no-fail-fast -p gitfleet-model -- --nocapture \
             (clippy: -D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__)",
        ]
    );

    let (out, calls) = cargo.xtask_test(&[], "");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        calls.last().unwrap(),
        "nextest run --no-fail-fast --workspace \
         (clippy: -D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__)"
    );
}

#[test]
fn a_failing_check_stops_before_the_suite_and_is_named() {
    if !tools_installed() {
        return;
    }
    let cargo = FakeCargo::new();
    for (fail, expected_calls, named) in [
        (
            "fmt",
            &["nextest --version", FMT][..],
            "`cargo fmt --all --check` failed",
        ),
        (
            "nextest run --no-run",
            &["nextest --version", FMT, BUILD][..],
            "`cargo nextest run --no-run --workspace` failed",
        ),
    ] {
        let (out, calls) = cargo.xtask_test(&["-p", "gitfleet-model"], fail);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert_eq!(calls, expected_calls, "{stderr}");
        assert!(stderr.contains(named), "{stderr}");
        assert!(stderr.contains("the tests were not run"), "{stderr}");
    }
}
