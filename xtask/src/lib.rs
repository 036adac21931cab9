//! Building, packing and running Iris: the library behind `cargo xtask` and
//! the QEMU scenario tests.
//!
//! * [`build_system`] compiles the kernel (higher-half, static) and every user
//!   task with their own flags into `target/iris/`.
//! * [`make_image`] packs a manifest and task executables into a boot image
//!   (`kernel_core::image` format), which QEMU passes as a multiboot module.
//! * [`run`] boots a kernel and image under QEMU (TCG), with a time limit,
//!   and returns the exit status and the serial log.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub mod bench;
pub mod scenarios;

/// QEMU's exit status when init ended with code 0 (ACPI power-off).
pub const EXIT_OK: i32 = 0;
/// QEMU's exit status when init failed (nonzero exit or a fault).
pub const EXIT_INIT_FAILED: i32 = 3;
/// QEMU's exit status when the kernel faulted or panicked.
pub const EXIT_KERNEL_FAULT: i32 = 99;

/// The exact command that installs QEMU on Debian.
pub const QEMU_INSTALL: &str = "apt-get install -y qemu-system-x86";
const QEMU: &str = "qemu-system-x86_64";

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace").to_path_buf()
}

fn out_dir() -> PathBuf {
    root().join("target").join("iris")
}

/// What `build_system` produced.
#[derive(Clone, Debug)]
pub struct Built {
    /// The kernel ELF (with symbols, for gdb).
    pub kernel_elf: PathBuf,
    /// The flat kernel image QEMU boots (`-kernel`).
    pub kernel_bin: PathBuf,
    /// Directory holding the user task executables.
    pub apps: PathBuf,
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn run_checked(cmd: &mut Command, what: &str) -> Result<(), String> {
    let status = cmd.status().map_err(|e| format!("{what}: cannot start: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{what} failed ({status})"))
    }
}

/// Builds the kernel and the user tasks (release profile).
pub fn build_system() -> Result<Built, String> {
    let target = "x86_64-unknown-linux-gnu";
    let dir = out_dir();
    let kdir = dir.join("kernel-build");
    let udir = dir.join("user-build");
    // `--target` keeps these flags away from build scripts and proc macros.
    run_checked(
        cargo()
            .current_dir(root())
            .args(["build", "--release", "--quiet", "-p", "kernel", "--target", target, "--target-dir"])
            .arg(&kdir)
            .env("RUSTFLAGS", "-C code-model=kernel -C relocation-model=static")
            .env_remove("CARGO_ENCODED_RUSTFLAGS"),
        "building the kernel",
    )?;
    run_checked(
        cargo()
            .current_dir(root())
            .args(["build", "--release", "--quiet", "-p", "apps", "--target", target, "--target-dir"])
            .arg(&udir)
            .env("RUSTFLAGS", "-C relocation-model=static")
            .env_remove("CARGO_ENCODED_RUSTFLAGS"),
        "building the user tasks",
    )?;
    let kernel_elf = kdir.join(target).join("release").join("kernel");
    let kernel_bin = dir.join("kernel.bin");
    run_checked(
        Command::new("objcopy").args(["-O", "binary"]).arg(&kernel_elf).arg(&kernel_bin),
        "objcopy of the kernel (install binutils)",
    )?;
    Ok(Built { kernel_elf, kernel_bin, apps: udir.join(target).join("release") })
}

/// Builds once per process (tests share it).
pub fn built() -> Result<Built, String> {
    static ONCE: OnceLock<Result<Built, String>> = OnceLock::new();
    ONCE.get_or_init(build_system).clone()
}

/// Reads a built task executable.
pub fn app(built: &Built, name: &str) -> Result<Vec<u8>, String> {
    std::fs::read(built.apps.join(name)).map_err(|e| format!("task executable '{name}': {e}"))
}

