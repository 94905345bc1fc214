//! PROXY protocol version 2 (HAProxy's binary header): a layer-4 proxy
//! writes it first on each connection to a backend, so the backend learns
//! the client's real address and port.
//!
//! The codec is pure ([`parse`], [`encode`]); [`read_header`] reads exactly
//! one header from a stream (never past it). Servers accept the header only
//! from configured [`Trusted`] sources: from anyone else it would let a
//! client claim any address.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

/// The 12-byte signature every version 2 header starts with.
pub const SIGNATURE: [u8; 12] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A];

/// Bytes of the fixed part: signature, version and command, family, length.
pub const FIXED: usize = 16;

/// Largest address block (with TLVs) accepted; HAProxy's own headers with
/// TLVs stay far below it.
pub const MAX_BLOCK: usize = 1024;

/// What a header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    /// The proxy's own connection (a health check): use the socket's address.
    Local,
    /// A proxied connection from `source` to `destination`.
    Proxied {
        /// The client.
        source: SocketAddr,
        /// The address the client connected to.
        destination: SocketAddr,
    },
    /// A proxied connection whose addresses are not TCP over IP (UNSPEC,
    /// UDP, UNIX): use the socket's address.
    Unknown,
}

/// Why a header was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// The bytes do not start with the version 2 signature.
    #[error("not a PROXY protocol v2 header")]
    Signature,
    /// A version other than 2, or a command other than LOCAL and PROXY.
    #[error("unsupported PROXY protocol version or command {0:#04x}")]
    Version(u8),
    /// The address block is shorter than its family needs, or too long.
    #[error("bad PROXY protocol address block of {0} bytes")]
    Length(usize),
}

/// Parse a header at the start of `buf`: `Ok(None)` when more bytes are
/// needed, else the header and the bytes it took.
pub fn parse(buf: &[u8]) -> Result<Option<(Header, usize)>, HeaderError> {
    let have = buf.len().min(SIGNATURE.len());
    if buf[..have] != SIGNATURE[..have] {
        return Err(HeaderError::Signature);
    }
    if buf.len() < FIXED {
        return Ok(None);
    }
    let version_command = buf[12];
    if version_command >> 4 != 2 || version_command & 0x0F > 1 {
        return Err(HeaderError::Version(version_command));
    }
    let len = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    if len > MAX_BLOCK {
        return Err(HeaderError::Length(len));
    }
    if buf.len() < FIXED + len {
        return Ok(None);
    }
    let block = &buf[FIXED..FIXED + len];
    let total = FIXED + len;
    if version_command & 0x0F == 0 {
        return Ok(Some((Header::Local, total)));
    }
    let port = |b: &[u8]| u16::from_be_bytes([b[0], b[1]]);
    let header = match buf[13] {
        // TCP over IPv4.
        0x11 => {
            if block.len() < 12 {
                return Err(HeaderError::Length(len));
            }
            let src: [u8; 4] = [block[0], block[1], block[2], block[3]];
            let dst: [u8; 4] = [block[4], block[5], block[6], block[7]];
            Header::Proxied {
                source: SocketAddr::new(IpAddr::from(src), port(&block[8..10])),
                destination: SocketAddr::new(IpAddr::from(dst), port(&block[10..12])),
            }
        }
        // TCP over IPv6.
        0x21 => {
            if block.len() < 36 {
                return Err(HeaderError::Length(len));
            }
            let mut src = [0u8; 16];
            let mut dst = [0u8; 16];
            src.copy_from_slice(&block[..16]);
            dst.copy_from_slice(&block[16..32]);
            Header::Proxied {
                source: SocketAddr::new(IpAddr::from(src), port(&block[32..34])),
                destination: SocketAddr::new(IpAddr::from(dst), port(&block[34..36])),
            }
        }
        _ => Header::Unknown,
    };
    Ok(Some((header, total)))
}

