//! permessage-deflate (RFC 7692): negotiation and the per-message codec.
//!
//! Compression is done by `flate2` on the `zlib-rs` backend, which supports
//! the window sizes the extension negotiates. zlib cannot write raw deflate
//! with an 8-bit window, so offers that demand one from us are declined (a
//! server moves on to the next offer; a client fails the handshake with a
//! clear error) rather than answered with a stream the peer could not read.
//! We always inflate with a 15-bit window, which reads any window size.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use crate::handshake::HandshakeError;
use crate::Error;

/// The extension token.
pub const EXTENSION: &str = "permessage-deflate";

/// The four bytes a sync flush ends with; RFC 7692 strips them from each
/// message and the receiver appends them back.
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// What we want from permessage-deflate. The same settings serve both roles;
/// each field says what it means for a server and for a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeflateConfig {
    /// Server: reset our compressor after every message, always (this is what
    /// lets one compressed frame be shared by many connections). Client: ask
    /// the server to do so.
    pub server_no_context_takeover: bool,
    /// Server: ask clients to reset theirs, so we can drop their history.
    /// Client: promise (and do) reset ours after every message.
    pub client_no_context_takeover: bool,
    /// Server: the largest window we compress with. Client: below 15, ask the
    /// server for at most this window.
    pub server_max_window_bits: u8,
    /// Server: the window we ask clients to compress with, when they allow it.
    /// Client: the largest window we compress with.
    pub client_max_window_bits: u8,
    /// Messages shorter than this go out uncompressed: for tiny payloads the
    /// deflate framing costs more than it saves.
    pub threshold: usize,
    /// zlib compression level, 0-9.
    pub level: u32,
}

impl Default for DeflateConfig {
    fn default() -> Self {
        DeflateConfig {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: 15,
            client_max_window_bits: 15,
            threshold: 32,
            level: 6,
        }
    }
}

/// The parameters both ends agreed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeflateParams {
    /// The server resets its compressor after each message.
    pub server_no_context_takeover: bool,
    /// The client resets its compressor after each message.
    pub client_no_context_takeover: bool,
    /// Window the server compresses with.
    pub server_max_window_bits: u8,
    /// Window the client compresses with.
    pub client_max_window_bits: u8,
}

/// One offer's parameters, as parsed.
#[derive(Debug, Default)]
struct Offer {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    /// `Some(None)`: the bare parameter (any value allowed in the answer).
    client_max_window_bits: Option<Option<u8>>,
}

/// An extension's parameters: `key` or `key=value`.
type Params<'a> = Vec<(&'a str, Option<&'a str>)>;

/// Split `Sec-WebSocket-Extensions` header values into extensions, each a
/// name and its `key[=value]` parameters (quotes around values removed).
fn extensions<'a>(values: impl Iterator<Item = &'a str>) -> Vec<(&'a str, Params<'a>)> {
    values
        .flat_map(|v| v.split(','))
        .filter_map(|ext| {
            let mut parts = ext.split(';').map(str::trim);
            let name = parts.next().filter(|n| !n.is_empty())?;
            let params = parts
                .filter(|p| !p.is_empty())
                .map(|p| match p.split_once('=') {
                    Some((k, v)) => (k.trim(), Some(v.trim().trim_matches('"'))),
                    None => (p, None),
                })
                .collect();
            Some((name, params))
        })
        .collect()
}

fn window_bits(value: Option<&str>) -> Option<u8> {
    let v = value?;
    if v.is_empty() || v.len() > 2 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok().filter(|b| (8..=15).contains(b))
}

