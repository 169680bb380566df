//! Scalable sessions (SPEC Part A point 4): a cookie `4DSID_<AppName>` mapping requests to an
//! in-memory [`Session`] whose JSON `storage` handlers share.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A web session: an id and a JSON `storage` shared by every request that carries the cookie.
///
/// Cheap to clone; clones see the same storage. The id is secret (it authenticates the
/// browser), so do not log it.
///
/// With [`WebServerOptions::with_scalable_session`](crate::WebServerOptions::with_scalable_session)
/// the web server gives each browser a session cookie; `on_connection` finds the session in
/// [`Request::session`](crate::Request::session), and code outside the callbacks reaches it
/// with [`WebServer::session`](crate::WebServer::session).
///
/// ```
/// use wss_server::*;
/// # struct Echo;
/// # impl ConnectionHandler for Echo {
/// #     fn on_message(&mut self, ws: &WebSocketConnection, event: &MessageEvent) {
/// #         let _ = ws.send(&event.data);
/// #     }
/// # }
///
/// // Counts each browser's WebSocket connections in its session.
/// struct Visits;
/// impl ServerHandler for Visits {
///     type Connection = Echo;
///     fn on_connection(&mut self, _: &WebSocketServer, event: &ConnectionEvent) -> Option<Echo> {
///         let session = event.request.session.as_ref()?; // no session: refused (403)
///         let visits = session.update_storage(|storage| {
///             let n = storage["visits"].as_u64().unwrap_or(0) + 1;
///             storage["visits"] = n.into();
///             n
///         });
///         println!("visit {visits} of this browser");
///         Some(Echo)
///     }
/// }
///
/// let options = WebServerOptions::default()
///     .with_address("127.0.0.1", 0)
///     .with_scalable_session(true);
/// let web = WebServer::start(options)?;
/// let _wss = WebSocketServer::new(&web, Visits, ServerOptions::default())?;
/// assert!(web.scalable_session());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Session {
    id: Arc<str>,
    storage: Arc<Mutex<Value>>,
}

impl Session {
    /// The session id (the cookie's value).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// A copy of the storage (a JSON object, `{}` at first).
    pub fn storage(&self) -> Value {
        self.storage
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Changes the storage in place; every holder of this session sees the change.
    pub fn update_storage<R>(&self, f: impl FnOnce(&mut Value) -> R) -> R {
        let mut guard = self.storage.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut guard)
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The id is a credential: keep it out of debug output and logs.
        f.debug_struct("Session")
            .field("id", &"<redacted>")
            .finish()
    }
}

/// Most expired entries dropped by one call: expiry is cleaned up a little at a time, so no call
/// holds the lock for work that grows with the store.
const EXPIRED_PER_CALL: usize = 2;

/// Most entries reserved when the store is made (see [`Lru::new`]).
const MAX_RESERVED: usize = 1 << 20;

/// Marks "no neighbour" in the intrusive list.
const NIL: usize = usize::MAX;

struct Node {
    id: Arc<str>,
    session: Session,
    last_seen: Instant,
    /// Towards the most recently seen entry.
    newer: usize,
    /// Towards the least recently seen entry.
    older: usize,
}

/// The entries, in a slab threaded by a doubly linked list in order of last use: finding,
/// refreshing, inserting and evicting are all O(1), whatever the store holds.
struct Lru {
    index: HashMap<Arc<str>, usize>,
    slots: Vec<Option<Node>>,
    free: Vec<usize>,
    /// Most recently seen.
    newest: usize,
    /// Least recently seen: the next to go.
    oldest: usize,
}

impl Lru {
    /// Room for `capacity` entries, reserved up front: growing the table or the slab later
    /// would rehash or copy every entry while the lock is held. Only the table's control bytes
    /// are touched now; the rest is paged in as sessions arrive.
    fn new(capacity: usize) -> Self {
        Lru {
            index: HashMap::with_capacity(capacity),
            slots: Vec::with_capacity(capacity),
            free: Vec::new(),
            newest: NIL,
            oldest: NIL,
        }
    }

    fn len(&self) -> usize {
        self.index.len()
    }

    fn node(&self, at: usize) -> Option<&Node> {
        self.slots.get(at).and_then(Option::as_ref)
    }

    fn node_mut(&mut self, at: usize) -> Option<&mut Node> {
        self.slots.get_mut(at).and_then(Option::as_mut)
    }

    /// Takes the node at `at` out of the list (it stays in its slot).
    fn unlink(&mut self, at: usize) {
        let Some((newer, older)) = self.node(at).map(|n| (n.newer, n.older)) else {
            return;
        };
        match self.node_mut(newer) {
            Some(n) => n.older = older,
            None => self.newest = older,
        }
        match self.node_mut(older) {
            Some(n) => n.newer = newer,
            None => self.oldest = newer,
        }
        if let Some(n) = self.node_mut(at) {
            n.newer = NIL;
            n.older = NIL;
        }
    }