/// Packs `manifest` and the named files into a boot image at `target/iris/<name>.img`.
pub fn make_image(name: &str, manifest: &str, files: &[(String, Vec<u8>)]) -> Result<PathBuf, String> {
    let mut all: Vec<(&str, &[u8])> = vec![("manifest", manifest.as_bytes())];
    all.extend(files.iter().map(|(n, d)| (n.as_str(), d.as_slice())));
    let bytes = kernel_core::image::build(&all).map_err(|e| format!("boot image {name}: {e}"))?;
    let path = out_dir().join(format!("{name}.img"));
    std::fs::create_dir_all(out_dir()).map_err(|e| e.to_string())?;
    std::fs::write(&path, bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

/// Makes sure QEMU is there: installs it with apt-get when running as root
/// on Debian (saying so), otherwise explains how.
pub fn ensure_qemu() -> Result<(), String> {
    if Command::new(QEMU)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
    {
        return Ok(());
    }
    let root_user = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    if root_user && Path::new("/usr/bin/apt-get").exists() {
        eprintln!("xtask: {QEMU} is missing; installing it: apt-get update && {QEMU_INSTALL}");
        let _ = Command::new("apt-get").args(["update", "-qq"]).status();
        let ok = Command::new("apt-get")
            .args(["install", "-y", "-qq", "qemu-system-x86"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return Ok(());
        }
    }
    Err(format!("{QEMU} is not installed; install it with: sudo {QEMU_INSTALL}"))
}

/// How to boot.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Wait for gdb on this TCP port (`-S -gdb tcp::PORT`).
    pub gdb_port: Option<u16>,
    /// Let the guest's TSC count instructions (`-icount shift=0,align=off`).
    pub icount: bool,
    /// Memory in MiB (default 128).
    pub memory_mib: Option<u32>,
    /// Kernel command line (`-append`).
    pub cmdline: Option<String>,
}

/// The QEMU command line for a kernel and image.
pub fn qemu_command(built: &Built, image: &Path, opts: &RunOptions) -> Command {
    let mut c = Command::new(QEMU);
    c.arg("-kernel").arg(&built.kernel_bin).arg("-initrd").arg(image);
    c.args(["-m", &format!("{}M", opts.memory_mib.unwrap_or(128))]);
    c.args(["-cpu", "qemu64,+nx", "-machine", "pc", "-accel", "tcg"]);
    c.args(["-display", "none", "-serial", "stdio", "-monitor", "none", "-no-reboot"]);
    c.args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]);
    if let Some(line) = &opts.cmdline {
        c.arg("-append").arg(line);
    }
    if opts.icount {
        c.args(["-icount", "shift=0,align=off"]);
    }
    if let Some(port) = opts.gdb_port {
        c.args(["-S", "-gdb", &format!("tcp::{port}")]);
    }
    c
}

/// What a run produced.
#[derive(Debug)]
pub struct RunResult {
    /// QEMU's exit status (`None` if killed at the time limit).
    pub status: Option<i32>,
    /// Everything the serial port printed.
    pub log: String,
    /// True if the time limit ended the run.
    pub timed_out: bool,
}

/// Boots `image` with the given time limit, capturing the serial log.
pub fn run_captured(built: &Built, image: &Path, opts: &RunOptions, limit: Duration) -> Result<RunResult, String> {
    ensure_qemu()?;
    let mut child = qemu_command(built, image, opts)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting {QEMU}: {e}"))?;
    let mut out = child.stdout.take().expect("piped stdout");
    let reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        s
    });
    let start = Instant::now();
    let mut timed_out = false;
    let status = loop {
        if let Some(s) = child.try_wait().map_err(|e| e.to_string())? {
            break s.code();
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            timed_out = true;
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let bytes = reader.join().unwrap_or_default();
    let log = String::from_utf8_lossy(&bytes).replace('\r', "");
    Ok(RunResult { status, log, timed_out })
}

/// The meaning of a QEMU exit status, for people.
pub fn describe_status(status: Option<i32>) -> &'static str {
    match status {
        Some(EXIT_OK) => "init finished with code 0",
        Some(EXIT_INIT_FAILED) => "init failed",
        Some(EXIT_KERNEL_FAULT) => "kernel fault or panic",
        Some(_) => "unexpected QEMU exit",
        None => "killed",
    }
}