/// Parse one extension's parameters; `None` if any is unknown, repeated or
/// has a bad value (RFC 7692 section 7: such an offer is declined).
fn parse_offer(params: &[(&str, Option<&str>)]) -> Option<Offer> {
    let mut offer = Offer::default();
    let mut seen = [false; 4];
    for &(key, value) in params {
        let slot = match key.to_ascii_lowercase().as_str() {
            "server_no_context_takeover" if value.is_none() => {
                offer.server_no_context_takeover = true;
                0
            }
            "client_no_context_takeover" if value.is_none() => {
                offer.client_no_context_takeover = true;
                1
            }
            "server_max_window_bits" => {
                offer.server_max_window_bits = Some(window_bits(value)?);
                2
            }
            "client_max_window_bits" => {
                offer.client_max_window_bits = Some(match value {
                    None => None,
                    v => Some(window_bits(v)?),
                });
                3
            }
            _ => return None,
        };
        if std::mem::replace(&mut seen[slot], true) {
            return None;
        }
    }
    Some(offer)
}

/// Server side: pick the first offer we can honour. Returns the agreed
/// parameters and the `Sec-WebSocket-Extensions` value to answer with, or
/// `None` to proceed without compression.
pub fn negotiate<'a>(offers: impl Iterator<Item = &'a str>, config: &DeflateConfig) -> Option<(DeflateParams, String)> {
    let ours_server = config.server_max_window_bits.clamp(9, 15);
    let ours_client = config.client_max_window_bits.clamp(8, 15);
    for (name, params) in extensions(offers) {
        if !name.eq_ignore_ascii_case(EXTENSION) {
            continue;
        }
        let Some(offer) = parse_offer(&params) else { continue };
        let server_bits = match offer.server_max_window_bits {
            // zlib cannot compress raw deflate with a 256-byte window.
            Some(8) => continue,
            Some(n) => n.min(ours_server),
            None => ours_server,
        };
        let client_bits = match offer.client_max_window_bits {
            None => 15,
            Some(None) => ours_client,
            Some(Some(n)) => n.min(ours_client),
        };
        let agreed = DeflateParams {
            server_no_context_takeover: offer.server_no_context_takeover || config.server_no_context_takeover,
            client_no_context_takeover: offer.client_no_context_takeover || config.client_no_context_takeover,
            server_max_window_bits: server_bits,
            client_max_window_bits: client_bits,
        };
        let mut answer = String::from(EXTENSION);
        if agreed.server_no_context_takeover {
            answer.push_str("; server_no_context_takeover");
        }
        if agreed.client_no_context_takeover {
            answer.push_str("; client_no_context_takeover");
        }
        if offer.server_max_window_bits.is_some() || server_bits < 15 {
            answer.push_str(&format!("; server_max_window_bits={server_bits}"));
        }
        if offer.client_max_window_bits.is_some() && client_bits < 15 {
            answer.push_str(&format!("; client_max_window_bits={client_bits}"));
        }
        return Some((agreed, answer));
    }
    None
}

/// Client side: the offer to send.
pub fn client_offer(config: &DeflateConfig) -> String {
    let mut offer = String::from(EXTENSION);
    if config.server_no_context_takeover {
        offer.push_str("; server_no_context_takeover");
    }
    if config.client_no_context_takeover {
        offer.push_str("; client_no_context_takeover");
    }
    if config.server_max_window_bits < 15 {
        offer.push_str(&format!(
            "; server_max_window_bits={}",
            config.server_max_window_bits.clamp(8, 15)
        ));
    }
    let client_bits = config.client_max_window_bits.clamp(9, 15);
    if client_bits < 15 {
        offer.push_str(&format!("; client_max_window_bits={client_bits}"));
    } else {
        offer.push_str("; client_max_window_bits");
    }
    offer
}

