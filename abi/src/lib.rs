//! The Iris system-call ABI — the one definition of every number that crosses
//! the user/kernel boundary. The kernel and the SDK take their constants from
//! here; `docs/abi.md` describes the same in prose.
//!
//! # Calling convention
//! A task enters the kernel with the `syscall` instruction:
//!
//! | register | on entry | on return |
//! | --- | --- | --- |
//! | `rax` | syscall number ([`Sys`]) | status: 0 = success, else an [`Error`] code |
//! | `rdi`, `rsi`, `rdx` | arguments 0–2 | result words 0–2 (unchanged where a call defines none) |
//! | `r10`, `r8`, `r9` | arguments 3–5 | unchanged |
//! | `rcx`, `r11` | — | clobbered (the `syscall` instruction uses them) |
//! | all others, `rflags` arithmetic flags aside, and the whole x87/SSE state | — | preserved |
//!
//! The IPC calls use more registers; see [`ipc`].
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

/// System-call numbers, passed in `rax`.
#[repr(u64)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sys {
    /// Write bytes to the console: `(ptr, len)` → `()`.
    ConsoleWrite = 0,
    /// Give up the rest of the time slice: `()` → `()`.
    Yield = 1,
    /// End the whole calling task with an exit code: `(code)` → never returns.
    TaskExit = 2,
    /// End the calling thread; the task ends with its last thread: `(code)` → never returns.
    ThreadExit = 3,
    /// Create a thread in the caller's task, not yet running:
    /// `(entry, stack_top, arg, priority)` → `(thread token)`.
    ThreadCreate = 4,
    /// Make a created thread runnable: `(thread token)` → `()`.
    ThreadStart = 5,
    /// Map zeroed anonymous memory into the caller's space:
    /// `(len, flags)` → `(address)`. See [`map`].
    MemMap = 6,
    /// Unmap memory obtained from [`Sys::MemMap`]: `(address, len)` → `()`.
    MemUnmap = 7,
    /// Copy a capability into a new slot with the same rights: `(token)` → `(new token)`.
    CapCopy = 8,
    /// Derive a capability with fewer rights and a badge: `(token, rights, badge)` → `(new token)`.
    CapMint = 9,
    /// Delete a capability slot: `(token)` → `()`.
    CapDelete = 10,
    /// Delete every capability derived from this one: `(token)` → `(count deleted)`.
    CapRevoke = 11,
    /// Describe a capability: `(token)` → `(kind, rights, badge)`.
    CapInspect = 12,
    /// Read one kernel counter: `(counter)` → `(value)`. See [`Counter`].
    Counter = 13,
    /// Start a task of the boot image by name, passing it capabilities:
    /// `(name_ptr, name_len, caps_ptr, ncaps)` → `(task token)`. The new
    /// task's main thread starts with `rdi` = the number of capabilities
    /// and their tokens (in its own table) in `rsi`, `rdx`, `rcx`, `r8`.
    TaskSpawn = 14,
    /// Wait until a task has ended: `(task token)` → `(kind, value)`. See [`exit`].
    TaskWait = 15,
    /// Create an endpoint: `(kind, queue length, max message size)` → `(token)`. See [`ipc`].
    EndpointCreate = 16,
    /// Delete an endpoint (needs DELETE): `(token)` → `()`.
    EndpointDelete = 17,
    /// Read an endpoint's counters: `(token)` → `(delivered, bytes, calls)`.
    EndpointStats = 18,
    /// Send a message. IPC register convention, see [`ipc`].
    IpcSend = 19,
    /// Receive a message. IPC register convention, see [`ipc`].
    IpcReceive = 20,
    /// Send, then wait for the reply. IPC register convention, see [`ipc`].
    IpcCall = 21,
    /// Reply to a call (the reply token works once). See [`ipc`].
    IpcReply = 22,
    /// Reply, then receive. See [`ipc`].
    IpcReplyReceive = 23,
}

/// The highest syscall number plus one.
pub const SYS_COUNT: u64 = 24;

