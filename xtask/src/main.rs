//! Developer tasks for the gitfleet workspace: `cargo xtask <command>`, one module per
//! command (see `USAGE`).

mod bench;
mod demo;
mod loadtest;
mod test;
mod tools;
mod up;
mod workspace;

use std::ffi::OsString;

const USAGE: &str = "\
usage: cargo xtask <command> [args]

commands:
  tools            install kubectl, nats-server, Helm's C library (pinned) and sshd
                   (Debian's openssh-server, unpacked) into tools/; idempotent
  test [args]      tools, `cargo fmt --all --check`, `cargo clippy --workspace --all-targets
                   -- -D warnings`, then `cargo nextest run --workspace --no-fail-fast [args]`
  up               tools, build, run the local stack in the foreground (Ctrl-C stops it)
  bench [args]     `cargo run --release -p cluster-sim -- bench [args]`
  loadtest [args]  tools, `cargo build --release --workspace --bins`, then
                   `cargo run --release -p loadtest-driver -- [args]` (e.g. --apps 100)";

fn main() {
    let mut args = std::env::args_os().skip(1);
    let cmd = args.next().map(|a| a.to_string_lossy().into_owned());
    let rest: Vec<OsString> = args.collect();
    let result = match cmd.as_deref() {
        Some("tools") => tools::install().map(|_| 0),
        Some("test") => test::run(&rest),
        Some("up") => up::run(),
        Some("bench") => bench::run("bench", &rest),
        Some("loadtest") => loadtest::run(&rest),
        Some("help" | "-h" | "--help") => {
            println!("{USAGE}");
            Ok(0)
        }
        Some(other) => {
            eprintln!("xtask: unknown command `{other}`\n\n{USAGE}");
            Ok(2)
        }
        None => {
            eprintln!("{USAGE}");
            Ok(2)
        }
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            std::process::exit(1);
        }
    }
}