/// Client side: check the server's answer to our offer. `None` when the
/// server declined compression.
pub fn accept_response<'a>(
    values: impl Iterator<Item = &'a str>,
    config: Option<&DeflateConfig>,
) -> Result<Option<DeflateParams>, HandshakeError> {
    let mut agreed = None;
    for (name, params) in extensions(values) {
        let Some(config) = config.filter(|_| name.eq_ignore_ascii_case(EXTENSION)) else {
            return Err(HandshakeError::UnexpectedExtension(name.to_owned()));
        };
        if agreed.is_some() {
            return Err(HandshakeError::BadExtension("permessage-deflate answered twice".into()));
        }
        let answer = parse_offer(&params).ok_or_else(|| {
            HandshakeError::BadExtension(format!("invalid permessage-deflate parameters: {params:?}"))
        })?;
        if config.server_no_context_takeover && !answer.server_no_context_takeover {
            return Err(HandshakeError::BadExtension(
                "server ignored our server_no_context_takeover".into(),
            ));
        }
        let server_bits = answer.server_max_window_bits.unwrap_or(15);
        if config.server_max_window_bits < 15 && server_bits > config.server_max_window_bits {
            return Err(HandshakeError::BadExtension(format!(
                "server_max_window_bits={server_bits} exceeds the {} we asked for",
                config.server_max_window_bits
            )));
        }
        let client_bits = match answer.client_max_window_bits {
            None => config.client_max_window_bits.clamp(9, 15),
            Some(None) => {
                return Err(HandshakeError::BadExtension(
                    "client_max_window_bits in an answer needs a value".into(),
                ))
            }
            Some(Some(8)) => {
                return Err(HandshakeError::BadExtension(
                    "client_max_window_bits=8 cannot be honoured (zlib's smallest raw window is 9)".into(),
                ))
            }
            Some(Some(n)) => n.min(config.client_max_window_bits.clamp(9, 15)),
        };
        agreed = Some(DeflateParams {
            server_no_context_takeover: answer.server_no_context_takeover,
            client_no_context_takeover: answer.client_no_context_takeover || config.client_no_context_takeover,
            server_max_window_bits: server_bits,
            client_max_window_bits: client_bits,
        });
    }
    Ok(agreed)
}

/// Compresses messages for one direction of one connection. The zlib state
/// (about 256 KiB at window 15) is allocated on the first compressed message,
/// so connections that never send large messages never pay for it.
pub(crate) struct Compressor {
    inner: Option<Compress>,
    window_bits: u8,
    level: u32,
    reset_each_message: bool,
}

impl std::fmt::Debug for Compressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compressor")
            .field("window_bits", &self.window_bits)
            .field("reset_each_message", &self.reset_each_message)
            .finish_non_exhaustive()
    }
}

impl Compressor {
    pub(crate) fn new(window_bits: u8, level: u32, reset_each_message: bool) -> Self {
        Compressor {
            inner: None,
            window_bits: window_bits.clamp(9, 15),
            level: level.min(9),
            reset_each_message,
        }
    }

    /// Compress one whole message into `out` (cleared first), without the
    /// trailing `00 00 ff ff`.
    pub(crate) fn compress(&mut self, input: &[u8], out: &mut Vec<u8>) {
        let (window_bits, level) = (self.window_bits, self.level);
        let c = self
            .inner
            .get_or_insert_with(|| Compress::new_with_window_bits(Compression::new(level), false, window_bits));
        compress_into(c, input, out);
        if self.reset_each_message {
            c.reset();
        }
    }
}

/// Deflate `input` with a sync flush into `out`, strip the tail.
fn compress_into(c: &mut Compress, input: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.reserve(input.len() / 2 + 64);
    let start_in = c.total_in();
    loop {
        let consumed = (c.total_in() - start_in) as usize;
        // Compressing from memory into memory cannot fail except through
        // misuse of the stream, which this loop does not do.
        let _ = c.compress_vec(&input[consumed..], out, FlushCompress::Sync);
        let consumed = (c.total_in() - start_in) as usize;
        if consumed == input.len() && out.len() < out.capacity() {
            break;
        }
        out.reserve(out.capacity().max(64));
    }
    if out.ends_with(&TAIL) {
        out.truncate(out.len() - TAIL.len());
    }
}