impl Sys {
    /// Decodes a syscall number; `None` for an unknown number.
    pub fn from_number(n: u64) -> Option<Sys> {
        use Sys::*;
        const ALL: [Sys; SYS_COUNT as usize] = [
            ConsoleWrite,
            Yield,
            TaskExit,
            ThreadExit,
            ThreadCreate,
            ThreadStart,
            MemMap,
            MemUnmap,
            CapCopy,
            CapMint,
            CapDelete,
            CapRevoke,
            CapInspect,
            Counter,
            TaskSpawn,
            TaskWait,
            EndpointCreate,
            EndpointDelete,
            EndpointStats,
            IpcSend,
            IpcReceive,
            IpcCall,
            IpcReply,
            IpcReplyReceive,
        ];
        ALL.get(usize::try_from(n).ok()?).copied()
    }
}

/// Errors a syscall returns in `rax`, named as in the VeridianOS `SyscallError`.
#[repr(u64)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// The syscall number is not one the kernel knows.
    InvalidSyscall = 1,
    /// An argument is out of range: a length, flag, priority, or a user
    /// buffer that is not mapped in the caller's space with the needed access.
    InvalidArgument = 2,
    /// The capability lacks a right the operation needs, or names the wrong
    /// kind of object.
    PermissionDenied = 3,
    /// The token was never issued, was deleted, or was revoked; or a named
    /// object (such as a boot-image task) does not exist.
    NotFound = 4,
    /// The operation would block and non-blocking mode was requested.
    WouldBlock = 5,
    /// A blocking operation's timeout expired.
    Timeout = 6,
    /// The kernel ran out of memory or of slots for the request.
    OutOfMemory = 7,
    /// The object is not in a state that allows the operation (for example
    /// starting a thread twice).
    InvalidState = 8,
    /// The receive buffer is smaller than the message; the message stays
    /// pending and the size it needs is returned in `rdx`.
    BufferTooSmall = 9,
    /// The partner of a call went away: the server died or dropped the
    /// reply right before replying (or the caller died before the reply).
    PeerGone = 10,
}

impl Error {
    /// Decodes a status from `rax`; `None` for 0 (success) or unknown values.
    pub fn from_code(code: u64) -> Option<Error> {
        use Error::*;
        Some(match code {
            1 => InvalidSyscall,
            2 => InvalidArgument,
            3 => PermissionDenied,
            4 => NotFound,
            5 => WouldBlock,
            6 => Timeout,
            7 => OutOfMemory,
            8 => InvalidState,
            9 => BufferTooSmall,
            10 => PeerGone,
            _ => return None,
        })
    }
}

/// Capability rights, as in VeridianOS (`SEEDS-NOTES.md` §1).
pub mod rights {
    /// Receive / read.
    pub const READ: u64 = 0x1;
    /// Send / write.
    pub const WRITE: u64 = 0x2;
    /// Execute / start (threads).
    pub const EXECUTE: u64 = 0x4;
    /// Pass on: copy, mint, or send the capability to another task.
    pub const GRANT: u64 = 0x8;
    /// Revoke capabilities derived from this one.
    pub const REVOKE: u64 = 0x10;
    /// Delete the object itself.
    pub const DELETE: u64 = 0x20;
    /// Change the object.
    pub const MODIFY: u64 = 0x40;
    /// Create objects from it.
    pub const CREATE: u64 = 0x80;
    /// Every right.
    pub const ALL: u64 = 0xFF;
}

/// Capability token layout: slot index in bits 0–47, generation in bits
/// 48–55, object kind in bits 56–59, flags in bits 60–63.
pub mod token {
    /// Bits of the slot index.
    pub const INDEX_MASK: u64 = (1 << 48) - 1;
    /// Shift of the 8-bit generation.
    pub const GENERATION_SHIFT: u32 = 48;
    /// Shift of the 4-bit object kind.
    pub const KIND_SHIFT: u32 = 56;
    /// Shift of the 4-bit flags (reserved, zero).
    pub const FLAGS_SHIFT: u32 = 60;

    /// Builds a token from its parts (each part is masked to its width).
    pub const fn make(index: u64, generation: u8, kind: u8) -> u64 {
        (index & INDEX_MASK) | ((generation as u64) << GENERATION_SHIFT) | (((kind & 0xF) as u64) << KIND_SHIFT)
    }
    /// The slot index of a token.
    pub const fn index(token: u64) -> u64 {
        token & INDEX_MASK
    }
    /// The generation of a token.
    pub const fn generation(token: u64) -> u8 {
        (token >> GENERATION_SHIFT) as u8
    }
    /// The object kind of a token.
    pub const fn kind(token: u64) -> u8 {
        ((token >> KIND_SHIFT) & 0xF) as u8
    }
    /// The flag bits of a token.
    pub const fn flags(token: u64) -> u8 {
        (token >> FLAGS_SHIFT) as u8
    }
}

