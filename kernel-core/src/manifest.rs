//! The system manifest: a text file named `manifest` in the boot image that
//! says which tasks exist, at what priority, which start at boot, and which one
//! is init.
//!
//! # Syntax
//! The manifest is read line by line. A `#` starts a comment that runs to the
//! end of the line; blank lines are ignored. Every other line describes one
//! task:
//!
//! ```text
//! task <name> priority=<0..=31> [boot] [init]
//! ```
//!
//! - `<name>` is 1 to [`abi::NAME_MAX`] bytes and names the boot-image entry
//!   holding the task's executable (the caller checks that it exists).
//! - `priority=` is required; 0 is the lowest priority, [`abi::MAX_PRIORITY`]
//!   the highest.
//! - `boot` starts the task at boot; `init` makes it the init task, which
//!   implies `boot`. Exactly one task must be `init`.
//!
//! Words after the name are either flags or `key=value` settings, in any
//! order; each may appear once. Unknown keys, flags and directives are errors,
//! so that a manifest written for a later kernel (with, say, `domain=` or
//! `caps=`) is refused rather than half-understood.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use abi::MAX_PRIORITY;

use crate::image::{check_name, NameError};

/// One task described by the manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskSpec {
    /// The task's name, also the name of its executable in the boot image.
    pub name: String,
    /// Priority of the task's main thread, 0 to [`abi::MAX_PRIORITY`].
    pub priority: u8,
    /// Whether the kernel starts the task at boot (always true for init).
    pub boot: bool,
    /// Whether this is the init task.
    pub init: bool,
}

/// What is wrong with a manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ManifestErrorKind {
    /// The line starts with a word other than `task`.
    UnknownDirective(String),
    /// A `task` line has no name.
    MissingName,
    /// The task name is invalid.
    BadName {
        /// The name as written.
        name: String,
        /// What is wrong with it.
        problem: NameError,
    },
    /// A `key=value` word has an empty key or an empty value.
    MalformedSetting(String),
    /// A `key=value` word with a key this kernel does not know.
    UnknownKey(String),
    /// The same key is given twice on one line.
    DuplicateKey(String),
    /// A word that is neither a known flag nor a `key=value` setting.
    UnknownWord(String),
    /// The same flag is given twice on one line.
    DuplicateFlag(String),
    /// The priority is not a decimal number from 0 to [`abi::MAX_PRIORITY`].
    BadPriority(String),
    /// A `task` line has no `priority=`.
    MissingPriority,
    /// A task of the same name was described before.
    DuplicateTask {
        /// The repeated name.
        name: String,
        /// The line of the first description.
        first_line: usize,
    },
    /// A second task is marked `init`.
    SecondInit {
        /// The line of the first init task.
        first_line: usize,
    },
    /// No task is marked `init`.
    NoInit,
}

impl fmt::Display for ManifestErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ManifestErrorKind::UnknownDirective(word) => {
                write!(f, "unknown directive `{word}` (expected `task`)")
            }
            ManifestErrorKind::MissingName => write!(f, "`task` needs a name"),
            ManifestErrorKind::BadName { name, problem } => {
                write!(f, "bad task name `{name}`: {problem}")
            }
            ManifestErrorKind::MalformedSetting(word) => {
                write!(f, "malformed setting `{word}` (expected key=value)")
            }
            ManifestErrorKind::UnknownKey(key) => write!(f, "unknown key `{key}`"),
            ManifestErrorKind::DuplicateKey(key) => write!(f, "key `{key}` given twice"),
            ManifestErrorKind::UnknownWord(word) => {
                write!(f, "unknown word `{word}` (expected `boot`, `init` or key=value)")
            }
            ManifestErrorKind::DuplicateFlag(flag) => write!(f, "flag `{flag}` given twice"),
            ManifestErrorKind::BadPriority(value) => {
                write!(f, "priority `{value}` is not a number from 0 to {MAX_PRIORITY}")
            }
            ManifestErrorKind::MissingPriority => write!(f, "task has no `priority=`"),
            ManifestErrorKind::DuplicateTask { name, first_line } => {
                write!(f, "task `{name}` is already described on line {first_line}")
            }
            ManifestErrorKind::SecondInit { first_line } => {
                write!(f, "a second init task (the first is on line {first_line})")
            }
            ManifestErrorKind::NoInit => write!(f, "no task is marked `init`"),
        }
    }
}

/// A manifest error: where it is and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestError {
    /// The 1-based line the error is on, or 0 for an error about the whole
    /// manifest (such as [`ManifestErrorKind::NoInit`]).
    pub line: usize,
    /// What is wrong.
    pub kind: ManifestErrorKind,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "manifest: {}", self.kind)
        } else {
            write!(f, "manifest line {}: {}", self.line, self.kind)
        }
    }
}