/// Compress a message on its own, with a fresh compressor: the payload of a
/// frame for a connection whose sender resets its context every message.
pub(crate) fn compress_standalone(input: &[u8], window_bits: u8, level: u32) -> Vec<u8> {
    let mut c = Compress::new_with_window_bits(Compression::new(level.min(9)), false, window_bits.clamp(9, 15));
    let mut out = Vec::new();
    compress_into(&mut c, input, &mut out);
    out
}

/// Inflates received messages, never producing more than the limit.
pub(crate) struct Decompressor {
    inner: Option<Decompress>,
    reset_each_message: bool,
}

impl std::fmt::Debug for Decompressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decompressor")
            .field("reset_each_message", &self.reset_each_message)
            .finish_non_exhaustive()
    }
}

impl Decompressor {
    pub(crate) fn new(reset_each_message: bool) -> Self {
        Decompressor {
            inner: None,
            reset_each_message,
        }
    }

    /// Inflate `input` (part of a message) onto `out`. Fails with
    /// [`Error::MessageTooBig`] as soon as `out` would exceed `limit`: at most
    /// `limit + 1` bytes are ever produced, however much the input expands.
    pub(crate) fn inflate(&mut self, input: &[u8], out: &mut Vec<u8>, limit: usize) -> Result<(), Error> {
        let d = self
            .inner
            .get_or_insert_with(|| Decompress::new_with_window_bits(false, 15));
        let start_in = d.total_in();
        loop {
            let consumed = (d.total_in() - start_in) as usize;
            if out.len() == out.capacity() {
                let room = (limit + 1).saturating_sub(out.len());
                if room == 0 {
                    return Err(Error::MessageTooBig {
                        size: out.len() as u64,
                        limit,
                    });
                }
                out.reserve_exact(room.min((input.len() - consumed).saturating_mul(4).clamp(4096, 1 << 20)));
            }
            let before_out = out.len();
            let status = d
                .decompress_vec(&input[consumed..], out, FlushDecompress::Sync)
                .map_err(|_| Error::BadDeflate)?;
            if out.len() > limit {
                return Err(Error::MessageTooBig {
                    size: out.len() as u64,
                    limit,
                });
            }
            let now_consumed = (d.total_in() - start_in) as usize;
            if status == Status::StreamEnd {
                // A final deflate block: legal, but nothing may follow it.
                return if now_consumed == input.len() {
                    Ok(())
                } else {
                    Err(Error::BadDeflate)
                };
            }
            let progressed = now_consumed > consumed || out.len() > before_out;
            if now_consumed == input.len() && out.len() < out.capacity() {
                return Ok(());
            }
            if !progressed && out.len() < out.capacity() {
                return Err(Error::BadDeflate);
            }
        }
    }