/// Kinds of kernel object a capability can name (the token's kind bits).
pub mod kind {
    /// A thread.
    pub const THREAD: u8 = 1;
    /// A task.
    pub const TASK: u8 = 2;
    /// An IPC endpoint.
    pub const ENDPOINT: u8 = 3;
    /// The right to reply to one call (works once).
    pub const REPLY: u8 = 4;
}

/// Flags for [`Sys::MemMap`].
pub mod map {
    /// Map writable.
    pub const WRITE: u64 = 0x1;
    /// Map executable.
    pub const EXECUTE: u64 = 0x2;
    /// Largest single mapping, in bytes (64 MiB).
    pub const MAX_LEN: u64 = 64 << 20;
}

/// How a task ended, as returned by [`Sys::TaskWait`] in result word 0;
/// result word 1 carries the value.
pub mod exit {
    /// The task called exit, or its last thread did; value = exit code.
    pub const EXITED: u64 = 0;
    /// A CPU exception ended the task; value = exception vector.
    pub const FAULTED: u64 = 1;
    /// The task panicked (its SDK panic handler exits with this code).
    pub const PANIC_CODE: u64 = 101;
}

/// Kernel counters readable with [`Sys::Counter`].
#[repr(u64)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// Free physical frames (4 KiB).
    FreeFrames = 0,
    /// All usable physical frames the kernel manages.
    TotalFrames = 1,
    /// Live tasks.
    Tasks = 2,
    /// Live threads (idle excluded).
    Threads = 3,
    /// Capability slots in use, over all tasks (reply rights take none).
    CapSlots = 4,
    /// Timer ticks since boot.
    Ticks = 5,
    /// Context switches since boot.
    Switches = 6,
    /// Live IPC endpoints.
    Endpoints = 7,
    /// Pages delivered by remapping (zero-copy) since boot.
    RemappedPages = 8,
    /// Copy-on-write pages copied on a write since boot.
    CowCopies = 9,
    /// Frames of asynchronous-queue storage charged to the calling task
    /// (endpoints it created).
    QueueFrames = 10,
}

impl Counter {
    /// Decodes a counter number.
    pub fn from_number(n: u64) -> Option<Counter> {
        use Counter::*;
        Some(match n {
            0 => FreeFrames,
            1 => TotalFrames,
            2 => Tasks,
            3 => Threads,
            4 => CapSlots,
            5 => Ticks,
            6 => Switches,
            7 => Endpoints,
            8 => RemappedPages,
            9 => CowCopies,
            10 => QueueFrames,
            _ => return None,
        })
    }
}

