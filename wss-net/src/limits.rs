//! Admission: who gets a connection slot. Three limits are checked when a socket is accepted,
//! before it costs anything more than its descriptor: connections open in total, connections
//! open per remote IP address, and handshakes in progress (TLS handshake and first request
//! head, until the first answer). A refused socket never reaches a loop, so no open
//! connection notices it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use slab::Slab;

use crate::config::NetConfig;

/// `Conn::addr_slot` of a connection whose address is not counted (no per-address limit).
pub(crate) const NO_ADDR: u32 = u32::MAX;

/// Which limit refused a socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    Connections,
    PerAddress,
    Handshakes,
}

impl Refusal {
    pub(crate) fn text(self) -> &'static str {
        match self {
            Refusal::Connections => "too many connections",
            Refusal::PerAddress => "too many connections from this address",
            Refusal::Handshakes => "too many handshakes in progress",
        }
    }
}

/// Open connections per address. Each counted connection remembers its entry's slot (4
/// bytes) instead of its address (17), and the kernel cannot be asked for the address of a
/// socket the peer has reset.
#[derive(Default)]
struct AddrTable {
    slots: HashMap<IpAddr, u32>,
    counts: Slab<(IpAddr, usize)>,
}

/// The counters and limits every loop of one `Net` shares.
pub(crate) struct Admission {
    live: AtomicUsize,
    handshakes: AtomicUsize,
    addresses: Option<Mutex<AddrTable>>,
    max_connections: usize,
    max_per_address: usize,
    max_handshakes: usize,
    refused: [AtomicU64; 3],
    tls_failures: AtomicU64,
}

impl Admission {
    pub(crate) fn new(config: &NetConfig) -> Admission {
        Admission {
            live: AtomicUsize::new(0),
            handshakes: AtomicUsize::new(0),
            addresses: config
                .max_per_address
                .map(|_| Mutex::new(AddrTable::default())),
            max_connections: config.max_connections,
            max_per_address: config.max_per_address.unwrap_or(usize::MAX),
            max_handshakes: config.max_pending_handshakes.unwrap_or(usize::MAX),
            refused: Default::default(),
            tls_failures: AtomicU64::new(0),
        }
    }

    /// Takes a slot for a socket from `ip`: `Ok(addr_slot)` to keep in the connection and give
    /// back to [`release`](Self::release), or the limit that refused it (nothing taken).
    pub(crate) fn admit(&self, ip: IpAddr) -> Result<u32, Refusal> {
        if self.live.fetch_add(1, Ordering::Relaxed) >= self.max_connections {
            self.live.fetch_sub(1, Ordering::Relaxed);
            return Err(self.count(Refusal::Connections));
        }
        if self.handshakes.fetch_add(1, Ordering::Relaxed) >= self.max_handshakes {
            self.handshakes.fetch_sub(1, Ordering::Relaxed);
            self.live.fetch_sub(1, Ordering::Relaxed);
            return Err(self.count(Refusal::Handshakes));
        }
        let Some(table) = &self.addresses else {
            return Ok(NO_ADDR);
        };
        let mut table = table.lock().unwrap_or_else(PoisonError::into_inner);
        let ip = ip.to_canonical();
        let slot = match table.slots.get(&ip) {
            Some(&slot) => slot,
            None if table.counts.len() >= NO_ADDR as usize => {
                // Four billion distinct addresses at once: count none rather than wrap.
                return Ok(NO_ADDR);
            }
            None => {
                let slot = table.counts.insert((ip, 0)) as u32;
                table.slots.insert(ip, slot);
                slot
            }
        };
        let Some((_, count)) = table.counts.get_mut(slot as usize) else {
            return Ok(NO_ADDR);
        };
        if *count >= self.max_per_address {
            drop(table);
            self.handshake_done();
            self.live.fetch_sub(1, Ordering::Relaxed);
            return Err(self.count(Refusal::PerAddress));
        }
        *count += 1;
        Ok(slot)
    }

