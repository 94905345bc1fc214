//! uring-echo: volley's WebSocket codec driven by io_uring on one thread.
//!
//! An experiment for the performance issue, not the product: does handing
//! the kernel every connection's receive and send in one `io_uring_enter`
//! (instead of a `recvfrom` and a `send` per message, as tokio over epoll
//! does) make the echo server cheaper per round trip? bench/compare.sh runs
//! it beside `volley echo` and the peers, pinned the same way.
//!
//! One ring, one thread. Each connection has one receive and at most one
//! send in flight; completions are reaped in batches and the next
//! submissions go in with the same system call that waits for more.
//!
//!   uring-echo 127.0.0.1:9001

use std::net::TcpListener;
use std::os::fd::{AsRawFd, RawFd};

use bytes::BytesMut;
use io_uring::{opcode, types, IoUring};
use volley_wire::handshake::{parse_request, reject_response, switching_response, validate_request};
use volley_wire::{Config, Connection, Event, Role};

/// Submission entries: each connection has at most two operations queued
/// (a receive and a send) and the listener one accept, so this serves up to
/// 4,095 connections; the benchmark opens 64.
const RING: u32 = 8192;
const READ: usize = 64 * 1024;

const ACCEPT: u64 = 0;
const RECV: u64 = 1;
const SEND: u64 = 2;

struct Conn {
    fd: RawFd,
    buf: Box<[u8]>,
    /// Request bytes until the handshake is done.
    head: Vec<u8>,
    open: bool,
    ws: Connection,
    /// The bytes a send in flight reads; the kernel holds a pointer into it.
    /// Swapped with the codec's write buffer, so nothing is copied.
    out: BytesMut,
    out_at: usize,
    recv_busy: bool,
    send_busy: bool,
    closing: bool,
}

fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:9001".into());
    // DEFER_TASKRUN (with SINGLE_ISSUER) runs completion work only when this
    // thread enters the kernel to wait, in one batch, instead of
    // interrupting it; URING_PLAIN=1 turns that off to compare.
    let mut ring = if std::env::var_os("URING_PLAIN").is_some() {
        IoUring::new(RING)?
    } else {
        IoUring::builder()
            .setup_single_issuer()
            .setup_defer_taskrun()
            .build(RING)?
    };
    // `--check`: can this kernel (and its seccomp filter) give us the ring?
    if addr == "--check" {
        return Ok(());
    }
    // Bound after the ring exists, so a listening port means a working server.
    let listener = TcpListener::bind(&addr)?;
    let lfd = listener.as_raw_fd();

    let mut conns: Vec<Option<Conn>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut done: Vec<(u64, i32)> = Vec::with_capacity(RING as usize);
    let mut pending: Vec<io_uring::squeue::Entry> = Vec::new();

    pending.push(
        opcode::Accept::new(types::Fd(lfd), std::ptr::null_mut(), std::ptr::null_mut())
            .build()
            .user_data(ACCEPT),
    );
    loop {
        {
            let mut sq = ring.submission();
            for e in pending.drain(..) {
                // The ring is sized for every connection's two operations
                // (see RING).
                unsafe { sq.push(&e) }.expect("submission queue full");
            }
        }
        match ring.submit_and_wait(1) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            Err(e) => return Err(e),
        }
        done.extend(ring.completion().map(|c| (c.user_data(), c.result())));
        for (data, res) in done.drain(..) {
            let (slot, op) = ((data >> 2) as usize, data & 3);
            if op == ACCEPT {
                pending.push(
                    opcode::Accept::new(types::Fd(lfd), std::ptr::null_mut(), std::ptr::null_mut())
                        .build()
                        .user_data(ACCEPT),
                );
                if res < 0 {
                    continue;
                }
                let fd = res;
                let one: libc::c_int = 1;
                unsafe {
                    libc::setsockopt(
                        fd,
                        libc::IPPROTO_TCP,
                        libc::TCP_NODELAY,
                        &one as *const _ as *const libc::c_void,
                        4,
                    );
                }
                let conn = Conn {
                    fd,
                    buf: vec![0u8; READ].into_boxed_slice(),
                    head: Vec::new(),
                    open: false,
                    ws: Connection::new(Role::Server, Config::default()),
                    out: BytesMut::new(),
                    out_at: 0,
                    recv_busy: false,
                    send_busy: false,
                    closing: false,
                };
                let slot = match free.pop() {
                    Some(s) => {
                        conns[s] = Some(conn);
                        s
                    }
                    None => {
                        conns.push(Some(conn));
                        conns.len() - 1
                    }
                };
                if let Some(c) = conns[slot].as_mut() {
                    recv(c, slot, &mut pending);
                }
                continue;
            }
            let Some(c) = conns.get_mut(slot).and_then(|c| c.as_mut()) else {
                continue;
            };
            if op == RECV {
                c.recv_busy = false;
                if res <= 0 {
                    c.closing = true;
                } else {
                    on_data(c, res as usize);
                }
            } else if op == SEND {
                c.send_busy = false;
                if res < 0 {
                    c.closing = true;
                } else {
                    c.out_at += res as usize;
                }
            }
            flush(c, slot, &mut pending);
            if !c.closing && !c.recv_busy {
                recv(c, slot, &mut pending);
            }
            if c.closing && !c.recv_busy && !c.send_busy {
                unsafe { libc::close(c.fd) };
                conns[slot] = None;
                free.push(slot);
            }
        }
    }
}