/// The IPC register convention (calls 19–23).
///
/// On entry:
///
/// | register | meaning |
/// | --- | --- |
/// | `rax` | bits 0–7 syscall number; bits 8–10 capabilities sent (0–4); bits 11–34 send length in bytes; bits 35–58 receive buffer capacity |
/// | `rdi` | endpoint token (`IpcReply`: the reply token) |
/// | `rsi` | `IpcReplyReceive`: the reply token (0: receive only) |
/// | `rdx` | timeout in microseconds: [`ipc::TIMEOUT_ZERO`] don't block, [`ipc::TIMEOUT_NEVER`] no limit |
/// | `r10` | receive buffer address (messages over 64 bytes land there) |
/// | `r8 r9 r12 r13 r14 r15 rbx rbp` | message registers MR0–MR7 |
///
/// A message of at most 64 bytes travels in MR0–MR7 (little-endian bytes,
/// MR0 first); a longer one is read from the address in MR0. Capabilities
/// to send are tokens in MR7, MR6, … (the i-th in MR(7−i)); a short message
/// with capabilities has `64 − 8·n` bytes of room.
///
/// On return: `rax` status; `rdi` the sender's badge; `rsi` a reply token
/// when the message was a call (else 0); `rdx` bits 0–23 received length,
/// bits 24–26 capabilities received (their new tokens in MR7, MR6, …); MR0–MR7
/// the payload of a short message. On `BufferTooSmall`, `rdx` is the size
/// needed and the message stays pending. On any error only `rax` and `rdx`
/// change.
pub mod ipc {
    /// Bits of `rax` holding the syscall number.
    pub const NUMBER_MASK: u64 = 0xFF;
    /// Shift of the 3-bit capability count in `rax`.
    pub const NCAPS_SHIFT: u32 = 8;
    /// Shift of the 24-bit send length in `rax`.
    pub const SEND_LEN_SHIFT: u32 = 11;
    /// Shift of the 24-bit receive capacity in `rax`.
    pub const RECV_CAP_SHIFT: u32 = 35;
    /// Mask of a 24-bit length.
    pub const LEN_MASK: u64 = (1 << 24) - 1;
    /// Shift of the received-capability count in the returned `rdx`.
    pub const RESULT_NCAPS_SHIFT: u32 = 24;
    /// Timeout: do not block.
    pub const TIMEOUT_ZERO: u64 = 0;
    /// Timeout: wait as long as it takes.
    pub const TIMEOUT_NEVER: u64 = u64::MAX;
    /// Message registers.
    pub const MSG_REGS: usize = 8;
    /// Largest message carried in registers.
    pub const SHORT_MAX: usize = 64;
    /// Capabilities per message.
    pub const MAX_CAPS: usize = 4;
    /// Endpoint kind: synchronous rendezvous.
    pub const KIND_SYNC: u64 = 0;
    /// Endpoint kind: asynchronous bounded queue.
    pub const KIND_ASYNC: u64 = 1;
    /// Default maximum message size of an endpoint.
    pub const DEFAULT_MAX_MSG: u64 = 64 * 1024;

    /// Builds `rax` for an IPC call.
    pub const fn encode(number: u64, ncaps: u64, send_len: u64, recv_cap: u64) -> u64 {
        (number & NUMBER_MASK)
            | ((ncaps & 7) << NCAPS_SHIFT)
            | ((send_len & LEN_MASK) << SEND_LEN_SHIFT)
            | ((recv_cap & LEN_MASK) << RECV_CAP_SHIFT)
    }
}

/// Thread priorities: 0 is the lowest, [`MAX_PRIORITY`] the highest.
pub const MAX_PRIORITY: u8 = 31;

/// Bytes in a page.
pub const PAGE_SIZE: u64 = 4096;

/// The lowest address user code may be loaded at.
pub const USER_MIN: u64 = 0x1000;
/// One past the highest user address (the lower canonical half).
pub const USER_END: u64 = 0x0000_8000_0000_0000;
/// Top of a task's main-thread stack.
pub const USER_STACK_TOP: u64 = 0x0000_7fff_ffff_0000;
/// Size of a task's main-thread stack.
pub const USER_STACK_SIZE: u64 = 64 * 1024;
/// Where [`Sys::MemMap`] places anonymous mappings (grows upward).
pub const USER_MAP_BASE: u64 = 0x0000_4000_0000_0000;
/// Longest console write accepted at once.
pub const CONSOLE_MAX: u64 = 4096;
/// Most capabilities passed to a task at spawn.
pub const SPAWN_CAPS: usize = 4;
/// Longest task name in the boot image.
pub const NAME_MAX: usize = 32;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_syscall_number_round_trips() {
        for n in 0..SYS_COUNT {
            assert_eq!(Sys::from_number(n).map(|s| s as u64), Some(n));
        }
        assert_eq!(Sys::from_number(SYS_COUNT), None);
        assert_eq!(Sys::from_number(u64::MAX), None);
    }

    #[test]
    fn error_codes_round_trip() {
        for code in 1..=10 {
            assert_eq!(Error::from_code(code).map(|e| e as u64), Some(code));
        }
        assert_eq!(Error::from_code(0), None);
        assert_eq!(Error::from_code(11), None);
    }

    #[test]
    fn token_fields_are_independent() {
        let t = token::make(0x1234_5678_9abc, 0xA5, 0x3);
        assert_eq!(token::index(t), 0x1234_5678_9abc);
        assert_eq!(token::generation(t), 0xA5);
        assert_eq!(token::kind(t), 3);
        assert_eq!(token::flags(t), 0);
    }
}
