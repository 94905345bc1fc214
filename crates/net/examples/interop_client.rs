//! The interop script's client: runs a fixed exchange against any echo server
//! and checks every echo byte for byte, then the close code.
//!
//! ```text
//! interop_client URL [--deflate] [--ca CERT.pem]
//! ```
//! Exits non-zero, saying what differed, on any mismatch.

use std::path::PathBuf;

use volley_net::{tls, CloseCode, Connector, DeflateConfig, Message, OpCode};

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("FAIL: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args.next().ok_or("usage: interop_client URL [--deflate] [--ca FILE]")?;
    let mut connector = Connector::default();
    let mut deflate = false;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--deflate" => {
                deflate = true;
                connector = connector.deflate(DeflateConfig::default());
            }
            "--ca" => {
                let path = PathBuf::from(args.next().ok_or("--ca needs a file")?);
                connector = connector.tls(tls::client_config(Some(&path))?);
            }
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let mut ws = connector.connect(&url).await?;
    if ws.deflate_enabled() != deflate {
        return Err(format!(
            "permessage-deflate negotiated: {}, wanted {deflate}",
            ws.deflate_enabled()
        )
        .into());
    }
    let mut rng = 0x2545_f491_4f6c_dd1d_u64;
    let random: Vec<u8> = (0..1 << 20)
        .map(|_| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng as u8
        })
        .collect();
    let messages = [
        Message::from("hello interop ✓"),
        Message::from((0..=255u8).collect::<Vec<u8>>()),
        Message::from("compressible text ".repeat(12_000)),
        Message::from(random),
        Message::from(""),
    ];
    for m in &messages {
        ws.send(m.clone()).await?;
        let echo = ws.recv().await?.ok_or("closed before the echo")?;
        if &echo != m {
            return Err(format!("echo of a {}-byte message differs", m.len()).into());
        }
    }
    // A fragmented text message comes back whole.
    ws.feed_frame(OpCode::Text, false, "frag one, ".as_bytes()).await?;
    ws.feed_frame(OpCode::Continuation, false, "frag two, ".as_bytes())
        .await?;
    ws.feed_frame(OpCode::Continuation, true, "frag three ✓".as_bytes())
        .await?;
    ws.flush().await?;
    let echo = ws.recv().await?.ok_or("closed before the fragmented echo")?;
    if echo != Message::from("frag one, frag two, frag three ✓") {
        return Err(format!("fragmented echo differs: {echo:?}").into());
    }
    ws.close(CloseCode(4000), "bye").await?;
    match ws.peer_close() {
        Some(frame) if frame.code == CloseCode(4000) => {}
        other => return Err(format!("expected the close code 4000 echoed, got {other:?}").into()),
    }
    println!("ok: {url} (deflate {deflate})");
    Ok(())
}
