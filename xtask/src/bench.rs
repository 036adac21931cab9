//! `cargo xtask bench`: the IPC benchmark. Boots the "bench" system (its
//! init is `apps/src/bin/bench.rs`) under QEMU with `-icount
//! shift=0,align=off`, where the guest's `rdtsc` counts executed guest
//! instructions exactly, once with the IPC fast path on and once with
//! `nofastpath` on the kernel command line; parses the figures the guest
//! prints; prints a table with the targets of the IPC performance issue;
//! writes `target/bench/ipc.json`; and compares with, or rewrites, the
//! committed baseline `bench/baseline.json`. See `docs/performance.md`.
//!
//! The counts are exact and repeatable (the same binaries give the same
//! numbers on every run), so the guard (`--check`) allows no noise: it
//! fails when a baselined count grows by more than [`TOLERANCE_PERCENT`].

use crate::{describe_status, RunOptions};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Time limit of one boot of the benchmark (it takes a few seconds).
pub const TIME_LIMIT: Duration = Duration::from_secs(600);
/// Allowed growth of a baselined count, in percent.
pub const TOLERANCE_PERCENT: u64 = 5;
/// Unit of every figure.
pub const UNIT: &str = "guest instructions (QEMU TCG, -icount shift=0,align=off)";

/// The operations, in table order, with what each measures.
pub const OPERATIONS: &[(&str, &str)] = &[
    ("null-syscall", "null syscall (Counter with an unknown number)"),
    ("yield", "yield, no other thread ready"),
    ("send-revoked", "send with a revoked token (error path)"),
    ("async-send-recv", "async endpoint: send + receive 8 B, one thread"),
    ("send-recv-sync", "sync one-way send -> waiting receiver, 8 B, 2 threads"),
    ("call-0w-thread", "call + reply, 0 words, 2 threads of one task"),
    ("call-8w-thread", "call + reply, 8 words, 2 threads of one task"),
    ("call-0w-task", "call + reply, 0 words, 2 tasks"),
    ("call-8w-task", "call + reply, 8 words, 2 tasks"),
    ("call-256b-copy", "call + reply, 256 B each way, copy"),
    ("call-4k-copy", "call + reply, 4 KiB each way, copy"),
    ("call-16k-copy", "call + reply, 16 KiB each way, copy"),
    ("call-64k-copy", "call + reply, 64 KiB each way, copy"),
    ("call-4k-remap", "call + reply, 4 KiB each way, remap"),
    ("call-16k-remap", "call + reply, 16 KiB each way, remap"),
    ("call-64k-remap", "call + reply, 64 KiB each way, remap"),
    ("call-4k-remap-fresh", "call + reply, 4 KiB each way, remap, pages rewritten"),
    ("call-16k-remap-fresh", "call + reply, 16 KiB each way, remap, pages rewritten"),
    ("call-64k-remap-fresh", "call + reply, 64 KiB each way, remap, pages rewritten"),
];

/// The kernel command line of the benchmark's boots (with `nofastpath`
/// added for the second): messages are remapped from one page on, so that
/// the 4 KiB remap rows can be measured. No other row depends on the
/// threshold: the copy rows' buffers sit at different page offsets (never
/// remapped), the other remap rows are 16 KiB and more (the default
/// threshold, `REMAP_MIN`), and the check costs the same either way.
pub const BENCH_CMDLINE: &str = "remap_min=4096";

/// One figure: guest instructions per operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Figure {
    /// Minimum over the measured iterations.
    pub min: u64,
    /// Median over the measured iterations.
    pub median: u64,
    /// Measured iterations (after the warm-up).
    pub iters: u64,
}

/// A `bench: remap …` line (pages the calls of one figure remapped) or a
/// `bench: cow …` line (copy-on-write copies the measured calls of a
/// `-fresh` figure took).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageCheck {
    /// Operation.
    pub op: String,
    /// `user` or `kernel`.
    pub variant: String,
    /// Pages counted: remapped (kernel counter `RemappedPages`) or copied
    /// on a write (`CowCopies`).
    pub pages: u64,
    /// Pages there should be (0 for the remaps of copies).
    pub expected: u64,
}

/// What one boot of the benchmark reported.
#[derive(Clone, Debug, Default)]
pub struct Results {
    /// Whether the kernel said its IPC fast path was on.
    pub fastpath: bool,
    /// Figures by (operation, variant).
    pub figures: BTreeMap<(String, String), Figure>,
    /// Remap counts.
    pub remap: Vec<PageCheck>,
    /// Copy-on-write counts.
    pub cow: Vec<PageCheck>,
    /// The guest's calibration line.
    pub calibration: String,
    /// The guest's closing line (timer ticks, context switches).
    pub done: String,
}

fn field(word: &str, name: &str) -> Result<u64, String> {
    word.strip_prefix(name)
        .and_then(|v| v.strip_prefix('='))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("expected {name}=<number>, found '{word}'"))
}

/// Parses the serial log of one boot.
///
/// # Errors
/// A `bench: FAILED` line, a malformed figure line, no fast-path line from
/// the kernel, or no `bench: done`.
pub fn parse_log(log: &str) -> Result<Results, String> {
    let mut r = Results::default();
    let mut fast = None;
    for line in log.lines() {
        if let Some(rest) = line.strip_prefix("[iris] IPC fast path ") {
            fast = Some(rest.starts_with("on"));
            continue;
        }
        let Some(rest) = line.strip_prefix("bench: ") else { continue };
        let words: Vec<&str> = rest.split_whitespace().collect();
        match words.as_slice() {
            ["FAILED:", ..] => return Err(format!("the benchmark failed: {line}")),
            ["done:", ..] => r.done = rest.to_string(),
            ["calibration", ..] => r.calibration = rest.to_string(),
            ["remap", op, variant, pages, expected] => r.remap.push(PageCheck {
                op: op.to_string(),
                variant: variant.to_string(),
                pages: field(pages, "pages")?,
                expected: field(expected, "expected")?,
            }),
            ["cow", op, variant, copies, expected] => r.cow.push(PageCheck {
                op: op.to_string(),
                variant: variant.to_string(),
                pages: field(copies, "copies")?,
                expected: field(expected, "expected")?,
            }),
            [op, variant, min, median, iters] if min.starts_with("min=") => {
                let f =
                    Figure { min: field(min, "min")?, median: field(median, "median")?, iters: field(iters, "iters")? };
                r.figures.insert((op.to_string(), variant.to_string()), f);
            }
            _ => {}
        }
    }
    r.fastpath = fast.ok_or("the kernel did not say whether its IPC fast path is on")?;
    if r.done.is_empty() {
        return Err("the benchmark did not finish ('bench: done' missing)".into());
    }
    Ok(r)
}

/// The key of a figure in the baseline and the JSON output.
pub fn key(op: &str, variant: &str, fastpath: bool) -> String {
    format!("{op}/{variant}/fastpath-{}", if fastpath { "on" } else { "off" })
}