    /// Inflate the stripped tail that ends every message, then reset if the
    /// peer resets its context.
    pub(crate) fn finish_message(&mut self, out: &mut Vec<u8>, limit: usize) -> Result<(), Error> {
        let result = self.inflate(&TAIL, out, limit);
        if self.reset_each_message {
            if let Some(d) = self.inner.as_mut() {
                d.reset(false);
            }
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> DeflateConfig {
        DeflateConfig::default()
    }

    #[test]
    fn default_offer_is_accepted() {
        let (p, answer) = negotiate(["permessage-deflate; client_max_window_bits"].into_iter(), &cfg()).unwrap();
        assert_eq!(answer, "permessage-deflate");
        assert_eq!((p.server_max_window_bits, p.client_max_window_bits), (15, 15));
    }

    #[test]
    fn all_four_parameters() {
        let offer = "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10; client_max_window_bits=\"12\"";
        let (p, answer) = negotiate([offer].into_iter(), &cfg()).unwrap();
        assert_eq!(
            p,
            DeflateParams {
                server_no_context_takeover: true,
                client_no_context_takeover: true,
                server_max_window_bits: 10,
                client_max_window_bits: 12
            }
        );
        assert_eq!(answer, "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10; client_max_window_bits=12");
    }

    #[test]
    fn bad_offers_are_declined_and_the_next_one_taken() {
        for bad in [
            "permessage-deflate; server_max_window_bits=8",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; client_max_window_bits=7",
            "permessage-deflate; unknown",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate; server_max_window_bits=010",
        ] {
            assert_eq!(negotiate([bad].into_iter(), &cfg()), None, "{bad}");
            let (p, _) = negotiate(
                [bad, "x-other, permessage-deflate; client_no_context_takeover"].into_iter(),
                &cfg(),
            )
            .unwrap();
            assert!(p.client_no_context_takeover, "{bad}");
        }
    }

    #[test]
    fn server_config_can_force_no_context_takeover() {
        let config = DeflateConfig {
            server_no_context_takeover: true,
            server_max_window_bits: 12,
            ..cfg()
        };
        let (p, answer) = negotiate(["permessage-deflate"].into_iter(), &config).unwrap();
        assert!(p.server_no_context_takeover);
        assert_eq!(
            answer,
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=12"
        );
    }

    #[test]
    fn client_checks_the_answer() {
        let c = cfg();
        let ok = |v: &str| accept_response([v].into_iter(), Some(&c));
        assert_eq!(
            ok("permessage-deflate; client_max_window_bits=9")
                .unwrap()
                .unwrap()
                .client_max_window_bits,
            9
        );
        assert!(ok("permessage-deflate; client_max_window_bits=8").is_err());
        assert!(ok("permessage-deflate; client_max_window_bits").is_err());
        assert!(ok("permessage-deflate; bogus").is_err());
        assert!(ok("permessage-deflate, permessage-deflate").is_err());
        assert!(ok("x-unknown").is_err());
        assert!(accept_response(["permessage-deflate"].into_iter(), None).is_err());
        assert_eq!(accept_response(std::iter::empty(), Some(&c)), Ok(None));
        let strict = DeflateConfig {
            server_no_context_takeover: true,
            ..cfg()
        };
        assert!(accept_response(["permessage-deflate"].into_iter(), Some(&strict)).is_err());
        assert_eq!(
            client_offer(&strict),
            "permessage-deflate; server_no_context_takeover; client_max_window_bits"
        );
    }

    #[test]
    fn codec_round_trip_with_and_without_context() {
        for reset in [false, true] {
            for bits in [9u8, 12, 15] {
                let mut c = Compressor::new(bits, 6, reset);
                let mut d = Decompressor::new(reset);
                for i in 0..5 {
                    let msg = format!("message {i} {}", "abcabcabc".repeat(i * 100)).into_bytes();
                    let mut packed = Vec::new();
                    c.compress(&msg, &mut packed);
                    let mut out = Vec::new();
                    d.inflate(&packed, &mut out, 1 << 20).unwrap();
                    d.finish_message(&mut out, 1 << 20).unwrap();
                    assert_eq!(out, msg);
                }
            }
        }
    }

    #[test]
    fn inflation_stops_at_the_limit() {
        let zeros = vec![0u8; 10 << 20];
        let packed = compress_standalone(&zeros, 15, 9);
        assert!(packed.len() < 20_000);
        let mut d = Decompressor::new(true);
        let mut out = Vec::new();
        let err = d.inflate(&packed, &mut out, 1 << 20).unwrap_err();
        assert!(matches!(err, Error::MessageTooBig { .. }));
        assert!(out.len() <= (1 << 20) + 1);
        assert!(out.capacity() <= (1 << 20) + 1, "capacity {}", out.capacity());
    }

    #[test]
    fn corrupt_stream_is_an_error() {
        let mut d = Decompressor::new(false);
        let mut out = Vec::new();
        assert_eq!(
            d.inflate(&[0xff, 0xff, 0xff, 0xff, 0x00], &mut out, 1 << 20),
            Err(Error::BadDeflate)
        );
    }
}
