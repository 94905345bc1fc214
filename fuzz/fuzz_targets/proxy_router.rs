//! Arbitrary bytes as a request head through the layer-7 proxy's router
//! (routes by host, path prefix and header; affinity keys from the query,
//! a path segment, a header and a cookie), and as a WebSocket byte stream
//! through its frame follower, cut at an arbitrary point. Properties: no
//! panic; a key is never longer than its bound; the follower never takes
//! more bytes than it was given, and stopping at boundaries loses nothing.

#![no_main]

use libfuzzer_sys::fuzz_target;
use volley_proxy::frames::Frames;
use volley_proxy::pool::Backends;
use volley_proxy::route::Table;
use volley_proxy::{Affinity, ProxyConfig};

const CONFIG: &str = r#"
backends = ["10.0.0.1:80", "10.0.0.2:80"]
affinity = "query:room"
[[routes]]
path_prefix = "/game"
affinity = "path:2"
backends = ["10.0.0.3:80"]
[[routes]]
host = "admin.example"
header = "x-team: ops"
affinity = "cookie:sid"
[[routes]]
header = "x-room"
affinity = "header:x-room"
"#;

fn table() -> &'static Table {
    static TABLE: std::sync::OnceLock<Table> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let config = ProxyConfig::from_toml(CONFIG).unwrap();
        Table::new(&config, &Backends::default()).unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    let table = table();
    if let Ok(Some((request, _))) = volley_wire::handshake::parse_request(data) {
        let (parts, ()) = request.into_parts();
        if let Some(route) = table.route_for(&parts) {
            if let Some(affinity) = &route.affinity {
                if let Some(key) = affinity.key(&parts) {
                    assert!(key.len() <= 256);
                }
            }
        }
        for spec in ["query:room", "path:3", "header:x-room", "cookie:sid"] {
            let _ = Affinity::parse(spec).unwrap().key(&parts);
        }
    }
    let Some((&cut, stream)) = data.split_first() else {
        return;
    };
    let cut = usize::from(cut).min(stream.len());
    let mut whole = Frames::default();
    assert!(whole.feed(stream, false) <= stream.len());
    let mut stepped = Frames::default();
    let mut at = 0;
    for piece in [&stream[..cut], &stream[cut..]] {
        let mut i = 0;
        while i < piece.len() {
            let n = stepped.feed(&piece[i..], true);
            assert!(n <= piece.len() - i);
            i += if n == 0 { stepped.feed(&piece[i..i + 1], false) } else { n };
        }
        at += piece.len();
    }
    assert_eq!(at, stream.len());
    assert_eq!(whole.broken(), stepped.broken());
    assert_eq!(whole.at_boundary(), stepped.at_boundary());
    assert_eq!(whole.last_close, stepped.last_close);
});