/// The counts the guard compares: the minimum of every figure of both
/// boots, except the user figures of the `-fresh` rows ([`guarded`]).
pub fn counts(runs: &[&Results]) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for r in runs {
        for ((op, variant), f) in &r.figures {
            if guarded(op, variant) {
                m.insert(key(op, variant, r.fastpath), f.min);
            }
        }
    }
    m
}

/// Whether the guard compares a figure. The user figures of the `-fresh`
/// rows are printed but not guarded: they include the copy-on-write faults
/// of the client's writes, whose cost follows where the frame allocator's
/// search happens to stand (their kernel figures are guarded).
pub fn guarded(op: &str, variant: &str) -> bool {
    !(op.ends_with("-fresh") && variant == "user")
}

/// One target of the IPC performance issue.
#[derive(Clone, Debug)]
pub struct Target {
    /// What it says.
    pub name: &'static str,
    /// The operation it is about.
    pub op: &'static str,
    /// The limit: instructions, or a factor for [`TargetKind::RatioOffOn`].
    pub limit: f64,
    /// How it is evaluated.
    pub kind: TargetKind,
}

/// How a target is evaluated, always on the kernel-path minimum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetKind {
    /// Fast path on, at most `limit` instructions.
    MaxFast,
    /// Fast path off at most `limit` × fast path on.
    RatioOffOn,
}

/// The targets.
pub fn targets() -> Vec<Target> {
    use TargetKind::*;
    vec![
        Target { name: "null syscall <= 60", op: "null-syscall", limit: 60.0, kind: MaxFast },
        Target {
            name: "fast-path call+reply, 2 address spaces, 0 words <= 220",
            op: "call-0w-task",
            limit: 220.0,
            kind: MaxFast,
        },
        Target {
            name: "fast-path call+reply, 2 address spaces, 8 words <= 260",
            op: "call-8w-task",
            limit: 260.0,
            kind: MaxFast,
        },
        Target { name: "general path <= 3x fast path, 0 words", op: "call-0w-task", limit: 3.0, kind: RatioOffOn },
        Target { name: "general path <= 3x fast path, 8 words", op: "call-8w-task", limit: 3.0, kind: RatioOffOn },
        Target { name: "64 KiB call+reply by remap <= 3,000", op: "call-64k-remap", limit: 3000.0, kind: MaxFast },
        Target {
            name: "the same, pages rewritten before each call",
            op: "call-64k-remap-fresh",
            limit: 3000.0,
            kind: MaxFast,
        },
    ]
}

/// A target's measured value (instructions or ratio) and whether it is met.
pub fn evaluate(t: &Target, on: &Results, off: &Results) -> Option<(f64, bool)> {
    let kernel = |r: &Results| r.figures.get(&(t.op.to_string(), "kernel".to_string())).map(|f| f.min as f64);
    let v = match t.kind {
        TargetKind::MaxFast => kernel(on)?,
        TargetKind::RatioOffOn => kernel(off)? / kernel(on)?,
    };
    Some((v, v <= t.limit))
}

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "NOT MET"
    }
}

fn show_value(t: &Target, v: f64) -> String {
    match t.kind {
        TargetKind::MaxFast => format!("{v:.0}"),
        TargetKind::RatioOffOn => format!("{v:.2}x"),
    }
}

fn ordered_ops(on: &Results, off: &Results) -> Vec<(String, String)> {
    let mut ops: Vec<(String, String)> = OPERATIONS.iter().map(|(o, d)| (o.to_string(), d.to_string())).collect();
    for (op, _) in on.figures.keys().chain(off.figures.keys()) {
        if !ops.iter().any(|(o, _)| o == op) {
            ops.push((op.clone(), String::new()));
        }
    }
    ops
}

/// The table people read.
pub fn table(on: &Results, off: &Results) -> String {
    let cell = |r: &Results, op: &str, variant: &str| match r.figures.get(&(op.to_string(), variant.to_string())) {
        Some(f) if f.min == f.median => format!("{}", f.min),
        Some(f) => format!("{}/{}", f.min, f.median),
        None => "-".into(),
    };
    let mut t = String::new();
    let _ = writeln!(t, "IPC benchmark: {UNIT}, per operation.");
    let _ = writeln!(
        t,
        "Each cell is min/median over the measured iterations; one number when they are equal.\n\
         user = rdtsc around the SDK call (server: SDK loop); kernel = from `syscall` to the first user\n\
         instruction after the return (server: fixed asm loop, its 6 user instructions subtracted).\n\
         -fresh: before each call the client writes a byte in every page of both buffers; user includes\n\
         those writes and their copy-on-write faults, kernel does not.\n"
    );
    let targets = targets();
    let _ = writeln!(
        t,
        "{:<20} {:<54} | {:>9} {:>9} | {:>9} {:>9} | targets (kernel path, minimum)",
        "operation", "what it measures", "on:user", "on:kernel", "off:user", "off:kernel"
    );
    let _ = writeln!(t, "{}", "-".repeat(20 + 1 + 54 + 3 + 19 + 3 + 19 + 3 + 30));
    for (op, desc) in ordered_ops(on, off) {
        let marks: Vec<String> = targets
            .iter()
            .filter(|x| x.op == op)
            .map(|x| match evaluate(x, on, off) {
                Some((v, met)) if x.kind == TargetKind::MaxFast => {
                    format!("{} (<= {}): {}", show_value(x, v), x.limit, verdict(met))
                }
                Some((v, met)) => format!("off/on {} (<= {}x): {}", show_value(x, v), x.limit, verdict(met)),
                None => format!("{}: no figure", x.name),
            })
            .collect();
        let _ = writeln!(
            t,
            "{:<20} {:<54} | {:>9} {:>9} | {:>9} {:>9} | {}",
            op,
            desc,
            cell(on, &op, "user"),
            cell(on, &op, "kernel"),
            cell(off, &op, "user"),
            cell(off, &op, "kernel"),
            marks.join("; ")
        );
    }
    let _ = writeln!(t, "\nTargets of the IPC performance issue (kernel path, minimum):");
    for x in &targets {
        let _ = match evaluate(x, on, off) {
            Some((v, met)) => {
                writeln!(t, "  {:<58} {:>9}  {}", x.name, show_value(x, v), if met { "met" } else { "NOT MET" })
            }
            None => writeln!(t, "  {:<58} {:>9}  no figure", x.name, "-"),
        };
    }
    for r in [on, off] {
        let remaps =
            r.remap.iter().filter(|c| c.expected > 0).map(|c| (c, "pages remapped", "the kernel copied instead"));
        let cows = r.cow.iter().map(|c| (c, "copy-on-write copies", "not every remap was of fresh pages"));
        for (c, what, meaning) in remaps.chain(cows).filter(|(c, _, _)| c.pages != c.expected) {
            let _ = writeln!(
                t,
                "warning: {} {} (fast path {}): {} {what}, {} expected: {meaning}",
                c.op,
                c.variant,
                if r.fastpath { "on" } else { "off" },
                c.pages,
                c.expected
            );
        }
    }
    t
}

