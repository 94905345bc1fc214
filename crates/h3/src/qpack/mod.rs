//! QPACK field sections (RFC 9204) with the static table and literals only.
//!
//! volley advertises `SETTINGS_QPACK_MAX_TABLE_CAPACITY = 0`, so a peer's
//! encoder may never insert into our dynamic table, and its field sections
//! must say Required Insert Count 0: anything that refers to a dynamic
//! entry is QPACK_DECOMPRESSION_FAILED. Our own encoder uses the static
//! table where it matches and literals otherwise (Huffman-coded when that
//! is shorter), which needs no encoder stream either. This costs some bytes
//! on header-heavy traffic and nothing on WebSockets, whose heads are sent
//! once per stream.

mod integer;
mod static_table;

use crate::Error;

/// One field line: name and value bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// The name, as sent (HTTP/3 requires lowercase; [`crate::head`] checks).
    pub name: Vec<u8>,
    /// The value.
    pub value: Vec<u8>,
}

/// Per-field overhead in the size limit (RFC 9114, section 4.2.2).
pub const FIELD_OVERHEAD: usize = 32;

/// Decode a field section, refusing one larger than `limit` bytes as RFC
/// 9114 counts them (names, values and 32 per field).
pub fn decode(block: &[u8], limit: usize) -> Result<Vec<Field>, Error> {
    let (insert_count, a) = integer::decode(block, 8)?;
    let (_delta_base, b) = integer::decode(&block[a..], 7)?;
    if insert_count != 0 {
        return Err(Error::Qpack(
            "field section refers to the dynamic table, whose capacity is 0".into(),
        ));
    }
    let mut rest = &block[a + b..];
    let mut fields = Vec::new();
    let mut size = 0usize;
    let dynamic = || Error::Qpack("reference to the dynamic table, whose capacity is 0".into());
    let static_entry = |index: u64| {
        usize::try_from(index)
            .ok()
            .and_then(|i| static_table::TABLE.get(i))
            .ok_or_else(|| Error::Qpack(format!("static table index {index} out of range")))
    };
    while let Some(&first) = rest.first() {
        let left = limit.saturating_sub(size);
        let (field, used) = if first & 0x80 != 0 {
            // Indexed field line: 1 T index(6).
            if first & 0x40 == 0 {
                return Err(dynamic());
            }
            let (index, n) = integer::decode(rest, 6)?;
            let (name, value) = static_entry(index)?;
            (
                Field {
                    name: name.as_bytes().to_vec(),
                    value: value.as_bytes().to_vec(),
                },
                n,
            )
        } else if first & 0x40 != 0 {
            // Literal with name reference: 0 1 N T index(4), then the value.
            if first & 0x10 == 0 {
                return Err(dynamic());
            }
            let (index, n) = integer::decode(rest, 4)?;
            let (name, _) = static_entry(index)?;
            let (value, m) = integer::decode_string(&rest[n..], 7, left)?;
            (
                Field {
                    name: name.as_bytes().to_vec(),
                    value,
                },
                n + m,
            )
        } else if first & 0x20 != 0 {
            // Literal with literal name: 0 0 1 N H length(3), then the value.
            let (name, n) = integer::decode_string(rest, 3, left)?;
            let (value, m) = integer::decode_string(&rest[n..], 7, left)?;
            (Field { name, value }, n + m)
        } else {
            // Post-base indexed (0001) and post-base name reference (0000):
            // both point into the dynamic table.
            return Err(dynamic());
        };
        size = size.saturating_add(field.name.len() + field.value.len() + FIELD_OVERHEAD);
        if size > limit {
            return Err(Error::HeadersTooLarge { size, limit });
        }
        fields.push(field);
        rest = &rest[used..];
    }
    Ok(fields)
}

/// Encode a field section (names must already be lowercase).
pub fn encode<'a>(fields: impl IntoIterator<Item = (&'a [u8], &'a [u8])>) -> Vec<u8> {
    // Required Insert Count 0, Delta Base 0.
    let mut out = vec![0, 0];
    for (name, value) in fields {
        match static_table::find(name, value) {
            Some((index, true)) => integer::encode(index as u64, 6, 0xc0, &mut out),
            Some((index, false)) => {
                integer::encode(index as u64, 4, 0x50, &mut out);
                integer::encode_string(value, 7, 0, &mut out);
            }
            None => {
                integer::encode_string(name, 3, 0x20, &mut out);
                integer::encode_string(value, 7, 0, &mut out);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(list: &[(&str, &str)]) -> Vec<Field> {
        list.iter()
            .map(|(n, v)| Field {
                name: n.as_bytes().to_vec(),
                value: v.as_bytes().to_vec(),
            })
            .collect()
    }

    #[test]
    fn rfc_9204_literal_example() {
        // Appendix B.1: ":path /index.html" with a static name reference.
        let block = [
            0x00, 0x00, 0x51, 0x0b, 0x2f, 0x69, 0x6e, 0x64, 0x65, 0x78, 0x2e, 0x68, 0x74, 0x6d, 0x6c,
        ];
        assert_eq!(decode(&block, 1024).unwrap(), fields(&[(":path", "/index.html")]));
    }

    #[test]
    fn round_trip_with_every_kind_of_line() {
        let list = [
            (":method", "CONNECT"),
            (":protocol", "websocket"),
            (":scheme", "https"),
            (":authority", "localhost:8080"),
            (":path", "/ws?token=abc"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-extensions", "permessage-deflate; client_max_window_bits"),
            ("origin", ""),
        ];
        let block = encode(list.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())));
        assert_eq!(decode(&block, 4096).unwrap(), fields(&list));
    }

    #[test]
    fn dynamic_references_and_oversize_are_refused() {
        // Required Insert Count 1.
        assert!(matches!(decode(&[0x01, 0x00, 0xd1], 1024), Err(Error::Qpack(_))));
        // Indexed line into the dynamic table (T = 0).
        assert!(matches!(decode(&[0x00, 0x00, 0x80], 1024), Err(Error::Qpack(_))));
        // Post-base index.
        assert!(matches!(decode(&[0x00, 0x00, 0x10], 1024), Err(Error::Qpack(_))));
        // Static index past the table.
        assert!(matches!(decode(&[0x00, 0x00, 0xff, 0x40], 1024), Err(Error::Qpack(_))));
        let big = "x".repeat(2000);
        let block = encode([(b"x-big".as_slice(), big.as_bytes())]);
        assert!(decode(&block, 1024).is_err());
    }

    #[test]
    fn static_table_spot_checks() {
        // Indices named in RFC 9204's examples and widely used ones.
        assert_eq!(static_table::TABLE[1], (":path", "/"));
        assert_eq!(static_table::TABLE[15], (":method", "CONNECT"));
        assert_eq!(static_table::TABLE[25], (":status", "200"));
        assert_eq!(static_table::TABLE[52], ("content-type", "text/html; charset=utf-8"));
        assert_eq!(static_table::TABLE[98], ("x-frame-options", "sameorigin"));
    }

    proptest::proptest! {
        #[test]
        fn decoder_never_panics(block in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let _ = decode(&block, 4096);
        }
    }
}