    /// Puts the (unlinked) node at `at` in front as the most recently seen.
    fn push_newest(&mut self, at: usize) {
        let old_newest = self.newest;
        if let Some(n) = self.node_mut(at) {
            n.newer = NIL;
            n.older = old_newest;
        }
        match self.node_mut(old_newest) {
            Some(n) => n.newer = at,
            None => self.oldest = at,
        }
        self.newest = at;
    }

    fn insert(&mut self, id: Arc<str>, session: Session, now: Instant) {
        let node = Node {
            id: id.clone(),
            session,
            last_seen: now,
            newer: NIL,
            older: NIL,
        };
        let at = match self.free.pop() {
            Some(at) => {
                if let Some(slot) = self.slots.get_mut(at) {
                    *slot = Some(node);
                }
                at
            }
            None => {
                self.slots.push(Some(node));
                self.slots.len() - 1
            }
        };
        self.index.insert(id, at);
        self.push_newest(at);
    }

    /// Removes the node at `at`; returns its session so the caller drops it after unlocking.
    fn remove_at(&mut self, at: usize) -> Option<Session> {
        self.unlink(at);
        let node = self.slots.get_mut(at).and_then(Option::take)?;
        self.index.remove(&node.id);
        self.free.push(at);
        Some(node.session)
    }

    fn oldest_seen(&self) -> Option<Instant> {
        self.node(self.oldest).map(|n| n.last_seen)
    }
}

/// The in-memory store: bounded in size (least recently seen dropped first), entries expire
/// after `idle` without a request. Every operation is O(1) under one short lock, so a client
/// that sends request after request without a cookie costs the same whether the store is
/// empty or full (issue 20).
pub(crate) struct SessionStore {
    entries: Mutex<Lru>,
    idle: Duration,
    max: usize,
}