fn recv(c: &mut Conn, slot: usize, pending: &mut Vec<io_uring::squeue::Entry>) {
    c.recv_busy = true;
    pending.push(
        opcode::Recv::new(types::Fd(c.fd), c.buf.as_mut_ptr(), c.buf.len() as u32)
            .build()
            .user_data((slot as u64) << 2 | RECV),
    );
}

/// Decode what arrived and queue the echoes.
fn on_data(c: &mut Conn, n: usize) {
    if !c.open {
        c.head.extend_from_slice(&c.buf[..n]);
        match parse_request(&c.head) {
            Ok(None) if c.head.len() < 16 * 1024 => {}
            Ok(Some((req, len))) => match validate_request(&req) {
                Ok(v) => {
                    c.out = BytesMut::from(&switching_response(&v.accept, None, &[])[..]);
                    c.out_at = 0;
                    c.open = true;
                    let rest = c.head.split_off(len);
                    c.ws.read_buf().extend_from_slice(&rest);
                    c.head = Vec::new();
                    echo(c);
                }
                Err(e) => {
                    c.out = BytesMut::from(&reject_response(&e)[..]);
                    c.closing = true;
                }
            },
            _ => c.closing = true,
        }
        return;
    }
    c.ws.read_buf().extend_from_slice(&c.buf[..n]);
    echo(c);
}

fn echo(c: &mut Conn) {
    loop {
        match c.ws.poll_event() {
            Ok(Some(Event::Message(m))) => {
                if c.ws.send(&m).is_err() {
                    c.closing = true;
                    return;
                }
            }
            Ok(Some(Event::Close(_))) => {
                c.closing = true;
                return;
            }
            Ok(Some(_)) => {}
            Ok(None) => {
                if c.ws.is_done() {
                    c.closing = true;
                }
                return;
            }
            Err(_) => {
                c.closing = true;
                return;
            }
        }
    }
}

/// Start a send of what is queued, unless one is in flight.
fn flush(c: &mut Conn, slot: usize, pending: &mut Vec<io_uring::squeue::Entry>) {
    if c.send_busy {
        return;
    }
    if c.out_at >= c.out.len() {
        c.out.clear();
        c.out_at = 0;
        if c.ws.write_len() == 0 {
            return;
        }
        std::mem::swap(&mut c.out, c.ws.write_buf());
    }
    let rest = &c.out[c.out_at..];
    c.send_busy = true;
    pending.push(
        opcode::Send::new(types::Fd(c.fd), rest.as_ptr(), rest.len() as u32)
            .flags(libc::MSG_NOSIGNAL)
            .build()
            .user_data((slot as u64) << 2 | SEND),
    );
}
