//! The systems Iris boots: the default demo system and the QEMU test
//! scenarios. Each is a manifest plus the task executables it names, and
//! sometimes deliberately broken executables.

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
    vec![Scenario { name: "demo", manifest: "task init priority=10 init\n" }]
}

/// Builds the boot image of scenario `name`.
pub fn image(built: &Built, name: &str) -> Result<PathBuf, String> {
    let s = all().into_iter().find(|s| s.name == name).ok_or_else(|| format!("no system named '{name}'"))?;
    let specs = kernel_core::manifest::parse(s.manifest).map_err(|e| format!("{name}: {e}"))?;
    let mut files = Vec::new();
    for spec in &specs {
        files.push((spec.name.clone(), app(built, &spec.name)?));
    }
    make_image(s.name, s.manifest, &files)
}