fn json_str(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// The results as JSON (`target/bench/ipc.json`).
pub fn to_json(on: &Results, off: &Results) -> String {
    let mut j = String::from("{\n");
    let _ = writeln!(j, "  \"unit\": {},", json_str(UNIT));
    let _ = writeln!(j, "  \"figures\": [");
    let mut rows = Vec::new();
    for (op, desc) in ordered_ops(on, off) {
        for r in [on, off] {
            for variant in ["user", "kernel"] {
                if let Some(f) = r.figures.get(&(op.clone(), variant.to_string())) {
                    rows.push(format!(
                        "    {{\"op\": {}, \"description\": {}, \"fastpath\": {}, \"variant\": {}, \"min\": {}, \"median\": {}, \"iters\": {}}}",
                        json_str(&op),
                        json_str(&desc),
                        r.fastpath,
                        json_str(variant),
                        f.min,
                        f.median,
                        f.iters
                    ));
                }
            }
        }
    }
    let _ = writeln!(j, "{}\n  ],", rows.join(",\n"));
    for (name, count, lists) in
        [("remap_checks", "pages_remapped", [&on.remap, &off.remap]), ("cow_checks", "cow_copies", [&on.cow, &off.cow])]
    {
        let mut rows = Vec::new();
        for (r, list) in [on, off].into_iter().zip(lists) {
            for c in list {
                rows.push(format!(
                    "    {{\"op\": {}, \"fastpath\": {}, \"variant\": {}, \"{count}\": {}, \"expected\": {}}}",
                    json_str(&c.op),
                    r.fastpath,
                    json_str(&c.variant),
                    c.pages,
                    c.expected
                ));
            }
        }
        let _ = writeln!(j, "  \"{name}\": [\n{}\n  ],", rows.join(",\n"));
    }
    let mut rows = Vec::new();
    for x in targets() {
        let (v, met) = evaluate(&x, on, off).map_or(("null".to_string(), "null".to_string()), |(v, m)| {
            (if v.fract() == 0.0 { format!("{v:.0}") } else { format!("{v:.3}") }, m.to_string())
        });
        rows.push(format!(
            "    {{\"target\": {}, \"op\": {}, \"limit\": {}, \"value\": {v}, \"met\": {met}}}",
            json_str(x.name),
            json_str(x.op),
            x.limit
        ));
    }
    let _ = writeln!(j, "  \"targets\": [\n{}\n  ],", rows.join(",\n"));
    let _ = writeln!(
        j,
        "  \"calibration\": {{\"fastpath_on\": {}, \"fastpath_off\": {}}},",
        json_str(&on.calibration),
        json_str(&off.calibration)
    );
    let _ = writeln!(
        j,
        "  \"guest_summary\": {{\"fastpath_on\": {}, \"fastpath_off\": {}}}",
        json_str(&on.done),
        json_str(&off.done)
    );
    j.push_str("}\n");
    j
}

/// The baseline file's text for these counts.
pub fn baseline_json(counts: &BTreeMap<String, u64>) -> String {
    let mut j = String::from("{\n");
    let _ = writeln!(
        j,
        "  \"comment\": {},",
        json_str(
            "Guest instructions per operation (minimum over the measured iterations), QEMU -icount shift=0. \
             `cargo xtask bench --check` fails when one grows by more than tolerance_percent. Written by \
             `cargo xtask bench --update-baseline`; update it only in a commit that says why. See docs/performance.md."
        )
    );
    let _ = writeln!(j, "  \"unit\": {},", json_str(UNIT));
    let _ = writeln!(j, "  \"tolerance_percent\": {TOLERANCE_PERCENT},");
    let rows: Vec<String> = counts.iter().map(|(k, v)| format!("    {}: {v}", json_str(k))).collect();
    let _ = writeln!(j, "  \"counts\": {{\n{}\n  }}", rows.join(",\n"));
    j.push_str("}\n");
    j
}

/// A JSON value (enough of JSON to read the baseline back).
#[derive(Clone, Debug, PartialEq)]
pub enum Json {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A number.
    Num(f64),
    /// A string.
    Str(String),
    /// An array.
    Arr(Vec<Json>),
    /// An object, keys in order.
    Obj(Vec<(String, Json)>),
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }
    fn err<T>(&self, what: &str) -> Result<T, String> {
        Err(format!("JSON: {what} at byte {}", self.i))
    }
    fn eat(&mut self, c: u8) -> Result<(), String> {
        self.ws();
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            Ok(())
        } else {
            self.err(&format!("expected '{}'", c as char))
        }
    }
    fn string(&mut self) -> Result<String, String> {
        self.eat(b'"')?;
        let mut out = Vec::new();
        loop {
            let Some(&c) = self.s.get(self.i) else { return self.err("unterminated string") };
            self.i += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    let Some(&e) = self.s.get(self.i) else { return self.err("bad escape") };
                    self.i += 1;
                    match e {
                        b'n' => out.push(b'\n'),
                        b't' => out.push(b'\t'),
                        b'r' => out.push(b'\r'),
                        b'u' => {
                            let hex = self.s.get(self.i..self.i + 4).ok_or("JSON: bad \\u escape")?;
                            let code = u32::from_str_radix(std::str::from_utf8(hex).map_err(|e| e.to_string())?, 16)
                                .map_err(|e| e.to_string())?;
                            self.i += 4;
                            let mut b = [0u8; 4];
                            out.extend_from_slice(char::from_u32(code).unwrap_or('?').encode_utf8(&mut b).as_bytes());
                        }
                        other => out.push(other),
                    }
                }
                c => out.push(c),
            }
        }
        String::from_utf8(out).map_err(|e| e.to_string())
    }
    fn value(&mut self) -> Result<Json, String> {
        self.ws();
        match self.s.get(self.i) {
            Some(b'{') => {
                self.i += 1;
                let mut fields = Vec::new();
                self.ws();
                if self.s.get(self.i) == Some(&b'}') {
                    self.i += 1;
                    return Ok(Json::Obj(fields));
                }
                loop {
                    let k = self.string()?;
                    self.eat(b':')?;
                    fields.push((k, self.value()?));
                    self.ws();
                    match self.s.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b'}') => {
                            self.i += 1;
                            return Ok(Json::Obj(fields));
                        }
                        _ => return self.err("expected ',' or '}'"),
                    }
                }
            }
            Some(b'[') => {
                self.i += 1;
                let mut items = Vec::new();
                self.ws();
                if self.s.get(self.i) == Some(&b']') {
                    self.i += 1;
                    return Ok(Json::Arr(items));
                }
                loop {
                    items.push(self.value()?);
                    self.ws();
                    match self.s.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b']') => {
                            self.i += 1;
                            return Ok(Json::Arr(items));
                        }
                        _ => return self.err("expected ',' or ']'"),
                    }
                }
            }
            Some(b'"') => Ok(Json::Str(self.string()?)),
            Some(_) => {
                let start = self.i;
                while self.i < self.s.len() && !b",}] \t\r\n".contains(&self.s[self.i]) {
                    self.i += 1;
                }
                match &self.s[start..self.i] {
                    b"null" => Ok(Json::Null),
                    b"true" => Ok(Json::Bool(true)),
                    b"false" => Ok(Json::Bool(false)),
                    w => std::str::from_utf8(w)
                        .ok()
                        .and_then(|w| w.parse().ok())
                        .map(Json::Num)
                        .map_or_else(|| self.err("bad value"), Ok),
                }
            }
            None => self.err("unexpected end"),
        }
    }
}

