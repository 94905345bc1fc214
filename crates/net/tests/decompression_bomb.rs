//! A 1 GiB decompression bomb against a real server over a real socket.
//! Memory is measured with a counting global allocator, so the bound is
//! asserted on bytes actually allocated, not inferred.

// Reviewed: a `GlobalAlloc` must be `unsafe impl`; each method only forwards
// to `System` with the caller's arguments and counts bytes, adding no
// pointer arithmetic or aliasing of its own.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;
use volley_net::{Acceptor, Config, DeflateConfig, Error};

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = CURRENT.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    /// Counted as the net change in what the program holds; the system
    /// allocator grows large blocks in place (mremap) rather than copying.
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                let now = CURRENT.fetch_add(new_size - layout.size(), Ordering::Relaxed) + new_size - layout.size();
                PEAK.fetch_max(now, Ordering::Relaxed);
            } else {
                CURRENT.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const MAX_MESSAGE: usize = 8 << 20;

/// 1 GiB of zeros as one compressed message, cut into masked 60 kB
/// fragments (RSV1 on the first), ready to write.
fn bomb_frames() -> (Vec<u8>, usize) {
    let mut compressor = flate2::Compress::new_with_window_bits(flate2::Compression::best(), false, 15);
    let zeros = vec![0u8; 1 << 20];
    let mut compressed = Vec::with_capacity(2 << 20);
    for _ in 0..1024 {
        compressed.reserve(64 << 10);
        compressor
            .compress_vec(&zeros, &mut compressed, flate2::FlushCompress::None)
            .unwrap();
    }
    let total_in = compressor.total_in() as usize;
    let key = [0x12, 0x34, 0x56, 0x78];
    let mut frames = Vec::with_capacity(compressed.len() + compressed.len() / 1000 + 64);
    let chunks: Vec<&[u8]> = compressed.chunks(60_000).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        let b0 = match i {
            0 => 0x42, // binary, RSV1, more to come
            _ => 0x00, // continuation (the bomb never ends: the limit stops it first)
        };
        frames.push(b0);
        if chunk.len() < 126 {
            frames.push(0x80 | chunk.len() as u8);
        } else {
            frames.push(0x80 | 126);
            frames.extend_from_slice(&(chunk.len() as u16).to_be_bytes());
        }
        frames.extend_from_slice(&key);
        frames.extend(chunk.iter().enumerate().map(|(j, b)| b ^ key[j % 4]));
    }
    (frames, total_in)
}

#[tokio::test]
async fn one_gib_bomb_closes_with_1009_within_the_memory_limit() {
    let (frames, inflated_size) = bomb_frames();
    assert_eq!(inflated_size, 1 << 30);
    assert!(
        frames.len() < 2 << 20,
        "the bomb is small on the wire: {} bytes",
        frames.len()
    );

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = Acceptor::new(Config {
        protocol: volley_wire::Config {
            max_frame_size: 1 << 20,
            max_message_size: MAX_MESSAGE,
        },
        ..Config::default()
    })
    .deflate(DeflateConfig::default());
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let (mut ws, _) = acceptor.accept_tcp(tcp).await.unwrap();
        assert!(ws.deflate_enabled());
        ws.recv().await
    });

    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
          Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
    )
    .await
    .unwrap();
    let mut head = vec![0u8; 4096];
    let n = tcp.read(&mut head).await.unwrap();
    let head = String::from_utf8_lossy(&head[..n]).into_owned();
    assert!(
        head.starts_with("HTTP/1.1 101") && head.contains("permessage-deflate"),
        "{head}"
    );

    let baseline = CURRENT.load(Ordering::Relaxed);
    PEAK.store(baseline, Ordering::Relaxed);

    // The server may close before it has read everything: write what it takes.
    let (mut rd, mut wr) = tcp.into_split();
    let writer = tokio::spawn(async move {
        let _ = wr.write_all(&frames).await;
    });
    let mut reply = Vec::new();
    timeout(Duration::from_secs(30), rd.read_to_end(&mut reply))
        .await
        .expect("server closes the connection")
        .ok();
    let _ = writer.await;
    let peak_growth = PEAK.load(Ordering::Relaxed).saturating_sub(baseline);

    let result = server.await.unwrap();
    assert!(
        matches!(result, Err(Error::Protocol(volley_wire::Error::MessageTooBig { .. }))),
        "{result:?}"
    );
    assert!(
        reply.len() >= 4 && reply[0] == 0x88,
        "close frame expected, got {reply:02x?}"
    );
    assert_eq!(u16::from_be_bytes([reply[2], reply[3]]), 1009);
    // Inflating it all would take 1 GiB. The server held at most one message
    // (the limit), one read buffer and one frame, plus the zlib state.
    let bound = MAX_MESSAGE + (4 << 20);
    assert!(
        peak_growth <= bound,
        "peak allocation grew by {peak_growth} bytes, bound {bound}"
    );
    eprintln!("peak allocation growth during the bomb: {peak_growth} bytes (limit {MAX_MESSAGE})");
}
