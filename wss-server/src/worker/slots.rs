//! The worker's connection table: what it keeps per connection ([`Slot`]), the paged
//! [`SlotTable`] indexed by loop and slot, and the cheap hasher for its small id maps.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use wss_net::{ConnId, Credit};

use crate::connection::WebSocketConnection;
use crate::handler::ConnectionHandler;

/// What the worker keeps per connection: 32 bytes, its entry in the worker's `SlotTable`, as
/// it is most of an idle connection's cost on this side. The handler's `Any` half lives in
/// the connection handle; whether `on_open` ran (and the open deadline) in `Worker::opening`,
/// only while it matters.
pub(super) struct Slot {
    pub(super) ws: WebSocketConnection,
    pub(super) handler: Arc<std::sync::Mutex<dyn ConnectionHandler>>,
    /// The connection's share of the backlog, from its `Opened`: each message is released on
    /// it once its callback has run.
    pub(super) credit: Option<Credit>,
}

/// What a `SlotTable` entry is keyed by: the id of the connection it stands for.
pub(super) trait Keyed {
    fn conn(&self) -> ConnId;
}

impl Keyed for Slot {
    fn conn(&self) -> ConnId {
        self.ws.inner.conn
    }
}

/// Entries per page of a `SlotTable` (a page of `Slot`s is 16 KiB).
const PAGE: usize = 512;

/// `PAGE` entries of a `SlotTable`, each `None` or a connection's.
type Page<T> = Box<[Option<T>]>;

/// The worker's connections, indexed by loop and slot: the loops keep their slots dense, so
/// an entry costs its 32 bytes and no hash table overhead (a `HashMap` of 10 000 entries has
/// 16 384 buckets of key, value and control byte: 67 bytes per connection).
///
/// Pages are allocated as slots are first used and kept, as the loops keep their slabs, so a
/// table never doubles and copies. An entry is found by its whole id: a slot reused by a later
/// connection (another generation) never answers for an earlier one. The network reuses a
/// slot as soon as a connection ends, and a handshake can reach the worker before the end
/// of the connection that had its slot: that one is moved to `spill` (usually empty) until its
/// `Closed` arrives.
pub(super) struct SlotTable<T> {
    /// Per loop, its pages; `None` for a page no slot has used yet.
    loops: Vec<Vec<Option<Page<T>>>>,
    /// Entries displaced from the table by a newer connection on their slot.
    spill: IdMap<T>,
    len: usize,
}

