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

struct Entry {
    session: Session,
    last_seen: Instant,
}

/// The in-memory store: bounded in size, entries expire after `idle` without a request.
pub(crate) struct SessionStore {
    entries: Mutex<HashMap<Arc<str>, Entry>>,
    idle: Duration,
    max: usize,
}

impl SessionStore {
    pub(crate) fn new(idle: Duration, max: usize) -> Self {
        SessionStore {
            entries: Mutex::new(HashMap::new()),
            idle,
            max: max.max(1),
        }
    }

    /// The live session with this id, refreshed; `None` when unknown or expired.
    pub(crate) fn get(&self, id: &str, now: Instant) -> Option<Session> {
        let mut map = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let expired = match map.get_mut(id) {
            None => return None,
            Some(e) if now.saturating_duration_since(e.last_seen) > self.idle => true,
            Some(e) => {
                e.last_seen = now;
                return Some(e.session.clone());
            }
        };
        if expired {
            map.remove(id);
        }
        None
    }

    /// A fresh session with a new random id. When the store is full, expired entries are
    /// dropped first, then the least recently seen one.
    pub(crate) fn create(&self, now: Instant) -> Option<Session> {
        let id: Arc<str> = new_session_id()?.into();
        let session = Session {
            id: id.clone(),
            storage: Arc::new(Mutex::new(Value::Object(Default::default()))),
        };
        let mut map = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= self.max {
            let idle = self.idle;
            map.retain(|_, e| now.saturating_duration_since(e.last_seen) <= idle);
        }
        if map.len() >= self.max {
            let oldest = map
                .iter()
                .min_by_key(|(_, e)| e.last_seen)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                map.remove(&k);
            }
        }
        map.insert(
            id,
            Entry {
                session: session.clone(),
                last_seen: now,
            },
        );
        Some(session)
    }

    pub(crate) fn len(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
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
