//! Open connections per client address, counted across every transport
//! (TCP for HTTP/1.1 and HTTP/2, QUIC for HTTP/3), so one cap holds for a
//! client whatever it speaks.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Open connections per address, shared by the accept loop and the sockets.
#[derive(Debug, Default)]
pub(crate) struct Addresses {
    open: Mutex<HashMap<IpAddr, u32>>,
}

/// The unit one client is counted in: its IPv4 address, or the /64 of an
/// IPv6 one (one machine commonly holds a whole /64, and picks any address
/// in it for each connection). An IPv4-mapped IPv6 address counts as IPv4.
pub(crate) fn client_of(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
        v4 => v4,
    }
}

impl Addresses {
    pub(crate) fn take(self: &Arc<Self>, ip: IpAddr, cap: u32) -> Option<Slot> {
        let ip = client_of(ip);
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(ip).or_insert(0);
        if cap != 0 && *count >= cap {
            return None;
        }
        *count += 1;
        Some(Slot {
            addresses: self.clone(),
            ip,
        })
    }
}

/// One open connection's place in its address's count, given back on drop.
#[derive(Debug)]
pub(crate) struct Slot {
    addresses: Arc<Addresses>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.addresses.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_are_addresses_or_ipv6_slash_64s() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_of(a), client_of(b));
        assert_ne!(client_of(a), client_of(other));
        let mapped: IpAddr = "::ffff:10.0.0.7".parse().unwrap();
        assert_eq!(client_of(mapped), IpAddr::from([10, 0, 0, 7]));
        let addresses = Arc::new(Addresses::default());
        let first = addresses.take(a, 1).unwrap();
        assert!(addresses.take(b, 1).is_none(), "same /64, same count");
        drop(first);
        assert!(addresses.take(b, 1).is_some());
    }
}
