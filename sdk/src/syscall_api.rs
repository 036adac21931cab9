//! The VeridianOS-style IPC interface: endpoints named by capability
//! tokens, synchronous (rendezvous) or asynchronous (bounded queue), with
//! send, receive, call, reply and reply-and-receive, each with a timeout.
//!
//! Messages of at most 64 bytes travel in eight registers; longer ones (up
//! to the endpoint's maximum, 64 KiB by default) are copied once by the
//! kernel, straight from the sender's buffer into the receiver's. The
//! register convention is `abi::ipc`; `docs/ipc.md` describes the semantics.
//!
//! ```no_run
//! use sdk::syscall_api::*;
//! let ep = sys_endpoint_create(EndpointKind::Sync, 0).unwrap();
//! // … give `ep` to a client; then serve:
//! let mut buf = [0u8; 256];
//! let m = sys_ipc_receive(ep, &mut buf).unwrap();
//! sys_ipc_reply(m.reply, &buf[..m.len]).unwrap();
//! ```

use crate::sys::{syscall, SyscallError, SyscallResult};
use abi::ipc::{self, MAX_CAPS, MSG_REGS, SHORT_MAX};
use abi::Sys;
use core::arch::asm;

/// How long a blocking IPC operation may wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timeout {
    /// Wait as long as it takes.
    Never,
    /// Do not wait: `WouldBlock` when no partner is ready (or the queue is full).
    NonBlocking,
    /// Wait at most this many microseconds (rounded up to the 10 ms timer
    /// tick), then `Timeout`.
    Micros(u64),
}

impl Timeout {
    fn word(self) -> u64 {
        match self {
            Timeout::Never => ipc::TIMEOUT_NEVER,
            Timeout::NonBlocking => ipc::TIMEOUT_ZERO,
            Timeout::Micros(0) => 1,
            Timeout::Micros(us) => us.min(ipc::TIMEOUT_NEVER - 1),
        }
    }
}

/// Kind of endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndpointKind {
    /// Rendezvous: a send returns once a receiver has the message.
    Sync,
    /// A queue of this many messages: a send returns once its message is queued.
    Async(u64),
}

/// What a receive (or a call's reply) delivered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Message {
    /// Length of the payload now at the start of the buffer.
    pub len: usize,
    /// Badge of the sender's token (set when it was minted; 0 for replies).
    pub badge: u64,
    /// For a call: the reply token (works once). 0 otherwise.
    pub reply: u64,
    /// Tokens of capabilities that came with the message (in this task's table).
    pub caps: [u64; MAX_CAPS],
    /// How many of `caps` are valid.
    pub ncaps: usize,
}

/// The registers of one IPC system call (`docs/abi.md`), for code that
/// builds calls itself: on entry what the kernel reads, after [`raw_ipc`] what
/// it returned.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Regs {
    /// Number, capability count, send length, receive capacity; then the
    /// status.
    pub rax: u64,
    /// Endpoint (or reply) token; then the sender's badge.
    pub rdi: u64,
    /// Reply token for reply-and-receive; then the reply token received.
    pub rsi: u64,
    /// Timeout in µs; then length and capabilities received.
    pub rdx: u64,
    /// Receive buffer address (unchanged).
    pub r10: u64,
    /// MR0–MR7.
    pub mr: [u64; MSG_REGS],
}

/// Issues an IPC system call with exactly these registers, all eight
/// message registers included, and stores what the kernel returned in `r`.
///
/// # Safety
/// The kernel reads a long message from the address in MR0 and writes a
/// long message received to `r10`, up to the capacity in `rax`: those
/// ranges must be memory the caller may read, or write, with no other
/// reference to it alive (the typed calls of this module take slices for
/// that reason). Register-only calls (lengths and capacity at most 64)
/// touch no memory.
pub unsafe fn raw_ipc(r: &mut Regs) {
    *r = raw(r.rax, r.rdi, r.rsi, r.rdx, r.r10, r.mr);
}

/// The eight message registers, MR0 first.
type Mrs = [u64; MSG_REGS];

