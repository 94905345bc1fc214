//! The echo scenario's raw client: after a normal handshake, it writes
//! pre-encoded masked frames and reads the echoes by counting bytes.
//!
//! With two cores, one for the server and one for the load, a generator that
//! parses and masks every frame costs as much CPU as the server it measures
//! and becomes the bottleneck. Every echo of a fixed-size message has the
//! same length and the same header, so the generator only checks each echo's
//! header at its boundary and counts the rest: several times cheaper than
//! the server's work, so the server is what gets measured.

use std::collections::VecDeque;

use bytes::{BufMut, Bytes, BytesMut};
use hdrhistogram::Histogram;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::{timeout, Duration, Instant};
use volley_net::{MaybeTlsStream, WebSocket};

/// A masked binary frame carrying `size` bytes, and the header its echo
/// must start with.
pub(crate) fn frames(size: usize) -> (Bytes, Vec<u8>) {
    let key = [0x1a, 0x2b, 0x3c, 0x4d];
    let mut header = vec![0x82u8];
    match size {
        0..=125 => header.push(size as u8),
        126..=0xFFFF => {
            header.push(126);
            header.extend_from_slice(&(size as u16).to_be_bytes());
        }
        _ => {
            header.push(127);
            header.extend_from_slice(&(size as u64).to_be_bytes());
        }
    }
    let mut frame = BytesMut::with_capacity(header.len() + 4 + size);
    frame.put_u8(header[0]);
    frame.put_u8(header[1] | 0x80);
    frame.put_slice(&header[2..]);
    frame.put_slice(&key);
    frame.extend((0..size).map(|i| b'x' ^ key[i % 4]));
    (frame.freeze(), header)
}

/// What one connection did.
pub(crate) struct Outcome {
    pub hist: Histogram<u64>,
    pub ops: u64,
    pub bytes: u64,
    pub errors: u64,
}

/// Keep `in_flight` echoes going on `ws` until `deadline`, measuring from
/// `measure_from`.
pub(crate) async fn run(
    ws: WebSocket<MaybeTlsStream>,
    frame: Bytes,
    echo_header: Vec<u8>,
    size: usize,
    in_flight: usize,
    measure_from: Instant,
    deadline: Instant,
) -> Outcome {
    let mut out = Outcome {
        hist: crate::histogram(),
        ops: 0,
        bytes: 0,
        errors: 0,
    };
    let (mut stream, unread) = ws.into_inner();
    if !unread.is_empty() {
        out.errors += 1;
        return out;
    }
    let echo_len = echo_header.len() + size;
    let mut batch = BytesMut::with_capacity(frame.len() * in_flight);
    let mut sent_at = VecDeque::with_capacity(in_flight);
    for _ in 0..in_flight {
        batch.extend_from_slice(&frame);
        sent_at.push_back(Instant::now());
    }
    if stream.write_all(&batch).await.is_err() {
        out.errors += 1;
        return out;
    }
    let mut buf = vec![0u8; 64 * 1024];
    // Position inside the echo being received.
    let mut at = 0usize;
    'run: loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) | Err(_) => {
                out.errors += 1;
                break;
            }
            Ok(n) => n,
        };
        let mut done = 0usize;
        let mut rest = &buf[..n];
        while !rest.is_empty() {
            if at < echo_header.len() {
                let take = (echo_header.len() - at).min(rest.len());
                if rest[..take] != echo_header[at..at + take] {
                    // Not the echo we sent: count it and stop this connection.
                    out.errors += 1;
                    break 'run;
                }
            }
            let take = (echo_len - at).min(rest.len());
            at += take;
            rest = &rest[take..];
            if at == echo_len {
                at = 0;
                done += 1;
            }
        }
        if done == 0 {
            continue;
        }
        let now = Instant::now();
        for _ in 0..done {
            let sent = sent_at.pop_front().unwrap_or(now);
            if now >= measure_from && now < deadline {
                let _ = out.hist.record((now - sent).as_micros().max(1) as u64);
                out.ops += 1;
                out.bytes += size as u64;
            }
        }
        if now >= deadline {
            break;
        }
        batch.clear();
        for _ in 0..done {
            batch.extend_from_slice(&frame);
            sent_at.push_back(now);
        }
        if stream.write_all(&batch).await.is_err() {
            out.errors += 1;
            break;
        }
    }
    // A masked close (1000), then wait briefly for the server to hang up.
    let _ = stream.write_all(&[0x88, 0x82, 0, 0, 0, 0, 0x03, 0xE8]).await;
    let _ = timeout(Duration::from_secs(2), async {
        while let Ok(n) = stream.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
    out
}
