//! `cargo xtask` — build, pack and run Iris.
//!
//! * `cargo xtask run [SYSTEM]` — boot the default system (or SYSTEM) in QEMU on this terminal.
//! * `cargo xtask run --gdb [SYSTEM]` — the same, waiting for gdb on port 1234.
//! * `cargo xtask image [SYSTEM]` — build the kernel and the boot image only.
//! * `cargo xtask bench [--check] [--update-baseline]` — the IPC benchmark
//!   under QEMU `-icount` (see `docs/performance.md`): prints a table, writes
//!   `target/bench/ipc.json`; `--check` fails if an operation grew more than
//!   5% over `bench/baseline.json`; `--update-baseline` rewrites that file.
//! * `cargo xtask bench --trace` — where the kernel's instructions go: a
//!   per-instruction QEMU trace of a few operations, by kernel function.

use std::process::ExitCode;
use xtask::{scenarios, RunOptions};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> Result<ExitCode, String> {
    let cmd = args.first().map(String::as_str).unwrap_or("help");
    let gdb = args.iter().any(|a| a == "--gdb");
    let system = args.iter().skip(1).find(|a| !a.starts_with("--")).map_or(scenarios::DEFAULT, String::as_str);
    match cmd {
        "run" | "gdb" => {
            xtask::ensure_qemu()?;
            let built = xtask::build_system()?;
            let image = scenarios::image(&built, system)?;
            let opts = RunOptions { gdb_port: (gdb || cmd == "gdb").then_some(1234), ..Default::default() };
            if let Some(port) = opts.gdb_port {
                eprintln!("xtask: QEMU waits for a debugger on port {port}:");
                eprintln!("  gdb {} -ex 'target remote :{port}'", built.kernel_elf.display());
            }
            let status =
                xtask::qemu_command(&built, &image, &opts).status().map_err(|e| format!("starting QEMU: {e}"))?;
            let code = status.code();
            eprintln!("xtask: QEMU exited with {code:?}: {}", xtask::describe_status(code));
            Ok(if code == Some(xtask::EXIT_OK) { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        "image" => {
            let built = xtask::build_system()?;
            let image = scenarios::image(&built, system)?;
            println!("kernel: {}\nimage:  {}", built.kernel_bin.display(), image.display());
            Ok(ExitCode::SUCCESS)
        }
        "bench" => {
            let check = args.iter().any(|a| a == "--check");
            let update = args.iter().any(|a| a == "--update-baseline");
            let trace = args.iter().any(|a| a == "--trace");
            if let Some(bad) =
                args.iter().skip(1).find(|a| !["--check", "--update-baseline", "--trace"].contains(&a.as_str()))
            {
                return Err(format!("bench: unknown argument '{bad}' (use --check, --update-baseline or --trace)"));
            }
            let ok = if trace { xtask::bench::trace_command()? } else { xtask::bench::command(check, update)? };
            Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        _ => {
            eprintln!("usage: cargo xtask run [--gdb] [SYSTEM] | image [SYSTEM] | bench [--check] [--update-baseline] | bench --trace");
            eprintln!("systems: {}", scenarios::all().iter().map(|s| s.name).collect::<Vec<_>>().join(", "));
            Ok(ExitCode::FAILURE)
        }
    }
}