/// Issues an IPC system call with these registers and returns what the
/// kernel left in them (`r10` is unchanged by the ABI).
#[inline(always)]
fn raw(rax: u64, rdi: u64, rsi: u64, rdx: u64, r10: u64, mr: Mrs) -> Regs {
    let [mut m0, mut m1, mut m2, mut m3, mut m4, mut m5, mut m6, mut m7] = mr;
    let (mut rax, mut rdi, mut rsi, mut rdx) = (rax, rdi, rsi, rdx);
    // SAFETY: the kernel reads and writes only what these registers name
    // (see `raw_ipc`; the callers pass slices they hold). MR6/MR7 live in
    // rbx/rbp, which inline assembly cannot name: they travel in rcx and
    // r11 (which `syscall` clobbers anyway) and are moved across around the
    // instruction, while the caller's rbx and rbp are saved on the stack
    // and restored. The kernel preserves every other register the ABI
    // promises, r10 included.
    unsafe {
        asm!(
            "push rbp",
            "push rbx",
            "mov rbx, rcx",
            "mov rbp, r11",
            "syscall",
            "mov rcx, rbx",
            "mov r11, rbp",
            "pop rbx",
            "pop rbp",
            inout("rax") rax,
            inout("rdi") rdi,
            inout("rsi") rsi,
            inout("rdx") rdx,
            in("r10") r10,
            inout("r8") m0,
            inout("r9") m1,
            inout("r12") m2,
            inout("r13") m3,
            inout("r14") m4,
            inout("r15") m5,
            inout("rcx") m6,
            inout("r11") m7,
        );
    }
    Regs { rax, rdi, rsi, rdx, r10, mr: [m0, m1, m2, m3, m4, m5, m6, m7] }
}

/// Issues an IPC system call that sends nothing (a receive): as [`raw`],
/// but the message registers are not loaded (the kernel ignores them).
#[inline(always)]
fn raw_receive(rax: u64, rdi: u64, rdx: u64, r10: u64) -> Regs {
    let (mut rax, mut rdi, mut rdx) = (rax, rdi, rdx);
    let (rsi, m0, m1, m2, m3, m4, m5, m6, m7);
    // SAFETY: as in `raw`: the kernel writes only the receive buffer that
    // r10 and the capacity in rax name (the callers pass a slice they
    // hold); rbx and rbp, which receive MR6/MR7, are saved and restored
    // around the `syscall` and their values moved to rcx and r11.
    unsafe {
        asm!(
            "push rbp",
            "push rbx",
            "syscall",
            "mov rcx, rbx",
            "mov r11, rbp",
            "pop rbx",
            "pop rbp",
            inout("rax") rax,
            inout("rdi") rdi,
            lateout("rsi") rsi,
            inout("rdx") rdx,
            in("r10") r10,
            lateout("r8") m0,
            lateout("r9") m1,
            lateout("r12") m2,
            lateout("r13") m3,
            lateout("r14") m4,
            lateout("r15") m5,
            lateout("rcx") m6,
            lateout("r11") m7,
        );
    }
    Regs { rax, rdi, rsi, rdx, r10, mr: [m0, m1, m2, m3, m4, m5, m6, m7] }
}

/// The bytes after a message's last whole word (0 to 7 of them), as a
/// zero-extended little-endian word: at most two overlapping loads.
#[inline(always)]
fn tail_word(tail: &[u8]) -> u64 {
    let t = tail.len();
    if t == 0 {
        0
    } else if let (Some(lo), Some(hi)) = (tail.first_chunk::<4>(), tail.last_chunk::<4>()) {
        u64::from(u32::from_le_bytes(*lo)) | u64::from(u32::from_le_bytes(*hi)) << (8 * (t - 4))
    } else if let (Some(lo), Some(hi)) = (tail.first_chunk::<2>(), tail.last_chunk::<2>()) {
        u64::from(u16::from_le_bytes(*lo)) | u64::from(u16::from_le_bytes(*hi)) << (8 * (t - 2))
    } else {
        tail.first().map_or(0, |&b| u64::from(b))
    }
}