impl<T: Keyed> SlotTable<T> {
    pub(super) fn new() -> SlotTable<T> {
        SlotTable {
            loops: Vec::new(),
            spill: IdMap::default(),
            len: 0,
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The table cell for `conn`'s slot, if its page exists.
    fn cell(&self, conn: ConnId) -> Option<&Option<T>> {
        let pages = self.loops.get(conn.loop_index())?;
        let page = pages.get(conn.slot() / PAGE)?.as_deref()?;
        page.get(conn.slot() % PAGE)
    }

    fn cell_mut(&mut self, conn: ConnId) -> Option<&mut Option<T>> {
        let pages = self.loops.get_mut(conn.loop_index())?;
        let page = pages.get_mut(conn.slot() / PAGE)?.as_deref_mut()?;
        page.get_mut(conn.slot() % PAGE)
    }

    pub(super) fn get(&self, conn: ConnId) -> Option<&T> {
        let here = self.cell(conn).and_then(Option::as_ref);
        match here.filter(|e| e.conn() == conn) {
            Some(e) => Some(e),
            None => self.spill.get(&conn),
        }
    }

    pub(super) fn get_mut(&mut self, conn: ConnId) -> Option<&mut T> {
        let here = self.cell(conn).and_then(Option::as_ref);
        if here.is_some_and(|e| e.conn() == conn) {
            return self.cell_mut(conn).and_then(Option::as_mut);
        }
        self.spill.get_mut(&conn)
    }

    /// Adds the entry of a new connection (one per id: the worker inserts each id once).
    pub(super) fn insert(&mut self, entry: T) {
        let conn = entry.conn();
        let (l, p) = (conn.loop_index(), conn.slot() / PAGE);
        if self.loops.len() <= l {
            self.loops.resize_with(l + 1, Vec::new);
        }
        let pages = &mut self.loops[l];
        if pages.len() <= p {
            pages.resize_with(p + 1, || None);
        }
        let page = pages[p].get_or_insert_with(|| (0..PAGE).map(|_| None).collect());
        let cell = &mut page[conn.slot() % PAGE];
        if let Some(older) = cell.replace(entry) {
            self.spill.insert(older.conn(), older);
        }
        self.len += 1;
    }

    pub(super) fn remove(&mut self, conn: ConnId) -> Option<T> {
        let removed = match self.cell_mut(conn) {
            Some(cell) if cell.as_ref().is_some_and(|e| e.conn() == conn) => cell.take(),
            _ => self.spill.remove(&conn),
        };
        if removed.is_some() {
            self.len -= 1;
        }
        removed
    }

    /// The ids of every entry.
    pub(super) fn ids(&self) -> Vec<ConnId> {
        let mut ids = Vec::with_capacity(self.len);
        let pages = self.loops.iter().flatten().flatten();
        ids.extend(pages.flat_map(|page| page.iter().flatten().map(Keyed::conn)));
        ids.extend(self.spill.keys().copied());
        ids
    }
}

/// Hashes a `ConnId` with one multiplication. Ids are chosen by the loops, not by peers, so
/// no flooding attack can aim at the table: SipHash would only cost time on every lookup.
#[derive(Default)]
pub(super) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        let h = (self.0 ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        // The table takes its index from the low bits and a tag from the top 7: fold the
        // well-mixed high half down so both are spread.
        self.0 = h ^ (h >> 29);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// The small maps the worker keeps by id: connections being opened, displaced entries.
pub(super) type IdMap<V> = HashMap<ConnId, V, BuildHasherDefault<IdHasher>>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection::ConnInner;

    /// An idle connection costs, on this side, its table entry, its handle's shared state and
    /// its handler: bounded here so a field added to either shows up (the whole server's
    /// figure is measured with `wsbench idle`, see the crate README).
    #[test]
    fn per_connection_state_stays_small() {
        let slot = std::mem::size_of::<Slot>();
        let entry = std::mem::size_of::<Option<Slot>>();
        let inner = std::mem::size_of::<ConnInner>();
        eprintln!("Slot {slot} (table entry {entry}) ConnInner {inner}");
        assert!(entry <= 32, "a table entry is {entry} bytes");
        assert!(inner <= 88, "ConnInner is {inner} bytes");
    }

    /// A table entry standing for whatever connection `id` names.
    struct Entry(ConnId, &'static str);

    impl Keyed for Entry {
        fn conn(&self) -> ConnId {
            self.0
        }
    }

    #[test]
    fn a_stale_id_never_reaches_the_connection_on_its_slot() {
        let old = ConnId::from_parts(1, 7, 600);
        let new = ConnId::from_parts(1, 8, 600);
        let mut table = SlotTable::new();
        table.insert(Entry(new, "new"));
        assert!(table.get(old).is_none());
        assert!(table.get_mut(old).is_none());
        assert!(table.remove(old).is_none());
        assert_eq!(table.get(new).map(|e| e.1), Some("new"));
        // Another loop's connection on the same slot is another connection too.
        assert!(table.get(ConnId::from_parts(0, 8, 600)).is_none());
        assert_eq!(table.remove(new).map(|e| e.1), Some("new"));
        assert!(table.is_empty());
    }

    #[test]
    fn a_slot_reused_before_the_old_end_keeps_both() {
        // The handshake of the slot's next connection can reach the worker before the
        // `Closed` of the one that had it.
        let old = ConnId::from_parts(0, 1, 3);
        let new = ConnId::from_parts(0, 2, 3);
        let mut table = SlotTable::new();
        table.insert(Entry(old, "old"));
        table.insert(Entry(new, "new"));
        assert_eq!(table.get(old).map(|e| e.1), Some("old"));
        assert_eq!(table.get(new).map(|e| e.1), Some("new"));
        let mut ids = table.ids();
        ids.sort();
        assert_eq!(ids, vec![old, new]);
        assert_eq!(table.remove(old).map(|e| e.1), Some("old"));
        assert_eq!(table.get(new).map(|e| e.1), Some("new"));
        assert_eq!(table.remove(new).map(|e| e.1), Some("new"));
        assert!(table.is_empty() && table.ids().is_empty());
    }

    #[test]
    fn slots_on_several_pages_and_loops_are_all_listed() {
        let mut table = SlotTable::new();
        let ids: Vec<ConnId> = [(0, 0), (0, PAGE + 1), (2, 5 * PAGE), (2, 0)]
            .iter()
            .map(|&(l, s)| ConnId::from_parts(l, 1, s))
            .collect();
        for &id in &ids {
            table.insert(Entry(id, "x"));
        }
        for &id in &ids {
            assert!(table.get(id).is_some(), "{id:?}");
        }
        let mut listed = table.ids();
        listed.sort();
        let mut want = ids.clone();
        want.sort();
        assert_eq!(listed, want);
        // Pages no slot used are not allocated.
        assert!(table.loops[2][1..5].iter().all(Option::is_none));
    }

    #[test]
    fn id_hasher_spreads_dense_slots() {
        use std::hash::BuildHasher;
        let build = BuildHasherDefault::<IdHasher>::default();
        let hash = |id: u64| build.hash_one(id);
        // Consecutive slots must land in distinct low-bit buckets and carry varied top bits.
        let low: std::collections::HashSet<u64> = (0..1024u64).map(|i| hash(i) & 1023).collect();
        assert!(low.len() > 600, "{} distinct buckets of 1024", low.len());
        let top: std::collections::HashSet<u64> = (0..1024u64).map(|i| hash(i) >> 57).collect();
        assert!(top.len() > 64, "{} distinct tags", top.len());
    }
}