    /// Counts an outgoing connection among the live ones. It is the application's own, so
    /// no limit refuses it; [`release`](Self::release) with `NO_ADDR` gives it back.
    pub(crate) fn admit_client(&self) {
        self.live.fetch_add(1, Ordering::Relaxed);
    }

    /// A connection admitted with `addr_slot` is gone.
    pub(crate) fn release(&self, addr_slot: u32) {
        self.live.fetch_sub(1, Ordering::Relaxed);
        if addr_slot == NO_ADDR {
            return;
        }
        let Some(table) = &self.addresses else {
            return;
        };
        let mut table = table.lock().unwrap_or_else(PoisonError::into_inner);
        let Some((ip, count)) = table.counts.get_mut(addr_slot as usize) else {
            return;
        };
        *count = count.saturating_sub(1);
        if *count == 0 {
            let ip = *ip;
            table.counts.remove(addr_slot as usize);
            table.slots.remove(&ip);
        }
    }

    /// A connection admitted earlier answered its first request (or is gone before that).
    pub(crate) fn handshake_done(&self) {
        self.handshakes.fetch_sub(1, Ordering::Relaxed);
    }

    fn count(&self, why: Refusal) -> Refusal {
        if let Some(c) = self.refused.get(why as usize) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        why
    }

    /// A peer's TLS bytes were refused by rustls.
    pub(crate) fn note_tls_failure(&self) {
        self.tls_failures.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn tls_failures(&self) -> u64 {
        self.tls_failures.load(Ordering::Relaxed)
    }

    pub(crate) fn live(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }

    pub(crate) fn handshakes(&self) -> usize {
        self.handshakes.load(Ordering::Relaxed)
    }

    pub(crate) fn refused(&self, why: Refusal) -> u64 {
        self.refused
            .get(why as usize)
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(max: usize, per: Option<usize>, hs: Option<usize>) -> NetConfig {
        NetConfig {
            max_connections: max,
            max_per_address: per,
            max_pending_handshakes: hs,
            ..NetConfig::default()
        }
    }

    #[test]
    fn per_address_counts_are_independent_and_freed() {
        let a = Admission::new(&config(100, Some(2), None));
        let one: IpAddr = "127.0.0.1".parse().unwrap();
        let two: IpAddr = "127.0.0.2".parse().unwrap();
        let s1 = a.admit(one).unwrap();
        let s2 = a.admit(one).unwrap();
        assert_eq!(a.admit(one), Err(Refusal::PerAddress));
        let t = a.admit(two).unwrap();
        assert_eq!(a.live(), 3);
        a.release(s1);
        let s3 = a.admit(one).unwrap();
        for s in [s2, s3, t] {
            a.release(s);
        }
        assert_eq!(a.live(), 0);
        assert_eq!(a.refused(Refusal::PerAddress), 1);
        let table = a.addresses.as_ref().unwrap().lock().unwrap();
        assert!(table.slots.is_empty() && table.counts.is_empty());
    }

    #[test]
    fn ipv4_mapped_ipv6_counts_as_the_ipv4_address() {
        let a = Admission::new(&config(100, Some(1), None));
        a.admit("10.0.0.1".parse().unwrap()).unwrap();
        assert_eq!(
            a.admit("::ffff:10.0.0.1".parse().unwrap()),
            Err(Refusal::PerAddress)
        );
    }

    #[test]
    fn a_refusal_takes_nothing() {
        let a = Admission::new(&config(1, None, None));
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let s = a.admit(ip).unwrap();
        assert_eq!(a.admit(ip), Err(Refusal::Connections));
        assert_eq!((a.live(), a.handshakes()), (1, 1));
        a.handshake_done();
        a.release(s);
        assert_eq!((a.live(), a.handshakes()), (0, 0));

        let a = Admission::new(&config(10, None, Some(1)));
        let _s = a.admit(ip).unwrap();
        assert_eq!(a.admit(ip), Err(Refusal::Handshakes));
        assert_eq!((a.live(), a.handshakes()), (1, 1));
        a.handshake_done();
        assert!(a.admit(ip).is_ok());
    }
}
