//! The game's decoders on arbitrary bytes: the client frame parser (what
//! the server reads from every connection), the server frame decoders and
//! snapshot application (what clients read). None may panic or allocate
//! beyond the input's size.
#![no_main]

use libfuzzer_sys::fuzz_target;
use volley_game::protocol::{apply, ClientMsg, EntityState, Kind, ServerMsg, Snapshot};

fuzz_target!(|data: &[u8]| {
    let _ = ClientMsg::decode(data);
    let _ = ServerMsg::decode(data);
    if let Ok(snapshot) = Snapshot::decode(data) {
        let base: Vec<EntityState> = (1..64)
            .map(|id| EntityState { id, kind: Kind::Cell, x: 100, y: 100, r: 40, owner: 1 })
            .collect();
        let _ = apply(&base, &snapshot);
        let _ = apply(&[], &snapshot);
    }
});
