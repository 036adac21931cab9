//! The systems Iris boots: the default demo system and the QEMU test
//! scenarios. Each is a manifest plus the task executables it names; names
//! starting with `bad-` are hostile executables made here by corrupting a
//! good one (see [`hostile`]).

use crate::{app, make_image, Built};
use std::path::PathBuf;

/// A bootable system.
pub struct Scenario {
    /// Its name (also the image file name).
    pub name: &'static str,
    /// The manifest text.
    pub manifest: &'static str,
}

/// The default system `cargo xtask run` boots.
pub const DEFAULT: &str = "demo";

/// Every system by name.
pub fn all() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "demo",
            manifest: "task init priority=10 init\ntask hello priority=5\ntask threads priority=5\n\
                       task names priority=8\ntask kv priority=8\ntask kv-client priority=5\n",
        },
        Scenario {
            name: "sched",
            manifest: "task t-sched priority=20 init\ntask busy-a priority=5\ntask busy-b priority=5\n\
                       task prio-low priority=3\ntask prio-high priority=8\n",
        },
        Scenario {
            name: "faults",
            manifest: "task t-faults priority=20 init\ntask bystander priority=5\ntask fault-null priority=5\n\
                       task fault-kwrite priority=5\ntask fault-priv priority=5\ntask panicker priority=5\n",
        },
        Scenario { name: "badsys", manifest: "task t-badsys priority=10 init\n" },
        Scenario { name: "caps", manifest: "task t-caps priority=10 init\ntask hello priority=5\n" },
        Scenario {
            name: "hostile",
            manifest: "task t-hostile priority=10 init\ntask hello priority=5\n\
                       task bad-kaddr priority=5 boot\ntask bad-pastend priority=5 boot\n\
                       task bad-overlap priority=5 boot\ntask bad-huge priority=5 boot\n\
                       task bad-trunc priority=5 boot\ntask bad-wx priority=5 boot\n\
                       task bad-machine priority=5 boot\n",
        },
        Scenario { name: "remap", manifest: "task t-remap priority=10 init\n" },
        Scenario { name: "ipc-longrun", manifest: "task t-ipc-longrun priority=10 init\n" },
        Scenario { name: "limits", manifest: "task t-limits priority=10 init\ntask hello priority=5\n" },
        Scenario {
            name: "frames",
            manifest: "task t-frames priority=10 init\ntask memhog priority=5\ntask threads priority=5\n\
                       task fault-null priority=5\ntask hello priority=5\n",
        },
        Scenario { name: "ipc-errors", manifest: "task t-ipc-errors priority=10 init\ntask hello priority=5\n" },
        Scenario { name: "ipc-rendezvous", manifest: "task t-ipc-rendezvous priority=10 init\n" },
        Scenario { name: "ipc-async", manifest: "task t-ipc-async priority=10 init\n" },
        Scenario { name: "ipc-transfer", manifest: "task t-ipc-transfer priority=10 init\ntask ipc-echo priority=5\n" },
        Scenario { name: "resend", manifest: "task t-resend priority=10 init\ntask resend-srv priority=5\n" },
        Scenario { name: "ipc-regs", manifest: "task t-ipc-regs priority=11 init\n" },
        Scenario {
            name: "ipc-lifecycle",
            manifest: "task t-ipc-lifecycle priority=10 init\ntask ipc-dying-server priority=5\n\
                       task ipc-dying-client priority=5\n",
        },
        Scenario {
            name: "ipc-stress",
            manifest: "task t-ipc-stress priority=10 init\ntask ipc-stress-tx priority=5\n\
                       task ipc-stress-rx priority=6\n",
        },
        // The IPC benchmark (`cargo xtask bench`), not a test: boot it with
        // `-icount` (see `crate::bench`).
        Scenario { name: "bench", manifest: "task bench priority=12 init\ntask bench-server priority=12\n" },
    ]
}

/// Builds the boot image of scenario `name`.
pub fn image(built: &Built, name: &str) -> Result<PathBuf, String> {
    let s = all().into_iter().find(|s| s.name == name).ok_or_else(|| format!("no system named '{name}'"))?;
    let specs = kernel_core::manifest::parse(s.manifest).map_err(|e| format!("{name}: {e}"))?;
    let mut files = Vec::new();
    for spec in &specs {
        let bytes = if spec.name.starts_with("bad-") {
            hostile(&spec.name, &app(built, "hello")?)?
        } else {
            app(built, &spec.name)?
        };
        files.push((spec.name.clone(), bytes));
    }
    make_image(s.name, s.manifest, &files)
}

fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

fn get_u64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// Offsets of the PT_LOAD program headers of a good ELF.
fn load_headers(elf: &[u8]) -> Vec<usize> {
    let phoff = get_u64(elf, 0x20) as usize;
    let entsize = u16::from_le_bytes([elf[0x36], elf[0x37]]) as usize;
    let count = u16::from_le_bytes([elf[0x38], elf[0x39]]) as usize;
    (0..count).map(|i| phoff + i * entsize).filter(|&p| elf[p..p + 4] == 1u32.to_le_bytes()).collect()
}

/// A hostile variant of a good ELF executable.
pub fn hostile(name: &str, good: &[u8]) -> Result<Vec<u8>, String> {
    let mut b = good.to_vec();
    let loads = load_headers(&b);
    if loads.len() < 2 {
        return Err("the template ELF needs two PT_LOAD segments".into());
    }
    let (first, second) = (loads[0], loads[1]);
    match name {
        // A segment in kernel space.
        "bad-kaddr" => put_u64(&mut b, first + 16, 0xFFFF_FFFF_8010_0000),
        // File bytes past the end of the file.
        "bad-pastend" => {
            let len = b.len() as u64;
            put_u64(&mut b, first + 8, len - 16);
        }
        // Two segments on the same pages.
        "bad-overlap" => {
            let v = get_u64(&b, first + 16);
            put_u64(&mut b, second + 16, v);
        }
        // An absurd memory size.
        "bad-huge" => put_u64(&mut b, second + 40, 1 << 46),
        // Cut in the middle of the header.
        "bad-trunc" => b.truncate(40),
        // Writable and executable.
        "bad-wx" => b[first + 4..first + 8].copy_from_slice(&7u32.to_le_bytes()),
        // Not x86-64 (EM_386).
        "bad-machine" => b[0x12..0x14].copy_from_slice(&3u16.to_le_bytes()),
        _ => return Err(format!("no hostile variant named '{name}'")),
    }
    Ok(b)
}