/// Parses a JSON document.
///
/// # Errors
/// Malformed JSON or trailing text.
pub fn parse_json(text: &str) -> Result<Json, String> {
    let mut p = Parser { s: text.as_bytes(), i: 0 };
    let v = p.value()?;
    p.ws();
    if p.i != p.s.len() {
        return p.err("trailing text");
    }
    Ok(v)
}

/// The allowed growth a baseline file states (`tolerance_percent`), or
/// [`TOLERANCE_PERCENT`].
///
/// # Errors
/// Malformed JSON, or a tolerance that is not a whole number.
pub fn baseline_tolerance(text: &str) -> Result<u64, String> {
    let Json::Obj(top) = parse_json(text)? else { return Err("baseline: not a JSON object".into()) };
    match top.iter().find(|(k, _)| k == "tolerance_percent") {
        None => Ok(TOLERANCE_PERCENT),
        Some((_, Json::Num(n))) if *n >= 0.0 && n.fract() == 0.0 => Ok(*n as u64),
        Some(_) => Err("baseline: tolerance_percent is not a whole number".into()),
    }
}

/// The `counts` of a baseline file.
///
/// # Errors
/// Malformed JSON, no `counts` object, or a count that is not a whole number.
pub fn parse_baseline(text: &str) -> Result<BTreeMap<String, u64>, String> {
    let Json::Obj(top) = parse_json(text)? else { return Err("baseline: not a JSON object".into()) };
    let Some((_, Json::Obj(counts))) = top.iter().find(|(k, _)| k == "counts") else {
        return Err("baseline: no \"counts\" object".into());
    };
    counts
        .iter()
        .map(|(k, v)| match v {
            Json::Num(n) if *n >= 0.0 && n.fract() == 0.0 => Ok((k.clone(), *n as u64)),
            _ => Err(format!("baseline: count '{k}' is not a whole number")),
        })
        .collect()
}

/// What the guard found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// Operations that grew too much or disappeared (the check fails).
    pub failures: Vec<String>,
    /// Operations that got cheaper, or are new.
    pub notes: Vec<String>,
}

/// Compares new counts with the baseline: more than `tolerance_percent`
/// growth, or a baselined operation without a new count, is a failure.
pub fn check(baseline: &BTreeMap<String, u64>, now: &BTreeMap<String, u64>, tolerance_percent: u64) -> CheckReport {
    let mut r = CheckReport::default();
    let pct = |b: u64, n: u64| if b == 0 { 0.0 } else { (n as f64 - b as f64) * 100.0 / b as f64 };
    for (k, &base) in baseline {
        match now.get(k) {
            None => r.failures.push(format!("{k}: baseline {base}, no figure in this run")),
            Some(&new) if u128::from(new) * 100 > u128::from(base) * u128::from(100 + tolerance_percent) => {
                r.failures.push(format!(
                    "{k}: baseline {base}, now {new} (+{:.1}%, more than {tolerance_percent}%)",
                    pct(base, new)
                ))
            }
            Some(&new) if new < base => {
                r.notes.push(format!("{k}: baseline {base}, now {new} ({:.1}%)", pct(base, new)));
            }
            Some(_) => {}
        }
    }
    for k in now.keys().filter(|k| !baseline.contains_key(*k)) {
        r.notes.push(format!("{k}: {} (not in the baseline)", now[k]));
    }
    r
}

fn bench_dir() -> PathBuf {
    crate::root().join("target").join("bench")
}

/// Path of the committed baseline.
pub fn baseline_path() -> PathBuf {
    crate::root().join("bench").join("baseline.json")
}

/// Boots the benchmark once; `fastpath` false adds `nofastpath`.
///
/// # Errors
/// QEMU could not run, the guest failed or timed out, or the log is unusable.
pub fn boot(built: &crate::Built, image: &std::path::Path, fastpath: bool) -> Result<Results, String> {
    let cmdline = if fastpath { BENCH_CMDLINE.to_string() } else { format!("{BENCH_CMDLINE} nofastpath") };
    let opts = RunOptions { icount: true, cmdline: Some(cmdline), ..Default::default() };
    let run = crate::run_captured(built, image, &opts, TIME_LIMIT)?;
    let name = if fastpath { "fastpath-on" } else { "fastpath-off" };
    let log_path = bench_dir().join(format!("serial-{name}.log"));
    let _ = std::fs::create_dir_all(bench_dir());
    let _ = std::fs::write(&log_path, &run.log);
    let tail = || {
        let lines: Vec<&str> = run.log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    };
    if run.timed_out || run.status != Some(crate::EXIT_OK) {
        return Err(format!(
            "the benchmark ({name}) ended with QEMU status {:?} ({}){}; serial log in {}\n{}",
            run.status,
            describe_status(run.status),
            if run.timed_out { format!(", killed after {} s", TIME_LIMIT.as_secs()) } else { String::new() },
            log_path.display(),
            tail()
        ));
    }
    let r = parse_log(&run.log).map_err(|e| format!("{e}; serial log in {}", log_path.display()))?;
    if r.fastpath != fastpath {
        return Err(format!(
            "asked for the fast path {}, the kernel says otherwise",
            if fastpath { "on" } else { "off" }
        ));
    }
    for c in &r.remap {
        if c.expected == 0 && c.pages != 0 {
            return Err(format!("{} {} ({name}) should copy but remapped {} pages", c.op, c.variant, c.pages));
        }
    }
    Ok(r)
}