/// Parses a priority value: decimal digits only, at most [`MAX_PRIORITY`].
fn parse_priority(value: &str) -> Option<u8> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse::<u8>().ok().filter(|&p| p <= MAX_PRIORITY)
}

/// Parses the words of a `task` line after the directive.
fn parse_task<'w>(mut words: impl Iterator<Item = &'w str>) -> Result<TaskSpec, ManifestErrorKind> {
    let name = words.next().ok_or(ManifestErrorKind::MissingName)?;
    check_name(name).map_err(|problem| ManifestErrorKind::BadName { name: name.to_string(), problem })?;
    let mut priority = None;
    let mut boot = false;
    let mut init = false;
    for word in words {
        if let Some((key, value)) = word.split_once('=') {
            if key.is_empty() || value.is_empty() {
                return Err(ManifestErrorKind::MalformedSetting(word.to_string()));
            }
            match key {
                "priority" => {
                    if priority.is_some() {
                        return Err(ManifestErrorKind::DuplicateKey(key.to_string()));
                    }
                    priority =
                        Some(parse_priority(value).ok_or_else(|| ManifestErrorKind::BadPriority(value.to_string()))?);
                }
                _ => return Err(ManifestErrorKind::UnknownKey(key.to_string())),
            }
        } else {
            let flag = match word {
                "boot" => &mut boot,
                "init" => &mut init,
                _ => return Err(ManifestErrorKind::UnknownWord(word.to_string())),
            };
            if *flag {
                return Err(ManifestErrorKind::DuplicateFlag(word.to_string()));
            }
            *flag = true;
        }
    }
    Ok(TaskSpec {
        name: name.to_string(),
        priority: priority.ok_or(ManifestErrorKind::MissingPriority)?,
        boot: boot || init,
        init,
    })
}