/// Writes the low `tail.len()` (0 to 7) bytes of `v`, little-endian, to
/// `tail`: at most two overlapping stores, of those bytes only.
#[inline(always)]
fn put_tail(tail: &mut [u8], v: u64) {
    let t = tail.len();
    if t == 0 {
        return;
    }
    if t >= 4 {
        let hi = (v >> (8 * (t - 4))) as u32;
        if let Some(c) = tail.first_chunk_mut::<4>() {
            *c = (v as u32).to_le_bytes();
        }
        if let Some(c) = tail.last_chunk_mut::<4>() {
            *c = hi.to_le_bytes();
        }
    } else if t >= 2 {
        let hi = (v >> (8 * (t - 2))) as u16;
        if let Some(c) = tail.first_chunk_mut::<2>() {
            *c = (v as u16).to_le_bytes();
        }
        if let Some(c) = tail.last_chunk_mut::<2>() {
            *c = hi.to_le_bytes();
        }
    } else if let Some(b) = tail.first_mut() {
        *b = v as u8;
    }
}

/// The message registers of a message of at most 64 bytes: its bytes in
/// order, little-endian, zeros after the last. Whole words are loaded as
/// they are; the slice patterns give each length its straight-line code.
#[inline(always)]
fn pack_short(msg: &[u8]) -> Mrs {
    let (words, tail) = msg.as_chunks::<8>();
    let w = |b: &[u8; 8]| u64::from_le_bytes(*b);
    match words {
        [] => [tail_word(tail), 0, 0, 0, 0, 0, 0, 0],
        [a] => [w(a), tail_word(tail), 0, 0, 0, 0, 0, 0],
        [a, b] => [w(a), w(b), tail_word(tail), 0, 0, 0, 0, 0],
        [a, b, c] => [w(a), w(b), w(c), tail_word(tail), 0, 0, 0, 0],
        [a, b, c, d] => [w(a), w(b), w(c), w(d), tail_word(tail), 0, 0, 0],
        [a, b, c, d, e] => [w(a), w(b), w(c), w(d), w(e), tail_word(tail), 0, 0],
        [a, b, c, d, e, f] => [w(a), w(b), w(c), w(d), w(e), w(f), tail_word(tail), 0],
        [a, b, c, d, e, f, g] => [w(a), w(b), w(c), w(d), w(e), w(f), w(g), tail_word(tail)],
        [a, b, c, d, e, f, g, h, ..] => [w(a), w(b), w(c), w(d), w(e), w(f), w(g), w(h)],
    }
}

/// Writes `buf.len()` bytes of the message in `mr` to `buf`: `K` whole
/// words, then the tail.
#[inline(always)]
fn unpack_words<const K: usize>(mr: &Mrs, buf: &mut [u8]) {
    let mut i = 0;
    while i < K {
        buf[8 * i..8 * i + 8].copy_from_slice(&mr[i].to_le_bytes());
        i += 1;
    }
    if K < MSG_REGS {
        put_tail(&mut buf[8 * K..], mr[K]);
    }
}

/// Writes the first `buf.len()` (at most 64) bytes of the message in `mr`
/// to `buf`, and nothing else: whole words as they are, then the tail.
#[inline(always)]
fn unpack_short(mr: &Mrs, buf: &mut [u8]) {
    match buf.len() / 8 {
        0 => unpack_words::<0>(mr, buf),
        1 => unpack_words::<1>(mr, buf),
        2 => unpack_words::<2>(mr, buf),
        3 => unpack_words::<3>(mr, buf),
        4 => unpack_words::<4>(mr, buf),
        5 => unpack_words::<5>(mr, buf),
        6 => unpack_words::<6>(mr, buf),
        7 => unpack_words::<7>(mr, buf),
        _ => unpack_words::<8>(mr, buf),
    }
}

/// The message registers of `msg` with `caps` (checked: at most 4, and
/// room left in a short message).
#[inline(always)]
fn pack(msg: &[u8], caps: &[u64]) -> SyscallResult<Mrs> {
    if caps.len() > MAX_CAPS {
        return Err(SyscallError::InvalidArgument);
    }
    let mut mr = if msg.is_empty() {
        [0; MSG_REGS]
    } else if msg.len() <= SHORT_MAX {
        if msg.len() > SHORT_MAX - 8 * caps.len() {
            return Err(SyscallError::InvalidArgument);
        }
        pack_short(msg)
    } else {
        let mut mr = [0; MSG_REGS];
        mr[0] = msg.as_ptr() as u64;
        mr
    };
    for (i, &c) in caps.iter().enumerate() {
        mr[MSG_REGS - 1 - i] = c;
    }
    Ok(mr)
}