/// `cargo xtask bench [--check] [--update-baseline]`. Returns whether the
/// check (if asked for) passed.
///
/// # Errors
/// Building, booting or parsing failed, or the baseline cannot be read or written.
pub fn command(check_baseline: bool, update_baseline: bool) -> Result<bool, String> {
    let start = Instant::now();
    crate::ensure_qemu()?;
    let built = crate::build_system()?;
    let image = crate::scenarios::image(&built, "bench")?;
    let built_in = start.elapsed();
    eprintln!("xtask: booting the benchmark under QEMU -icount: fast path on, then off (nofastpath)");
    let on = boot(&built, &image, true)?;
    let off = boot(&built, &image, false)?;
    let boots = start.elapsed() - built_in;
    println!("{}", table(&on, &off));
    std::fs::create_dir_all(bench_dir()).map_err(|e| e.to_string())?;
    let json_path = bench_dir().join("ipc.json");
    std::fs::write(&json_path, to_json(&on, &off)).map_err(|e| format!("{}: {e}", json_path.display()))?;
    println!("Written: {}", json_path.display());
    println!(
        "Took {:.1} s: build {:.1} s, two boots {:.1} s.",
        start.elapsed().as_secs_f64(),
        built_in.as_secs_f64(),
        boots.as_secs_f64()
    );
    let now = counts(&[&on, &off]);
    if update_baseline {
        let path = baseline_path();
        std::fs::create_dir_all(path.parent().expect("bench/")).map_err(|e| e.to_string())?;
        std::fs::write(&path, baseline_json(&now)).map_err(|e| format!("{}: {e}", path.display()))?;
        println!(
            "Baseline written: {} ({} counts). Commit it with a message that says why.",
            path.display(),
            now.len()
        );
    }
    if !check_baseline {
        return Ok(true);
    }
    let path = baseline_path();
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let base = parse_baseline(&text)?;
    let tolerance = baseline_tolerance(&text)?;
    let report = check(&base, &now, tolerance);
    if !report.notes.is_empty() {
        println!("\nCheaper than the baseline, or new (consider `cargo xtask bench --update-baseline`):");
        for n in &report.notes {
            println!("  {n}");
        }
    }
    if report.failures.is_empty() {
        println!("\nbench check: ok: no operation grew by more than {tolerance}% over {}", path.display());
        Ok(true)
    } else {
        eprintln!(
            "\nbench check FAILED: {} operation(s) grew by more than {tolerance}% over {}:",
            report.failures.len(),
            path.display()
        );
        for f in &report.failures {
            eprintln!("  {f}");
        }
        eprintln!(
            "If the growth is intended, run `cargo xtask bench --update-baseline` and commit the baseline saying why."
        );
        Ok(false)
    }
}

// ----- `cargo xtask bench --trace`: where the instructions go -----

/// The operations `bench-trace` runs, in its order, with what they are.
pub const TRACE_OPS: &[(&str, &str)] = &[
    ("null-syscall", "null syscall (Counter with an unknown number)"),
    ("call-0w-task", "call + reply, 0 words, 2 tasks"),
    ("call-8w-task", "call + reply, 8 words, 2 tasks"),
    ("call-4k-copy", "call + reply, 4 KiB each way, copy"),
    ("call-64k-copy", "call + reply, 64 KiB each way, copy"),
    ("call-64k-remap", "call + reply, 64 KiB each way, remap"),
    ("call-16k-remap-fresh", "call + reply, 16 KiB each way, remap, pages rewritten"),
    ("call-64k-remap-fresh", "call + reply, 64 KiB each way, remap, pages rewritten"),
];
/// Runs of each operation in the traced part (as `bench-trace` does).
pub const TRACE_RUNS: usize = 8;
const KERNEL_BASE: u64 = 0xFFFF_8000_0000_0000;
/// How user-mode instructions appear in a profile: the client's `syscall`
/// and, for a call, the server's loop (its `syscall` included).
const USER_MODE: &str = "(user mode: the syscall instructions, the server's loop)";

/// Symbols of an ELF (`nm`, demangled), sorted by address: functions only.
///
/// # Errors
/// `nm` is missing or failed.
pub fn symbols(elf: &std::path::Path) -> Result<Vec<(u64, String)>, String> {
    let out = std::process::Command::new("nm")
        .arg("-C")
        .arg(elf)
        .output()
        .map_err(|e| format!("nm (install binutils): {e}"))?;
    if !out.status.success() {
        return Err(format!("nm {} failed", elf.display()));
    }
    let mut syms: Vec<(u64, String)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut p = l.splitn(3, ' ');
            let (addr, kind, name) = (p.next()?, p.next()?, p.next()?);
            matches!(kind, "t" | "T" | "w" | "W")
                .then(|| Some((u64::from_str_radix(addr, 16).ok()?, name.to_string())))?
        })
        .collect();
    syms.sort();
    Ok(syms)
}

/// The instructions of an ELF's code (`objdump -d`, Intel syntax,
/// demangled) by address: the function each lies in, and its text.
///
/// # Errors
/// `objdump` is missing or failed.
pub fn disassembly(elf: &std::path::Path) -> Result<BTreeMap<u64, (String, String)>, String> {
    let out = std::process::Command::new("objdump")
        .args(["-d", "-C", "--no-show-raw-insn", "-M", "intel"])
        .arg(elf)
        .output()
        .map_err(|e| format!("objdump (install binutils): {e}"))?;
    if !out.status.success() {
        return Err(format!("objdump {} failed", elf.display()));
    }
    Ok(parse_disassembly(&String::from_utf8_lossy(&out.stdout)))
}

/// [`disassembly`]'s parser: `objdump -d` output to address → (function,
/// instruction).
pub fn parse_disassembly(text: &str) -> BTreeMap<u64, (String, String)> {
    let mut map = BTreeMap::new();
    let mut function = String::new();
    for line in text.lines() {
        // "ffffffff80117900 <kernel::fastpath::call>:" opens a function.
        if let Some((addr, rest)) = line.split_once(" <") {
            if u64::from_str_radix(addr, 16).is_ok() {
                if let Some(name) = rest.strip_suffix(">:") {
                    function = name.to_string();
                }
                continue;
            }
        }
        // "ffffffff80117900:\tpush   rbp" is one instruction.
        let Some((addr, insn)) = line.trim_start().split_once(":\t") else { continue };
        if let Ok(a) = u64::from_str_radix(addr, 16) {
            map.insert(a, (function.clone(), insn.split_whitespace().collect::<Vec<_>>().join(" ")));
        }
    }
    map
}

/// A traced path as an annotated listing: one line per executed
/// instruction (its number in the path, address, disassembly), a heading
/// whenever the function changes. Addresses outside the kernel's code are
/// user mode.
pub fn listing(pcs: &[u64], code: &BTreeMap<u64, (String, String)>) -> String {
    let mut out = String::new();
    let mut current: Option<&str> = None;
    for (i, pc) in pcs.iter().enumerate() {
        let (function, insn) = code.get(pc).map_or(("(user mode)", ""), |(f, t)| (f.as_str(), t.as_str()));
        if current != Some(function) {
            let _ = writeln!(out, "--- {}", without_generics(function));
            current = Some(function);
        }
        let _ = writeln!(out, "{:>5}  {pc:#x}  {insn}", i + 1);
    }
    out
}