/// Parses a manifest into its tasks, in the order written. Refuses unknown
/// directives, keys and words, bad names and priorities, a task described
/// twice, and anything but exactly one init task.
pub fn parse(text: &str) -> Result<Vec<TaskSpec>, ManifestError> {
    let mut tasks: Vec<(usize, TaskSpec)> = Vec::new();
    let mut init_line = None;
    for (index, raw) in text.lines().enumerate() {
        let line = index.saturating_add(1);
        let content = raw.split_once('#').map_or(raw, |(before, _)| before);
        let mut words = content.split_whitespace();
        let Some(directive) = words.next() else {
            continue;
        };
        let at = |kind| ManifestError { line, kind };
        if directive != "task" {
            return Err(at(ManifestErrorKind::UnknownDirective(directive.to_string())));
        }
        let spec = parse_task(words).map_err(at)?;
        if let Some((first_line, _)) = tasks.iter().find(|(_, t)| t.name == spec.name) {
            return Err(at(ManifestErrorKind::DuplicateTask { name: spec.name, first_line: *first_line }));
        }
        if spec.init {
            if let Some(first_line) = init_line {
                return Err(at(ManifestErrorKind::SecondInit { first_line }));
            }
            init_line = Some(line);
        }
        tasks.push((line, spec));
    }
    if init_line.is_none() {
        return Err(ManifestError { line: 0, kind: ManifestErrorKind::NoInit });
    }
    Ok(tasks.into_iter().map(|(_, spec)| spec).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::format;

    fn spec(name: &str, priority: u8, boot: bool, init: bool) -> TaskSpec {
        TaskSpec { name: name.to_string(), priority, boot, init }
    }

    fn error_of(text: &str) -> ManifestError {
        parse(text).unwrap_err()
    }

    #[test]
    fn parses_a_full_manifest() {
        let text = "# The Iris test system\n\
                    \n\
                    task init priority=10 init   # the first task\n\
                    \ttask  shell   boot priority=5\r\n\
                    task worker priority=0\n\
                    task top priority=31 boot\n\
                    task both priority=3 boot\n";
        assert_eq!(
            parse(text).unwrap(),
            [
                spec("init", 10, true, true),
                spec("shell", 5, true, false),
                spec("worker", 0, false, false),
                spec("top", 31, true, false),
                spec("both", 3, true, false),
            ]
        );
    }

    #[test]
    fn init_implies_boot() {
        assert_eq!(parse("task i priority=1 init").unwrap(), [spec("i", 1, true, true)]);
        assert_eq!(parse("task i init boot priority=1").unwrap(), [spec("i", 1, true, true)]);
    }

    #[test]
    fn errors_carry_line_and_reason() {
        let cases: &[(&str, usize, ManifestErrorKind)] = &[
            ("task a priority=1 init\nspawn b\n", 2, ManifestErrorKind::UnknownDirective("spawn".to_string())),
            ("\n\ntask\n", 3, ManifestErrorKind::MissingName),
            (
                "task aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa priority=1 init",
                1,
                ManifestErrorKind::BadName { name: "a".repeat(33), problem: NameError::TooLong(33) },
            ),
            ("task a priority=1 init domain=net", 1, ManifestErrorKind::UnknownKey("domain".to_string())),
            ("task a priority=1 init caps=", 1, ManifestErrorKind::MalformedSetting("caps=".to_string())),
            ("task a =1 init", 1, ManifestErrorKind::MalformedSetting("=1".to_string())),
            ("task a priority=1 priority=2 init", 1, ManifestErrorKind::DuplicateKey("priority".to_string())),
            ("task a priority=1 init fast", 1, ManifestErrorKind::UnknownWord("fast".to_string())),
            ("task a priority=1 boot boot init", 1, ManifestErrorKind::DuplicateFlag("boot".to_string())),
            ("task a priority=32 init", 1, ManifestErrorKind::BadPriority("32".to_string())),
            ("task a priority=+3 init", 1, ManifestErrorKind::BadPriority("+3".to_string())),
            ("task a priority=-1 init", 1, ManifestErrorKind::BadPriority("-1".to_string())),
            (
                "task a priority=99999999999999999999 init",
                1,
                ManifestErrorKind::BadPriority("99999999999999999999".to_string()),
            ),
            ("task a priority=x init", 1, ManifestErrorKind::BadPriority("x".to_string())),
            ("task a init", 1, ManifestErrorKind::MissingPriority),
            (
                "task a priority=1 init\n# again\ntask a priority=2\n",
                3,
                ManifestErrorKind::DuplicateTask { name: "a".to_string(), first_line: 1 },
            ),
            ("task a priority=1 init\ntask b priority=2 init\n", 2, ManifestErrorKind::SecondInit { first_line: 1 }),
            ("task a priority=1 boot\n", 0, ManifestErrorKind::NoInit),
            ("", 0, ManifestErrorKind::NoInit),
            ("# only a comment\n", 0, ManifestErrorKind::NoInit),
        ];
        for (text, line, kind) in cases {
            let err = error_of(text);
            assert_eq!(err, ManifestError { line: *line, kind: kind.clone() }, "{text:?}");
            let message = format!("{err}");
            assert!(!message.contains('\n'), "{message}");
            if *line > 0 {
                assert!(message.starts_with(&format!("manifest line {line}: ")), "{message}");
            }
        }
    }

    #[test]
    fn message_wording() {
        assert_eq!(
            format!("{}", error_of("task a priority=1 init\n\ntask b priority=1 x=y")),
            "manifest line 3: unknown key `x`"
        );
        assert_eq!(format!("{}", error_of("task a priority=1")), "manifest: no task is marked `init`");
    }

    #[test]
    fn comment_can_follow_a_word_directly() {
        assert_eq!(parse("task a priority=7 init#comment").unwrap(), [spec("a", 7, true, true)]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn never_panics(text in "(task|init|boot|priority=|[0-9]|#| |\n|=|[a-z]|\u{0}|é){0,80}") {
            let _ = parse(&text);
        }

        #[test]
        fn never_panics_on_any_string(text in any::<std::string::String>()) {
            let _ = parse(&text);
        }

        #[test]
        fn accepted_manifests_are_consistent(
            tasks in proptest::collection::vec(
                ("[a-z]{1,8}", 0u8..=31, any::<bool>()),
                1..6,
            )
        ) {
            let mut text = std::string::String::new();
            for (i, (name, priority, boot)) in tasks.iter().enumerate() {
                text.push_str(&format!(
                    "task {name} priority={priority}{}{}\n",
                    if *boot { " boot" } else { "" },
                    if i == 0 { " init" } else { "" },
                ));
            }
            if let Ok(specs) = parse(&text) {
                prop_assert_eq!(specs.len(), tasks.len());
                prop_assert_eq!(specs.iter().filter(|s| s.init).count(), 1);
                for (s, (name, priority, boot)) in specs.iter().zip(&tasks) {
                    prop_assert_eq!(&s.name, name);
                    prop_assert_eq!(s.priority, *priority);
                    prop_assert_eq!(s.boot, *boot || s.init);
                }
            } else {
                // Only a repeated name may make it fail.
                let mut names: std::vec::Vec<&std::string::String> =
                    tasks.iter().map(|t| &t.0).collect();
                names.sort();
                names.dedup();
                prop_assert!(names.len() < tasks.len());
            }
        }
    }
}