/// The header a proxy sends for a connection from `source` to `destination`
/// (both IPv4 or both IPv6; a mix is sent with IPv4-mapped IPv6 addresses).
pub fn encode(source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
    let mut out = Vec::with_capacity(FIXED + 36);
    out.extend_from_slice(&SIGNATURE);
    out.push(0x21);
    // An IPv4 client seen on a dual-stack socket goes out as IPv4.
    match (source.ip().to_canonical(), destination.ip().to_canonical()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            out.push(0x11);
            out.extend_from_slice(&12u16.to_be_bytes());
            out.extend_from_slice(&s.octets());
            out.extend_from_slice(&d.octets());
        }
        (s, d) => {
            let six = |ip: IpAddr| match ip {
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                IpAddr::V6(v6) => v6,
            };
            out.push(0x21);
            out.extend_from_slice(&36u16.to_be_bytes());
            out.extend_from_slice(&six(s).octets());
            out.extend_from_slice(&six(d).octets());
        }
    }
    out.extend_from_slice(&source.port().to_be_bytes());
    out.extend_from_slice(&destination.port().to_be_bytes());
    out
}

/// The LOCAL header (the proxy's own connection: health checks).
pub fn encode_local() -> Vec<u8> {
    let mut out = SIGNATURE.to_vec();
    out.extend_from_slice(&[0x20, 0x00, 0x00, 0x00]);
    out
}

/// Read exactly one header from `stream` within `deadline`, and the client
/// address it names (`peer` itself for LOCAL, the unspecified address for
/// a client that is not on IP).
pub async fn read_header<S>(stream: &mut S, peer: SocketAddr, deadline: Duration) -> io::Result<SocketAddr>
where
    S: AsyncRead + Unpin,
{
    let work = async {
        let mut buf = vec![0u8; FIXED];
        stream.read_exact(&mut buf).await?;
        let invalid = |e: HeaderError| io::Error::new(io::ErrorKind::InvalidData, e);
        // The fixed part says how much follows.
        if let Err(e) = parse(&buf) {
            return Err(invalid(e));
        }
        let len = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
        buf.resize(FIXED + len, 0);
        stream.read_exact(&mut buf[FIXED..]).await?;
        match parse(&buf).map_err(invalid)? {
            Some((Header::Proxied { source, .. }, _)) => Ok(source),
            // The proxy's own connection (a health check).
            Some((Header::Local, _)) => Ok(peer),
            // A client whose address the proxy does not know (a UNIX
            // socket, UDP): not the proxy's own (often loopback) address,
            // which would open loopback-only pages to it. All such clients
            // share the unspecified address's count.
            Some((Header::Unknown, _)) => Ok(SocketAddr::from(([0, 0, 0, 0], 0))),
            None => Err(io::Error::new(io::ErrorKind::UnexpectedEof, "short PROXY header")),
        }
    };
    tokio::time::timeout(deadline, work)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no PROXY protocol header in time"))?
}

/// Sources allowed to send PROXY headers: addresses or CIDR blocks
/// (`10.0.0.0/8`, `127.0.0.1`, `::1/128`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trusted(Vec<(IpAddr, u8)>);

impl Trusted {
    /// Parse a list of addresses and CIDR blocks.
    pub fn parse<S: AsRef<str>>(items: &[S]) -> Result<Trusted, String> {
        let mut nets = Vec::with_capacity(items.len());
        for item in items {
            let item = item.as_ref().trim();
            let (addr, bits) = match item.split_once('/') {
                Some((a, b)) => (a, Some(b)),
                None => (item, None),
            };
            let ip: IpAddr = addr
                .parse()
                .map_err(|_| format!("{item}: not an address or CIDR block"))?;
            // ::ffff:10.0.0.0/104 is 10.0.0.0/8.
            let (ip, shift) = match ip {
                IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some() => (ip.to_canonical(), 96u8),
                _ => (ip, 0),
            };
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let bits = match bits {
                None => max,
                Some(b) => b
                    .parse::<u8>()
                    .ok()
                    .filter(|b| *b >= shift && *b <= max + shift)
                    .map(|b| b - shift)
                    .ok_or_else(|| format!("{item}: prefix length must be {shift} to {}", max + shift))?,
            };
            nets.push((ip, bits));
        }
        Ok(Trusted(nets))
    }