/// Program counters of a QEMU `-d exec,nochain -singlestep` log, in order.
pub fn exec_log_pcs(log: &str) -> Vec<u64> {
    log.lines()
        .filter(|l| l.starts_with("Trace "))
        .filter_map(|l| {
            let inner = &l[l.find('[')? + 1..];
            u64::from_str_radix(inner.split('/').nth(1)?, 16).ok()
        })
        .collect()
}

/// Where one traced operation's instructions went.
#[derive(Clone, Debug, Default)]
pub struct TraceProfile {
    /// Instructions from the `syscall` (counted) to the first user
    /// instruction after the return (not counted), of the cheapest run.
    pub total: u64,
    /// User-mode instructions of the partner in between (its `syscall`
    /// included).
    pub partner_user: u64,
    /// Lengths of all runs (the first warms up).
    pub runs: Vec<u64>,
    /// (instructions, calls, function), most instructions first.
    pub functions: Vec<(u64, u64, String)>,
    /// The path in order: (function, consecutive instructions).
    pub sequence: Vec<(String, u64)>,
    /// Every instruction's address of the cheapest run, in order.
    pub pcs: Vec<u64>,
}

/// Profiles the last `ops × runs` traced system calls: the syscall
/// instruction is at `at`, the instruction after it at `after`.
///
/// # Errors
/// Fewer traced calls than expected (logging started late) or a call that
/// does not return.
pub fn profile(
    pcs: &[u64],
    at: u64,
    after: u64,
    ksyms: &[(u64, String)],
    ops: usize,
    runs: usize,
) -> Result<Vec<TraceProfile>, String> {
    let starts: Vec<usize> = pcs.iter().enumerate().filter(|(_, &p)| p == at).map(|(i, _)| i).collect();
    if starts.len() < ops * runs {
        return Err(format!(
            "the trace holds {} traced system calls, {} expected: logging started late (machine busy?); run again",
            starts.len(),
            ops * runs
        ));
    }
    let starts = &starts[starts.len() - ops * runs..];
    let name_of = |pc: u64| -> String {
        if pc < KERNEL_BASE {
            return USER_MODE.into();
        }
        match ksyms.partition_point(|(a, _)| *a <= pc) {
            0 => format!("{pc:#x}"),
            i => ksyms[i - 1].1.clone(),
        }
    };
    let entries: BTreeMap<u64, &str> = ksyms.iter().map(|(a, n)| (*a, n.as_str())).collect();
    let mut out = Vec::new();
    for group in starts.chunks(runs) {
        let ends: Vec<usize> = group
            .iter()
            .map(|&s| pcs[s + 1..].iter().position(|&p| p == after).map(|k| s + 1 + k))
            .collect::<Option<_>>()
            .ok_or("a traced system call did not return")?;
        let lens: Vec<u64> = group.iter().zip(&ends).map(|(s, e)| (e - s) as u64).collect();
        let best = (1..group.len()).min_by_key(|&k| lens[k]).unwrap_or(0);
        let seg = &pcs[group[best]..ends[best]];
        let mut by_fn: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        let mut sequence: Vec<(String, u64)> = Vec::new();
        for (k, &pc) in seg.iter().enumerate() {
            let name = if k == 0 { USER_MODE.to_string() } else { name_of(pc) };
            let e = by_fn.entry(name.clone()).or_default();
            e.0 += 1;
            if entries.contains_key(&pc) {
                e.1 += 1;
            }
            match sequence.last_mut() {
                Some((n, c)) if *n == name => *c += 1,
                _ => sequence.push((name, 1)),
            }
        }
        let partner_user = by_fn.get(USER_MODE).map_or(0, |e| e.0) - 1;
        let mut functions: Vec<(u64, u64, String)> = by_fn.into_iter().map(|(n, (i, c))| (i, c, n)).collect();
        functions.sort_by(|a, b| b.0.cmp(&a.0).then(a.2.cmp(&b.2)));
        out.push(TraceProfile {
            total: seg.len() as u64,
            partner_user,
            runs: lens,
            functions,
            sequence,
            pcs: seg.to_vec(),
        });
    }
    Ok(out)
}

/// Text report of one traced boot.
pub fn trace_report(fastpath: bool, profiles: &[TraceProfile], top: usize) -> String {
    let mut t = String::new();
    let _ = writeln!(t, "=== fast path {} ===", if fastpath { "on" } else { "off" });
    for ((op, desc), p) in TRACE_OPS.iter().zip(profiles) {
        let _ = writeln!(
            t,
            "\n{op} ({desc}): {} instructions from `syscall` to the first user instruction after the return;\n  \
             {} of them user-mode instructions of the server in between (its `syscall` included); runs: {:?}",
            p.total, p.partner_user, p.runs
        );
        let _ = writeln!(t, "  {:>8} {:>6}  function", "instrs", "calls");
        for (i, c, n) in p.functions.iter().take(top) {
            let _ = writeln!(t, "  {i:>8} {c:>6}  {}", without_generics(n));
        }
        let rest: u64 = p.functions.iter().skip(top).map(|f| f.0).sum();
        if rest > 0 {
            let _ = writeln!(t, "  {rest:>8}         ({} more functions)", p.functions.len() - top);
        }
    }
    t
}

fn short(name: &str) -> &str {
    if name == USER_MODE {
        return "user";
    }
    name.rsplit("::").next().unwrap_or(name)
}

/// A symbol with generic arguments elided: `Handle<..>::insert_recursing`
/// (the outer `<Type as Trait>` of a trait method is kept).
pub fn without_generics(name: &str) -> String {
    let keep = usize::from(name.starts_with('<'));
    let (mut out, mut depth) = (String::new(), 0usize);
    for c in name.chars() {
        match c {
            '<' => {
                if depth < keep {
                    out.push('<');
                } else if depth == keep {
                    out.push_str("<..>");
                }
                depth += 1;
            }
            '>' if depth > 0 => {
                depth -= 1;
                if depth < keep {
                    out.push('>');
                }
            }
            c if depth <= keep => out.push(c),
            _ => {}
        }
    }
    out
}