impl SessionStore {
    pub(crate) fn new(idle: Duration, max: usize) -> Self {
        let max = max.max(1);
        SessionStore {
            // Past a million, the rare growth of a larger store is accepted instead.
            entries: Mutex::new(Lru::new(max.min(MAX_RESERVED))),
            idle,
            max,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Lru> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The live session with this id, refreshed; `None` when unknown or expired.
    pub(crate) fn get(&self, id: &str, now: Instant) -> Option<Session> {
        let mut lru = self.lock();
        let at = *lru.index.get(id)?;
        let expired = lru
            .node(at)
            .is_none_or(|n| now.saturating_duration_since(n.last_seen) > self.idle);
        if expired {
            let gone = lru.remove_at(at);
            drop(lru);
            drop(gone);
            return None;
        }
        lru.unlink(at);
        lru.push_newest(at);
        let node = lru.node_mut(at)?;
        node.last_seen = now;
        Some(node.session.clone())
    }

    /// A fresh session with a new random id. A few expired entries are dropped first (the
    /// oldest ones, at most [`EXPIRED_PER_CALL`]); when the store is still full, the least
    /// recently seen one goes.
    pub(crate) fn create(&self, now: Instant) -> Option<Session> {
        // Outside the lock: the random source may take a system call.
        let id: Arc<str> = new_session_id()?.into();
        let session = Session {
            id: id.clone(),
            storage: Arc::new(Mutex::new(Value::Object(Default::default()))),
        };
        let mut dropped = Vec::with_capacity(EXPIRED_PER_CALL + 1);
        let mut lru = self.lock();
        for _ in 0..EXPIRED_PER_CALL {
            match lru.oldest_seen() {
                Some(seen) if now.saturating_duration_since(seen) > self.idle => {
                    let oldest = lru.oldest;
                    dropped.extend(lru.remove_at(oldest));
                }
                _ => break,
            }
        }
        if lru.len() >= self.max {
            let oldest = lru.oldest;
            dropped.extend(lru.remove_at(oldest));
        }
        lru.insert(id, session.clone(), now);
        drop(lru);
        // The evicted sessions' storage is freed here, after the lock.
        drop(dropped);
        Some(session)
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}

/// 192 bits from the OS CSPRNG, hex-encoded; `None` if the OS has no entropy to give.
fn new_session_id() -> Option<String> {
    let mut bytes = [0u8; 24];
    getrandom::getrandom(&mut bytes).ok()?;
    let mut s = String::with_capacity(48);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    Some(s)
}

/// The cookie's value for `name` in a `Cookie` header, if present.
pub(crate) fn cookie_value<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|part| {
        let (k, v) = part.trim().split_once('=')?;
        (k.trim() == name).then(|| v.trim().trim_matches('"'))
    })
}

/// The `Set-Cookie` value for a new session (issue 13 item 3). `Secure` over TLS: the
/// browser then never sends the id over plain HTTP, where the network could read it.
pub(crate) fn set_cookie_value(name: &str, id: &str, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{name}={id}; Path=/; HttpOnly; SameSite=Lax{secure}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_long_random_and_distinct() {
        let a = new_session_id().unwrap_or_default();
        let b = new_session_id().unwrap_or_default();
        assert_eq!(a.len(), 48);
        assert_ne!(a, b);
    }

    #[test]
    fn unknown_ids_are_never_adopted() {
        let store = SessionStore::new(Duration::from_secs(60), 10);
        assert!(store.get("attacker-chosen", Instant::now()).is_none());
        assert_eq!(store.len(), 0);
    }

    #[test]
    fn sessions_expire_after_idle_time() {
        let store = SessionStore::new(Duration::from_secs(60), 10);
        let t0 = Instant::now();
        let s = store.create(t0).expect("entropy");
        assert!(store.get(s.id(), t0 + Duration::from_secs(30)).is_some());
        // Refreshed at 30 s, so alive at 80 s, gone at 200 s.
        assert!(store.get(s.id(), t0 + Duration::from_secs(80)).is_some());
        assert!(store.get(s.id(), t0 + Duration::from_secs(200)).is_none());
    }

    #[test]
    fn store_is_bounded() {
        let store = SessionStore::new(Duration::from_secs(60), 3);
        let t0 = Instant::now();
        for i in 0..10 {
            store
                .create(t0 + Duration::from_millis(i))
                .expect("entropy");
        }
        assert_eq!(store.len(), 3);
    }

    #[test]
    fn the_least_recently_seen_session_is_the_one_evicted() {
        let store = SessionStore::new(Duration::from_secs(60), 3);
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let a = store.create(at(0)).expect("entropy");
        let b = store.create(at(1)).expect("entropy");
        let c = store.create(at(2)).expect("entropy");
        // `a` is used again, so `b` is now the least recently seen.
        assert!(store.get(a.id(), at(3)).is_some());
        let d = store.create(at(4)).expect("entropy");
        assert!(store.get(b.id(), at(5)).is_none(), "b evicted");
        for s in [&a, &c, &d] {
            assert!(store.get(s.id(), at(6)).is_some());
        }
        // The gets above refreshed a, c, d in that order: `a` is now the oldest.
        let _e = store.create(at(7)).expect("entropy");
        assert!(store.get(a.id(), at(8)).is_none(), "a evicted");
        assert_eq!(store.len(), 3);
    }

    #[test]
    fn expired_sessions_are_dropped_a_few_at_a_time() {
        let store = SessionStore::new(Duration::from_secs(10), 100);
        let t0 = Instant::now();
        let old: Vec<Session> = (0..6).map(|_| store.create(t0).expect("entropy")).collect();
        let later = t0 + Duration::from_secs(60);
        store.create(later).expect("entropy");
        // Two expired ones went, the other four stay until later calls or a lookup.
        assert_eq!(store.len(), 5);
        assert!(store.get(old[5].id(), later).is_none());
        assert_eq!(store.len(), 4);
        store.create(later).expect("entropy");
        store.create(later).expect("entropy");
        assert_eq!(store.len(), 3, "two more each call, none of the fresh ones");
    }

    #[test]
    fn slots_are_reused_and_the_list_stays_consistent() {
        let store = SessionStore::new(Duration::from_secs(60), 50);
        let t0 = Instant::now();
        let mut live = Vec::new();
        for i in 0..1000u64 {
            let now = t0 + Duration::from_micros(i);
            live.push(store.create(now).expect("entropy"));
            if i % 3 == 0 {
                let pick = live[(i as usize * 7) % live.len()].id().to_owned();
                let _ = store.get(&pick, now);
            }
        }
        assert_eq!(store.len(), 50);
        let lru = store.lock();
        assert!(lru.slots.len() <= 51, "slab grew to {}", lru.slots.len());
        // Walk the list both ways: every live entry exactly once.
        let mut count = 0;
        let mut at = lru.newest;
        let mut prev = NIL;
        while let Some(n) = lru.node(at) {
            assert_eq!(n.newer, prev);
            prev = at;
            at = n.older;
            count += 1;
        }
        assert_eq!(prev, lru.oldest);
        assert_eq!(count, 50);
    }

    #[test]
    fn storage_is_shared_between_clones() {
        let store = SessionStore::new(Duration::from_secs(60), 3);
        let s = store.create(Instant::now()).expect("entropy");
        let t = s.clone();
        s.update_storage(|v| v["user"] = "ann".into());
        assert_eq!(t.storage()["user"], "ann");
        assert!(!format!("{s:?}").contains(s.id()));
    }

    #[test]
    fn cookie_parsing_and_flags() {
        let h = "a=1; 4DSID_wss=abc ; b=2";
        assert_eq!(cookie_value(h, "4DSID_wss"), Some("abc"));
        assert_eq!(cookie_value(h, "c"), None);
        let c = set_cookie_value("4DSID_wss", "x", false);
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Lax") && c.contains("Path=/"));
        assert!(!c.contains("Secure"));
        let c = set_cookie_value("4DSID_wss", "x", true);
        assert!(c.ends_with("; Secure") && c.contains("HttpOnly"));
    }
}