/// Decodes what an IPC call returned: its status, and a short message
/// (copied to `buf`, as much as fits) with its capabilities.
#[inline(always)]
fn finish(r: &Regs, buf: &mut [u8]) -> SyscallResult<Message> {
    if r.rax != 0 {
        return Err(SyscallError::from_code(r.rax).unwrap_or(SyscallError::InvalidSyscall));
    }
    let len = (r.rdx & ipc::LEN_MASK) as usize;
    let ncaps = (((r.rdx >> ipc::RESULT_NCAPS_SHIFT) & 7) as usize).min(MAX_CAPS);
    if len > 0 && len <= SHORT_MAX {
        let n = len.min(buf.len());
        unpack_short(&r.mr, &mut buf[..n]);
    }
    let caps = core::array::from_fn(|i| if i < ncaps { r.mr[MSG_REGS - 1 - i] } else { 0 });
    Ok(Message { len, badge: r.rdi, reply: r.rsi, caps, ncaps })
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn ipc_op(
    sys: Sys,
    token: u64,
    second: u64,
    msg: &[u8],
    caps: &[u64],
    buf: &mut [u8],
    timeout: Timeout,
) -> SyscallResult<Message> {
    if msg.len() as u64 > ipc::LEN_MASK || buf.len() as u64 > ipc::LEN_MASK {
        return Err(SyscallError::InvalidArgument);
    }
    let rax = ipc::encode(sys as u64, caps.len() as u64, msg.len() as u64, buf.len() as u64);
    let r = if matches!(sys, Sys::IpcReceive) {
        raw_receive(rax, token, timeout.word(), buf.as_mut_ptr() as u64)
    } else {
        let mr = pack(msg, caps)?;
        raw(rax, token, second, timeout.word(), buf.as_mut_ptr() as u64, mr)
    };
    finish(&r, buf)
}

/// The size a receive buffer needed, after `BufferTooSmall`.
///
/// Returns the length of the message that is still pending; call again with
/// a buffer at least this large.
///
/// # Errors
/// `WouldBlock` if no message is pending; otherwise those of [`sys_ipc_receive`]
/// (a pending empty message is received by this call and its length, 0, returned).
pub fn needed_size(endpoint: u64) -> SyscallResult<usize> {
    let r = raw_receive(ipc::encode(Sys::IpcReceive as u64, 0, 0, 0), endpoint, ipc::TIMEOUT_ZERO, 0);
    if r.rax == SyscallError::BufferTooSmall as u64 {
        return Ok(r.rdx as usize);
    }
    finish(&r, &mut []).map(|m| m.len)
}

/// Send a message to an IPC endpoint.
///
/// Transmits a message to the specified IPC endpoint. The endpoint is
/// identified by a capability token that the sender must possess with
/// WRITE rights. The kernel validates the capability before delivering the
/// message.
///
/// Messages of 64 bytes or fewer travel in registers; longer ones are copied
/// once, directly from this buffer into the receiver's. This call blocks
/// until a receiver has accepted the message (synchronous endpoint) or until
/// the endpoint's queue has room (asynchronous endpoint).
///
/// # Arguments
/// * `endpoint` — capability token of the endpoint, with at least `WRITE`.
/// * `msg` — the payload: 1 byte up to the endpoint's maximum message size
///   (64 KiB by default).
///
/// # Returns
/// `Ok(())` once the message was delivered (or queued).
///
/// # Errors
/// * `InvalidArgument` — `msg` is empty, larger than the endpoint's maximum,
///   or not readable memory.
/// * `PermissionDenied` — the token lacks `WRITE`, or names something other
///   than an endpoint.
/// * `NotFound` — the token is invalid or revoked, or the endpoint was
///   deleted (also while this call waited).
/// * `WouldBlock` — only from [`sys_ipc_send_timeout`] with `NonBlocking`.
/// * `Timeout` — only from [`sys_ipc_send_timeout`] with a duration.
///
/// # Examples
/// ```no_run
/// use sdk::syscall_api::sys_ipc_send;
/// let endpoint: u64 = 0x1234; // capability token for the endpoint
/// let message = b"hello from sender";
/// sys_ipc_send(endpoint, message).expect("ipc send failed");
/// ```
#[inline]
pub fn sys_ipc_send(endpoint: u64, msg: &[u8]) -> SyscallResult<()> {
    sys_ipc_send_timeout(endpoint, msg, Timeout::Never)
}

/// Send with a timeout: [`sys_ipc_send`], but give up after `timeout`.
///
/// # Arguments
/// * `endpoint`, `msg` — as for [`sys_ipc_send`].
/// * `timeout` — `Never`, `NonBlocking` (fail at once with `WouldBlock` if no
///   receiver waits or the queue is full) or `Micros(n)`.
///
/// # Returns
/// `Ok(())` once delivered or queued.
///
/// # Errors
/// As [`sys_ipc_send`]; plus `WouldBlock` (non-blocking, nobody ready or queue
/// full) and `Timeout` (the duration passed; the message was not sent).
///
/// # Examples
/// ```no_run
/// use sdk::syscall_api::{sys_ipc_send_timeout, Timeout};
/// # let ep = 0;
/// match sys_ipc_send_timeout(ep, b"ping", Timeout::NonBlocking) {
///     Err(sdk::SyscallError::WouldBlock) => { /* try later */ }
///     r => r.unwrap(),
/// }
/// ```
#[inline]
pub fn sys_ipc_send_timeout(endpoint: u64, msg: &[u8], timeout: Timeout) -> SyscallResult<()> {
    ipc_op(Sys::IpcSend, endpoint, 0, msg, &[], &mut [], timeout).map(|_| ())
}

/// Send a message together with capabilities.
///
/// Each capability in `caps` is passed to the receiver, who gets a new
/// token for it (derived from the sender's, so revoking the sender's
/// original reaches it). The sender needs `GRANT` on the endpoint token and
/// on each capability.
///
/// # Arguments
/// * `endpoint`, `msg`, `timeout` — as for [`sys_ipc_send_timeout`]; a short
///   message with `n` capabilities has room for `64 − 8n` bytes.
/// * `caps` — up to 4 capability tokens of this task.
///
/// # Returns
/// `Ok(())` once delivered or queued.
///
/// # Errors
/// As [`sys_ipc_send_timeout`]; plus `PermissionDenied` (no `GRANT` on the
/// endpoint or on a capability), `NotFound` (a capability token is invalid),
/// `InvalidArgument` (more than 4 capabilities, or the short message does not
/// leave room for them).
///
/// # Examples
/// ```no_run
/// use sdk::syscall_api::{sys_ipc_send_caps, Timeout};
/// # let (name_service, my_endpoint) = (0, 0);
/// sys_ipc_send_caps(name_service, b"register echo", &[my_endpoint], Timeout::Never).unwrap();
/// ```
#[inline]
pub fn sys_ipc_send_caps(endpoint: u64, msg: &[u8], caps: &[u64], timeout: Timeout) -> SyscallResult<()> {
    ipc_op(Sys::IpcSend, endpoint, 0, msg, caps, &mut [], timeout).map(|_| ())
}

/// Receive a message from an IPC endpoint.
///
/// Blocks until a message arrives (from a blocked sender, or from the
/// queue of an asynchronous endpoint). The payload is written to the start
/// of `buf`. Senders are served by priority, first come first served within
/// a priority.
///
/// # Arguments
/// * `endpoint` — capability token of the endpoint, with at least `READ`.
/// * `buf` — where the payload goes; it must hold the whole message.
///
/// # Returns
/// A [`Message`]: the length, the sender's badge, for a call the reply token
/// (works once), and any capabilities received.
///
/// # Errors
/// * `BufferTooSmall` — `buf` is shorter than the message; the message stays
///   pending (use [`needed_size`] to learn its size, or receive again with a
///   larger buffer).
/// * `InvalidArgument` — `buf` is not writable memory.
/// * `PermissionDenied` — the token lacks `READ`, or is not an endpoint.
/// * `NotFound` — the token is invalid or revoked, or the endpoint was
///   deleted (also while this call waited).
/// * `OutOfMemory` — this task's capability table has no room for the reply
///   right or the capabilities that come with the message (it stays pending).
///
/// # Examples
/// ```no_run
/// use sdk::syscall_api::sys_ipc_receive;
/// # let ep = 0;
/// let mut buf = [0u8; 4096];
/// let m = sys_ipc_receive(ep, &mut buf).unwrap();
/// let payload = &buf[..m.len];
/// ```
#[inline]
pub fn sys_ipc_receive(endpoint: u64, buf: &mut [u8]) -> SyscallResult<Message> {
    sys_ipc_receive_timeout(endpoint, buf, Timeout::Never)
}

/// Receive with a timeout: [`sys_ipc_receive`], but give up after `timeout`.
///
/// # Arguments
/// * `endpoint`, `buf` — as for [`sys_ipc_receive`].
/// * `timeout` — `Never`, `NonBlocking` (`WouldBlock` if nothing is there) or `Micros(n)`.
///
/// # Returns
/// As [`sys_ipc_receive`].
///
/// # Errors
/// As [`sys_ipc_receive`]; plus `WouldBlock` and `Timeout`.
///
/// # Examples
/// ```no_run
/// use sdk::syscall_api::{sys_ipc_receive_timeout, Timeout};
/// # let ep = 0;
/// let mut buf = [0u8; 64];
/// if let Ok(m) = sys_ipc_receive_timeout(ep, &mut buf, Timeout::Micros(50_000)) { let _ = m; }
/// ```
#[inline]
pub fn sys_ipc_receive_timeout(endpoint: u64, buf: &mut [u8], timeout: Timeout) -> SyscallResult<Message> {
    ipc_op(Sys::IpcReceive, endpoint, 0, &[], &[], buf, timeout)
}

/// Call: send a request and wait for the reply.
///
/// Sends `msg` on a synchronous endpoint like [`sys_ipc_send`], then waits
/// on a reply path bound to this one call. The server gets a reply token
/// that works exactly once. A call may carry 0 bytes.
///
/// # Arguments
/// * `endpoint` — token with `WRITE` of a synchronous endpoint.
/// * `msg` — the request (0 bytes up to the endpoint's maximum).
/// * `reply` — where the reply goes; it must hold the whole reply.
///
/// # Returns
/// The reply's length (its bytes are at the start of `reply`).
///
/// # Errors
/// * `InvalidArgument` — larger than the maximum, unreadable `msg`, unwritable
///   `reply`, or an asynchronous endpoint.
/// * `PermissionDenied`, `NotFound` — as for [`sys_ipc_send`].
/// * `PeerGone` — the server died, or deleted the reply right, before replying.
/// * `OutOfMemory` — the server's task already holds 256 unanswered calls'
///   reply rights (a reply right takes no capability slot).
///
/// # Examples
/// ```no_run
/// use sdk::syscall_api::sys_ipc_call;
/// # let ep = 0;
/// let mut answer = [0u8; 64];
/// let n = sys_ipc_call(ep, b"get key", &mut answer).unwrap();
/// let value = &answer[..n];
/// ```
#[inline]
pub fn sys_ipc_call(endpoint: u64, msg: &[u8], reply: &mut [u8]) -> SyscallResult<usize> {
    sys_ipc_call_timeout(endpoint, msg, reply, Timeout::Never)
}

/// Call with a timeout on the send phase: [`sys_ipc_call`], but if no server
/// takes the request within `timeout`, fail with `Timeout` (or `WouldBlock`
/// for `NonBlocking`). Once the server has the request, the reply is awaited
/// without limit.
///
/// # Arguments
/// As [`sys_ipc_call`], plus `timeout`.
///
/// # Returns
/// The reply's length.
///
/// # Errors
/// As [`sys_ipc_call`]; plus `WouldBlock` and `Timeout`.
///
/// # Examples
/// ```no_run
/// use sdk::syscall_api::{sys_ipc_call_timeout, Timeout};
/// # let ep = 0;
/// let mut answer = [0u8; 8];
/// let _ = sys_ipc_call_timeout(ep, b"", &mut answer, Timeout::Micros(100_000));
/// ```
#[inline]
pub fn sys_ipc_call_timeout(endpoint: u64, msg: &[u8], reply: &mut [u8], timeout: Timeout) -> SyscallResult<usize> {
    ipc_op(Sys::IpcCall, endpoint, 0, msg, &[], reply, timeout).map(|m| m.len)
}

/// Reply to a call.
///
/// Delivers `msg` to the thread waiting in [`sys_ipc_call`] and consumes the
/// reply token (a second reply with it fails with `NotFound`).
///
/// # Arguments
/// * `reply` — the reply token from the received [`Message`].
/// * `msg` — the reply (0 bytes or more).
///
/// # Returns
/// `Ok(())` when the caller has the reply.
///
/// # Errors
/// * `NotFound` — the token is not a live reply right of this task (already
///   used or dropped, never issued, or not a reply token at all).
/// * `BufferTooSmall` — the caller's reply buffer is smaller than `msg`; the
///   reply right stays valid (reply again with less).
/// * `InvalidArgument` — `msg` is not readable memory, or too large.
/// * `PeerGone` — the caller is gone (the right is used up).
///
/// # Examples
/// ```no_run
/// use sdk::syscall_api::{sys_ipc_receive, sys_ipc_reply};
/// # let ep = 0;
/// let mut buf = [0u8; 64];
/// let m = sys_ipc_receive(ep, &mut buf).unwrap();
/// sys_ipc_reply(m.reply, b"done").unwrap();
/// ```
#[inline]
pub fn sys_ipc_reply(reply: u64, msg: &[u8]) -> SyscallResult<()> {
    ipc_op(Sys::IpcReply, reply, 0, msg, &[], &mut [], Timeout::Never).map(|_| ())
}

/// Reply, then receive the next message: a server loop in one system call.
///
/// With `reply == 0` it only receives. If the reply fails, its error is
/// returned and nothing is received.
///
/// # Arguments
/// * `reply` — reply token of the previous call, or 0.
/// * `msg` — the reply.
/// * `endpoint` — token with `READ` to receive on.
/// * `buf` — where the next message goes.
///
/// # Returns
/// The next [`Message`].
///
/// # Errors
/// Those of [`sys_ipc_reply`], then those of [`sys_ipc_receive`].
///
/// # Examples
/// ```no_run
/// use sdk::syscall_api::sys_ipc_reply_receive;
/// # let ep = 0;
/// let mut buf = [0u8; 64];
/// let mut reply = 0;
/// let mut answer = [0u8; 64];
/// loop {
///     let m = sys_ipc_reply_receive(reply, &answer[..0], ep, &mut buf).unwrap();
///     reply = m.reply;
///     answer[..m.len].copy_from_slice(&buf[..m.len]);
/// }
/// ```
#[inline]
pub fn sys_ipc_reply_receive(reply: u64, msg: &[u8], endpoint: u64, buf: &mut [u8]) -> SyscallResult<Message> {
    ipc_op(Sys::IpcReplyReceive, endpoint, reply, msg, &[], buf, Timeout::Never)
}

/// Create an endpoint.
///
/// # Arguments
/// * `kind` — `Sync` (rendezvous) or `Async(n)`: a queue of `n` messages
///   (1–256), whose storage (n × maximum size, for maxima over 64 bytes) is
///   taken from free memory now and returned when the endpoint is deleted.
/// * `max_msg` — largest message in bytes; 0 means the default, 64 KiB (at most 1 MiB).
///
/// # Returns
/// A token with `READ | WRITE | GRANT | REVOKE | DELETE`.
///
/// # Errors
/// * `InvalidArgument` — a bad queue length or maximum size.
/// * `OutOfMemory` — no memory for the queue, or the capability table is full.
///
/// # Examples
/// ```no_run
/// use sdk::syscall_api::{sys_endpoint_create, EndpointKind};
/// let ep = sys_endpoint_create(EndpointKind::Async(8), 256).unwrap();
/// ```
pub fn sys_endpoint_create(kind: EndpointKind, max_msg: u64) -> SyscallResult<u64> {
    let (k, n) = match kind {
        EndpointKind::Sync => (ipc::KIND_SYNC, 0),
        EndpointKind::Async(n) => (ipc::KIND_ASYNC, n),
    };
    syscall(Sys::EndpointCreate as u64, [k, n, max_msg, 0, 0, 0]).map(|r| r[0])
}

/// Delete an endpoint.
///
/// Every capability naming it stops working (`NotFound`); threads waiting on
/// it are woken with `NotFound`; queued messages are dropped and the queue's
/// memory is returned.
///
/// # Errors
/// * `NotFound` — invalid or revoked token.
/// * `PermissionDenied` — no `DELETE` right, or not an endpoint.
///
/// # Examples
/// ```no_run
/// # let ep = 0;
/// sdk::syscall_api::sys_endpoint_delete(ep).unwrap();
/// ```
pub fn sys_endpoint_delete(endpoint: u64) -> SyscallResult<()> {
    syscall(Sys::EndpointDelete as u64, [endpoint, 0, 0, 0, 0, 0]).map(|_| ())
}

/// An endpoint's counters: `(messages delivered, payload bytes, calls)`.
///
/// # Errors
/// * `NotFound` — invalid or revoked token.
/// * `PermissionDenied` — no `READ` right, or not an endpoint.
///
/// # Examples
/// ```no_run
/// # let ep = 0;
/// let (msgs, bytes, calls) = sdk::syscall_api::sys_endpoint_stats(ep).unwrap();
/// ```
pub fn sys_endpoint_stats(endpoint: u64) -> SyscallResult<(u64, u64, u64)> {
    syscall(Sys::EndpointStats as u64, [endpoint, 0, 0, 0, 0, 0]).map(|r| (r[0], r[1], r[2]))
}

/// Call with capabilities both ways: the request may carry capabilities and
/// the reply's are returned in the [`Message`].
///
/// Like [`sys_ipc_call_timeout`]; `caps` (up to 4 tokens with `GRANT`, and
/// `GRANT` on the endpoint) travel with the request.
///
/// # Arguments
/// * `endpoint`, `msg`, `reply`, `timeout` — as for [`sys_ipc_call_timeout`].
/// * `caps` — capabilities to pass to the server.
///
/// # Returns
/// The reply as a [`Message`] (length, and capabilities the server passed).
///
/// # Errors
/// As [`sys_ipc_call_timeout`] and [`sys_ipc_send_caps`].
///
/// # Examples
/// ```no_run
/// use sdk::syscall_api::{sys_ipc_call_caps, Timeout};
/// # let names = 0;
/// let mut out = [0u8; 16];
/// let m = sys_ipc_call_caps(names, b"lookup kv", &[], &mut out, Timeout::Never).unwrap();
/// let kv = m.caps[0];
/// ```
#[inline]
pub fn sys_ipc_call_caps(
    endpoint: u64,
    msg: &[u8],
    caps: &[u64],
    reply: &mut [u8],
    timeout: Timeout,
) -> SyscallResult<Message> {
    ipc_op(Sys::IpcCall, endpoint, 0, msg, caps, reply, timeout)
}

/// Reply with capabilities.
///
/// Like [`sys_ipc_reply`]; `caps` (up to 4 tokens with `GRANT`) go to the caller.
///
/// # Arguments
/// * `reply`, `msg` — as for [`sys_ipc_reply`].
/// * `caps` — capabilities to pass to the caller.
///
/// # Returns
/// `Ok(())` when the caller has the reply.
///
/// # Errors
/// As [`sys_ipc_reply`]; plus `PermissionDenied` (a capability lacks `GRANT`)
/// and `NotFound` (a capability token is invalid).
///
/// # Examples
/// ```no_run
/// # let (reply, kv) = (0, 0);
/// sdk::syscall_api::sys_ipc_reply_caps(reply, b"ok", &[kv]).unwrap();
/// ```
#[inline]
pub fn sys_ipc_reply_caps(reply: u64, msg: &[u8], caps: &[u64]) -> SyscallResult<()> {
    ipc_op(Sys::IpcReply, reply, 0, msg, caps, &mut [], Timeout::Never).map(|_| ())
}