/// Boots the trace image once and profiles it.
fn trace_boot(
    built: &crate::Built,
    image: &std::path::Path,
    fastpath: bool,
    at: u64,
    after: u64,
    ksyms: &[(u64, String)],
) -> Result<Vec<TraceProfile>, String> {
    use std::io::{BufRead, Write as _};
    let tag = if fastpath { "fastpath-on" } else { "fastpath-off" };
    let log = bench_dir().join(format!("trace-exec-{tag}.log"));
    let sock = bench_dir().join(format!("trace-monitor-{tag}.sock"));
    let _ = std::fs::remove_file(&log);
    let _ = std::fs::remove_file(&sock);
    let opts = RunOptions { cmdline: (!fastpath).then(|| "nofastpath".to_string()), ..Default::default() };
    let mut cmd = crate::qemu_command(built, image, &opts);
    cmd.arg("-singlestep").arg("-D").arg(&log);
    cmd.arg("-monitor").arg(format!("unix:{},server,nowait", sock.display()));
    let mut child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("starting QEMU: {e}"))?;
    let stdout = child.stdout.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + TIME_LIMIT;
    let (mut serial, mut monitor) = (String::new(), None);
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(line) => {
                if line.contains("trace: ready") {
                    let mut m = std::os::unix::net::UnixStream::connect(&sock)
                        .map_err(|e| format!("QEMU monitor {}: {e}", sock.display()))?;
                    m.write_all(b"log exec,nochain\n").map_err(|e| e.to_string())?;
                    monitor = Some(m);
                }
                serial.push_str(&line);
                serial.push('\n');
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            Err(_) if Instant::now() > deadline => {
                let _ = child.kill();
                break;
            }
            Err(_) => {}
        }
    }
    drop(monitor);
    let status = child.wait().map_err(|e| e.to_string())?;
    let _ = std::fs::remove_file(&sock);
    if !serial.contains("trace: end") || status.code() != Some(crate::EXIT_OK) {
        return Err(format!("the trace boot ({tag}) failed: QEMU {status}; serial:\n{serial}"));
    }
    let text = std::fs::read_to_string(&log).map_err(|e| format!("{}: {e}", log.display()))?;
    let profiles = profile(&exec_log_pcs(&text), at, after, ksyms, TRACE_OPS.len(), TRACE_RUNS)?;
    // The log is large; the profile is what matters.
    let _ = std::fs::remove_file(&log);
    Ok(profiles)
}

