//! What every HTTP/3 connection carries besides requests, for both sides:
//! our control stream with SETTINGS first, and the peer's unidirectional
//! streams (its control stream, its QPACK encoder and decoder streams).
//!
//! QPACK runs with a dynamic table of capacity 0 both ways (see
//! `volley_h3::qpack`): the peer's encoder stream may only say "capacity 0"
//! and its decoder stream only cancel streams, so both are read and checked
//! but carry no state.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::watch;
use volley_h3::frame::{Frame, FrameDecoder};
use volley_h3::settings::Settings;
use volley_h3::{stream_type, varint, Code};

/// Close the whole connection with an HTTP/3 error code.
pub(crate) fn close(conn: &quinn::Connection, code: Code, reason: &str) {
    tracing::debug!(?code, reason, "closing HTTP/3 connection");
    if code != Code::NoError {
        metrics::counter!("volley_h3_connection_errors_total", "code" => format!("{code:?}")).increment(1);
    }
    let value = quinn::VarInt::from_u64(code.value()).unwrap_or(quinn::VarInt::from_u32(0x102));
    conn.close(value, reason.as_bytes());
}

/// Open our control stream and send SETTINGS on it. The stream must live
/// as long as the connection: closing it is a connection error for the
/// peer (H3_CLOSED_CRITICAL_STREAM).
pub(crate) async fn open_control(conn: &quinn::Connection, settings: Settings) -> std::io::Result<quinn::SendStream> {
    let mut control = conn.open_uni().await?;
    let mut first = Vec::new();
    varint::encode(stream_type::CONTROL, &mut first);
    first.extend_from_slice(&settings.encode());
    control.write_all(&first).await?;
    Ok(control)
}

/// Accept the peer's unidirectional streams for the connection's life;
/// the peer's SETTINGS arrive on `settings`.
pub(crate) async fn accept_uni(conn: quinn::Connection, settings: watch::Sender<Option<Settings>>) {
    let settings = Arc::new(settings);
    let seen = Arc::new(Seen::default());
    while let Ok(recv) = conn.accept_uni().await {
        let (conn, settings, seen) = (conn.clone(), settings.clone(), seen.clone());
        tokio::spawn(async move {
            if let Err((code, reason)) = uni_stream(&conn, recv, &settings, &seen).await {
                close(&conn, code, &reason);
            }
        });
    }
}

type Fault = (Code, String);

/// The peer's critical streams seen so far: one of each is allowed.
#[derive(Debug, Default)]
struct Seen {
    control: AtomicBool,
    encoder: AtomicBool,
    decoder: AtomicBool,
}

async fn uni_stream(
    conn: &quinn::Connection,
    mut recv: quinn::RecvStream,
    settings: &watch::Sender<Option<Settings>>,
    seen: &Seen,
) -> Result<(), Fault> {
    // The stream type: one varint, possibly split over reads.
    let mut head = Vec::new();
    let (ty, used) = loop {
        if let Some(found) = varint::decode(&head) {
            break found;
        }
        let mut byte = [0u8; 1];
        match recv.read(&mut byte).await {
            Ok(Some(1)) => head.push(byte[0]),
            Ok(_) | Err(_) => return Ok(()),
        }
    };
    debug_assert_eq!(used, head.len());
    let critical = || (Code::ClosedCriticalStream, "a critical stream ended".to_owned());
    match ty {
        stream_type::CONTROL => {
            if seen.control.swap(true, Ordering::SeqCst) {
                return Err((Code::StreamCreationError, "a second control stream".into()));
            }
            let mut decoder = FrameDecoder::new(16 * 1024);
            let mut first = true;
            let mut chunk = vec![0u8; 4096];
            loop {
                while let Some(frame) = decoder.next_frame().map_err(|e| (e.code(), e.to_string()))? {
                    match (first, frame) {
                        (true, Frame::Settings(received)) => {
                            let _ = settings.send(Some(received));
                            first = false;
                        }
                        (true, _) => {
                            return Err((Code::MissingSettings, "control stream must start with SETTINGS".into()))
                        }
                        (false, Frame::Goaway(_)) => {}
                        // MAX_PUSH_ID and CANCEL_PUSH belong here; volley never pushes.
                        (false, Frame::Push(kind)) if kind != volley_h3::frame::kind::PUSH_PROMISE => {}
                        (false, _) => {
                            return Err((Code::FrameUnexpected, "frame not allowed on the control stream".into()))
                        }
                    }
                }
                match recv.read(&mut chunk).await {
                    Ok(Some(n)) => decoder.push(&chunk[..n]),
                    Ok(None) | Err(quinn::ReadError::Reset(_)) => return Err(critical()),
                    // The connection is going away: nothing left to judge.
                    Err(_) => return Ok(()),
                }
            }
        }
        stream_type::QPACK_ENCODER => {
            if seen.encoder.swap(true, Ordering::SeqCst) {
                return Err((Code::StreamCreationError, "a second QPACK encoder stream".into()));
            }
            let mut chunk = vec![0u8; 1024];
            loop {
                match recv.read(&mut chunk).await {
                    // "Set Dynamic Table Capacity 0" is the one instruction
                    // that fits a table of capacity 0.
                    Ok(Some(n)) if chunk[..n].iter().all(|b| *b == 0x20) => {}
                    Ok(Some(_)) => {
                        return Err((
                            Code::QpackEncoderStreamError,
                            "insertion into a table of capacity 0".into(),
                        ))
                    }
                    Ok(None) | Err(quinn::ReadError::Reset(_)) => return Err(critical()),
                    Err(_) => return Ok(()),
                }
            }
        }
        stream_type::QPACK_DECODER => {
            if seen.decoder.swap(true, Ordering::SeqCst) {
                return Err((Code::StreamCreationError, "a second QPACK decoder stream".into()));
            }
            // Stream cancellations only (we never insert): read and drop.
            let mut chunk = vec![0u8; 1024];
            loop {
                match recv.read(&mut chunk).await {
                    Ok(Some(_)) => {}
                    Ok(None) | Err(quinn::ReadError::Reset(_)) => return Err(critical()),
                    Err(_) => return Ok(()),
                }
            }
        }
        stream_type::PUSH => Err((Code::StreamCreationError, "push streams are not accepted".into())),
        _ => {
            // Unknown (or GREASE) stream types are ignored (RFC 9114, 6.2).
            let _ = conn;
            let _ = recv.stop(quinn::VarInt::from_u32(Code::StreamCreationError.value() as u32));
            Ok(())
        }
    }
}