    /// Whether `ip` is in one of the blocks.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|(net, bits)| match (net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = if *bits == 0 { 0 } else { u32::MAX << (32 - bits) };
                u32::from(*n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = if *bits == 0 { 0 } else { u128::MAX << (128 - bits) };
                u128::from(*n) & mask == u128::from(a) & mask
            }
            _ => false,
        })
    }

    /// Whether the list is empty (PROXY protocol off).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_v4_and_v6_and_local() {
        let s: SocketAddr = "192.0.2.7:51000".parse().unwrap();
        let d: SocketAddr = "10.0.0.1:443".parse().unwrap();
        let bytes = encode(s, d);
        assert_eq!(
            parse(&bytes).unwrap(),
            Some((
                Header::Proxied {
                    source: s,
                    destination: d
                },
                bytes.len()
            ))
        );
        let s6: SocketAddr = "[2001:db8::7]:51000".parse().unwrap();
        let d6: SocketAddr = "[2001:db8::1]:443".parse().unwrap();
        let bytes = encode(s6, d6);
        assert_eq!(
            parse(&bytes).unwrap(),
            Some((
                Header::Proxied {
                    source: s6,
                    destination: d6
                },
                bytes.len()
            ))
        );
        let local = encode_local();
        assert_eq!(parse(&local).unwrap(), Some((Header::Local, 16)));
        // Every prefix is "need more", never an error.
        let full = encode(s, d);
        for n in 0..full.len() {
            assert_eq!(parse(&full[..n]).unwrap(), None, "{n} bytes");
        }
    }

    #[test]
    fn refuses_what_is_not_v2() {
        assert_eq!(parse(b"GET / HTTP/1.1\r\n"), Err(HeaderError::Signature));
        assert_eq!(parse(b"PROXY TCP4 1.2.3.4"), Err(HeaderError::Signature));
        let mut v1 = encode_local();
        v1[12] = 0x11;
        assert_eq!(parse(&v1), Err(HeaderError::Version(0x11)));
        let mut short = encode("1.2.3.4:1".parse().unwrap(), "5.6.7.8:2".parse().unwrap());
        short[15] = 4;
        short.truncate(20);
        assert_eq!(parse(&short), Err(HeaderError::Length(4)));
        let mut huge = encode_local();
        huge[14..16].copy_from_slice(&2000u16.to_be_bytes());
        assert_eq!(parse(&huge), Err(HeaderError::Length(2000)));
    }

    #[test]
    fn trusted_blocks() {
        let t = Trusted::parse(&["10.0.0.0/8", "127.0.0.1", "2001:db8::/32"]).unwrap();
        assert!(t.contains("10.1.2.3".parse().unwrap()));
        assert!(t.contains("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!t.contains("127.0.0.2".parse().unwrap()));
        assert!(t.contains("2001:db8:1::5".parse().unwrap()));
        assert!(!t.contains("2001:db9::5".parse().unwrap()));
        assert!(Trusted::parse(&["10.0.0.0/33"]).is_err());
        let mapped = Trusted::parse(&["::ffff:10.0.0.0/104"]).unwrap();
        assert!(mapped.contains("10.9.9.9".parse().unwrap()));
        assert!(!mapped.contains("11.0.0.1".parse().unwrap()));
        assert!(Trusted::parse(&["example.com"]).is_err());
    }

    proptest::proptest! {
        #[test]
        fn parser_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let mut input = SIGNATURE.to_vec();
            input.extend_from_slice(&bytes);
            let _ = parse(&input);
            let _ = parse(&bytes);
        }
    }
}