/// `cargo xtask bench --trace`: boots `bench-trace` with QEMU's
/// per-instruction log, fast path on and off, and reports where the
/// instructions of each traced operation go, by kernel function (printed,
/// and with each path in order in `target/bench/trace.txt`).
///
/// # Errors
/// Building, booting, `nm` or the trace failed.
pub fn trace_command() -> Result<bool, String> {
    crate::ensure_qemu()?;
    let built = crate::build_system()?;
    let manifest = "task bench-trace priority=12 init\ntask bench-server priority=12\n";
    let files = vec![
        ("bench-trace".to_string(), crate::app(&built, "bench-trace")?),
        ("bench-server".to_string(), crate::app(&built, "bench-server")?),
    ];
    let image = crate::make_image("bench-trace", manifest, &files)?;
    let usyms = symbols(&built.apps.join("bench-trace"))?;
    let find =
        |n: &str| usyms.iter().find(|(_, s)| s == n).map(|(a, _)| *a).ok_or(format!("no symbol {n} in bench-trace"));
    let (at, after) = (find("bench_trace_at")?, find("bench_trace_after")?);
    let ksyms = symbols(&built.kernel_elf)?;
    let code = disassembly(&built.kernel_elf)?;
    std::fs::create_dir_all(bench_dir()).map_err(|e| e.to_string())?;
    let mut full = String::new();
    for fastpath in [true, false] {
        eprintln!(
            "xtask: tracing every instruction (QEMU -singlestep -d exec), fast path {}",
            if fastpath { "on" } else { "off" }
        );
        let profiles = trace_boot(&built, &image, fastpath, at, after, &ksyms)?;
        println!("{}", trace_report(fastpath, &profiles, 25));
        full.push_str(&trace_report(fastpath, &profiles, usize::MAX));
        for ((op, _), p) in TRACE_OPS.iter().zip(&profiles) {
            let path: Vec<String> =
                p.sequence.iter().map(|(n, c)| format!("{} {c}", short(&without_generics(n)))).collect();
            let _ = writeln!(
                full,
                "\n{op}, fast path {}: the path in order (function, instructions):\n  {}",
                if fastpath { "on" } else { "off" },
                path.join(" > ")
            );
            let pcs: String = p.pcs.iter().map(|pc| format!("{pc:#x}\n")).collect();
            let stem = format!("trace-{op}-{}", if fastpath { "on" } else { "off" });
            let file = bench_dir().join(format!("{stem}.pcs"));
            std::fs::write(&file, pcs).map_err(|e| format!("{}: {e}", file.display()))?;
            let file = bench_dir().join(format!("{stem}.lst"));
            std::fs::write(&file, listing(&p.pcs, &code)).map_err(|e| format!("{}: {e}", file.display()))?;
        }
        full.push('\n');
    }
    let path = bench_dir().join("trace.txt");
    std::fs::write(&path, full).map_err(|e| format!("{}: {e}", path.display()))?;
    println!("Full profiles and each path in order: {}", path.display());
    Ok(true)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_path_is_listed_with_its_disassembly() {
        let objdump = "\nkernel:     file format elf64-x86-64\n\nDisassembly of section .text:\n\n\
            ffffffff80100000 <kernel::fastpath::call>:\n\
            ffffffff80100000:\tpush   rbp\n\
            ffffffff80100001:\tlock cmpxchg BYTE PTR [rip+0x10],dl        # ffffffff80100020 <KERNEL>\n\
            \n\
            ffffffff80100010 <syscall_entry>:\n\
            ffffffff80100010:\tswapgs\n";
        let code = parse_disassembly(objdump);
        assert_eq!(code.len(), 3);
        assert_eq!(code[&0xffff_ffff_8010_0000], ("kernel::fastpath::call".to_string(), "push rbp".to_string()));
        assert_eq!(code[&0xffff_ffff_8010_0010].1, "swapgs");
        let text = listing(&[0x40_001d, 0xffff_ffff_8010_0010, 0xffff_ffff_8010_0000, 0xffff_ffff_8010_0001], &code);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "--- (user mode)");
        assert_eq!(lines[1], "    1  0x40001d  ");
        assert_eq!(lines[2], "--- syscall_entry");
        assert_eq!(lines[4], "--- kernel::fastpath::call");
        assert!(lines[6].starts_with("    4  0xffffffff80100001  lock cmpxchg BYTE PTR [rip+0x10],dl #"));
        assert_eq!(lines.len(), 7);
    }

    #[test]
    fn only_the_fresh_rows_user_figures_go_unguarded() {
        assert!(!guarded("call-64k-remap-fresh", "user"));
        assert!(guarded("call-64k-remap-fresh", "kernel"));
        assert!(guarded("call-64k-remap", "user"));
        assert!(guarded("call-0w-task", "user"));
    }

    use super::*;

    const LOG: &str = "Iris 0.1.0\n[iris] IPC fast path off, remap of messages from 16384 bytes\n\
        bench: start: 2000 iterations\n\
        bench: calibration rdtsc=4 rdtsc-store=4 one-syscall-sequence=7 two-syscall-sequence=11\n\
        bench: null-syscall user min=255 median=256 iters=2000\n\
        bench: null-syscall kernel min=242 median=242 iters=2000\n\
        bench: remap call-64k-remap kernel pages=35200 expected=35200\n\
        bench: cow call-64k-remap-fresh user copies=31990 expected=32000\n\
        bench: done: 36 timer ticks, 68445 context switches\n";

    #[test]
    fn parses_a_log() {
        let r = parse_log(LOG).unwrap();
        assert!(!r.fastpath);
        assert_eq!(r.figures[&("null-syscall".into(), "user".into())], Figure { min: 255, median: 256, iters: 2000 });
        assert_eq!(r.figures.len(), 2);
        assert_eq!(r.remap.len(), 1);
        assert_eq!(
            r.cow,
            vec![PageCheck {
                op: "call-64k-remap-fresh".into(),
                variant: "user".into(),
                pages: 31990,
                expected: 32000
            }]
        );
        let table = table(&r, &r);
        assert!(table.contains("call-64k-remap-fresh user (fast path off): 31990 copy-on-write copies, 32000 expected"));
        assert!(parse_json(&to_json(&r, &r)).is_ok_and(|j| format!("{j:?}").contains("cow_copies")));
        assert!(r.done.starts_with("done: 36"));
        assert_eq!(counts(&[&r])["null-syscall/kernel/fastpath-off"], 242);
    }

    #[test]
    fn a_failed_or_unfinished_run_is_an_error() {
        assert!(parse_log(&format!("{LOG}bench: FAILED: x: y\n")).is_err());
        assert!(parse_log(&LOG.replace("bench: done", "bench: don")).is_err());
        assert!(parse_log(&LOG.replace("[iris] IPC fast path off", "")).is_err());
        assert!(parse_log(&LOG.replace("min=255", "min=x")).is_err());
        assert!(parse_log(&LOG.replace("copies=31990", "pages=31990")).is_err());
    }

    #[test]
    fn the_baseline_round_trips() {
        let mut m = BTreeMap::new();
        m.insert("a/kernel/fastpath-on".to_string(), 242u64);
        m.insert("b \"q\"/user/fastpath-off".to_string(), 0u64);
        assert_eq!(parse_baseline(&baseline_json(&m)).unwrap(), m);
        assert_eq!(baseline_tolerance(&baseline_json(&m)), Ok(TOLERANCE_PERCENT));
        assert_eq!(baseline_tolerance("{\"tolerance_percent\": 2, \"counts\": {}}"), Ok(2));
        assert!(baseline_tolerance("{\"tolerance_percent\": \"x\"}").is_err());
        assert!(parse_baseline("{\"counts\": {\"a\": 1.5}}").is_err());
        assert!(parse_baseline("{\"counts\": [1]}").is_err());
        assert!(parse_baseline("{\"counts\": {}} x").is_err());
    }

    #[test]
    fn the_guard_allows_five_percent_and_no_more() {
        let base: BTreeMap<String, u64> =
            [("a".to_string(), 1000u64), ("b".to_string(), 200), ("c".to_string(), 50)].into();
        let now: BTreeMap<String, u64> =
            [("a".to_string(), 1050u64), ("b".to_string(), 211), ("d".to_string(), 7)].into();
        let r = check(&base, &now, 5);
        assert_eq!(r.failures.len(), 2, "{r:?}"); // b grew 5.5%, c is missing
        assert!(r.failures.iter().any(|f| f.starts_with("b: baseline 200, now 211")));
        assert!(r.failures.iter().any(|f| f.starts_with("c: baseline 50")));
        assert_eq!(r.notes.len(), 1); // d is new; a is within 5%
        let cheaper: BTreeMap<String, u64> =
            [("a".to_string(), 900u64), ("b".to_string(), 200), ("c".to_string(), 50)].into();
        let r = check(&base, &cheaper, 5);
        assert!(r.failures.is_empty());
        assert_eq!(r.notes, vec!["a: baseline 1000, now 900 (-10.0%)".to_string()]);
    }

    #[test]
    fn targets_are_evaluated_on_the_kernel_minimum() {
        let mut on = Results { fastpath: true, ..Results::default() };
        let mut off = Results::default();
        let f = |min| Figure { min, median: min, iters: 1000 };
        on.figures.insert(("call-0w-task".into(), "kernel".into()), f(200));
        off.figures.insert(("call-0w-task".into(), "kernel".into()), f(700));
        let t = targets();
        let fast = t.iter().find(|x| x.op == "call-0w-task" && x.kind == TargetKind::MaxFast).unwrap();
        assert_eq!(evaluate(fast, &on, &off), Some((200.0, true)));
        let ratio = t.iter().find(|x| x.op == "call-0w-task" && x.kind == TargetKind::RatioOffOn).unwrap();
        assert_eq!(evaluate(ratio, &on, &off), Some((3.5, false)));
        let null = t.iter().find(|x| x.op == "null-syscall").unwrap();
        assert_eq!(evaluate(null, &on, &off), None);
        assert!(table(&on, &off).contains("NOT MET"));
        assert!(parse_json(&to_json(&on, &off)).is_ok());
    }

    #[test]
    fn generic_arguments_are_elided() {
        assert_eq!(without_generics("a::Handle<x::Y<K,V>,Z>::insert<T>"), "a::Handle<..>::insert<..>");
        assert_eq!(without_generics("<a::Env<T> as b::Env>::copy"), "<a::Env<..> as b::Env>::copy");
        assert_eq!(without_generics("plain::name"), "plain::name");
    }

    #[test]
    fn a_trace_is_profiled_by_function() {
        let log = "Trace 0: 0x7f00 [00000000/0000000000400017/0040c2b0/ff000201] \n\
                   Trace 0: 0x7f01 [00000000/ffffffff80100000/0040c2b0/ff000201] \n\
                   junk\n\
                   Trace 0: 0x7f02 [00000000/ffffffff80100004/0040c2b0/ff000201] \n\
                   Trace 0: 0x7f03 [00000000/ffffffff80100010/0040c2b0/ff000201] \n\
                   Trace 0: 0x7f04 [00000000/0000000000400019/0040c2b0/ff000201] \n";
        let pcs = exec_log_pcs(log);
        assert_eq!(pcs.len(), 5);
        let ksyms = vec![(0xffff_ffff_8010_0000, "entry".to_string()), (0xffff_ffff_8010_0010, "exit".to_string())];
        let mut all = Vec::new();
        for _ in 0..2 {
            all.extend_from_slice(&pcs);
        }
        let p = profile(&all, 0x400017, 0x400019, &ksyms, 1, 2).unwrap();
        assert_eq!(p[0].total, 4);
        assert_eq!(p[0].partner_user, 0);
        assert_eq!(p[0].functions[0], (2, 1, "entry".to_string()));
        assert_eq!(p[0].sequence.len(), 3);
        assert!(profile(&all, 0x400017, 0x400019, &ksyms, 2, 2).is_err());
    }
}
