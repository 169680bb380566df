//! Static files served from memory: built-in files prepared at start, root files read (and
//! hashed) by one file thread into a bounded cache. A network thread never touches the disk:
//! a request it cannot answer from memory waits (`Decision::Pending`) for the file thread,
//! which answers it through `NetHandle::decide`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use wss_net::{ConnId, Decision, NetHandle};

use crate::options::WebServerOptions;
use crate::site::{finished, folder_redirect, not_found, Ask, Site};
use crate::statics::{resolve, Entity, Resolved};

/// A cached root file younger than this is served without looking at the disk; an older one
/// is checked (one `stat`, on the file thread) before it is served again. Edits on disk are
/// therefore seen within a second.
const REVALIDATE_AFTER: Duration = Duration::from_secs(1);

/// Requests that may wait for the file thread; past it they get `503` with `Retry-After`.
const MAX_WAITING: usize = 1024;

/// A cached root file and when it was last checked and used (milliseconds since `epoch`).
struct Cached {
    entity: Arc<Entity>,
    checked: AtomicU64,
    used: AtomicU64,
}

/// A request waiting for the file thread.
pub(crate) struct Job {
    conn: ConnId,
    ask: Box<Ask>,
}

/// What the network thread can do with a path.
pub(crate) enum Lookup {
    /// Answer from memory.
    Ready(Arc<Entity>),
    /// Hand the request to the file thread.
    Disk,
    /// Nothing to serve.
    Missing,
}

pub(crate) struct Files {
    /// Canonical root folder, if any.
    root: Option<PathBuf>,
    builtin: HashMap<String, Arc<Entity>>,
    /// Root files by decoded URL path. Written only by the file thread; every operation
    /// under this lock is O(1).
    cache: Mutex<HashMap<String, Arc<Cached>>>,
    epoch: Instant,
    max_file_size: u64,
    /// `Cache-Control` of root files.
    cache_control: String,
    /// Most bytes the cache holds.
    budget: usize,
    jobs: SyncSender<Job>,
    waiting: Mutex<Option<Receiver<Job>>>,
    /// Test hook: holds the file thread before each job (a slow disk). Not compiled outside
    /// this crate's own tests, so it can never be on in a real server.
    #[cfg(test)]
    pub(crate) gate: Arc<test_gate::Gate>,
}

impl Files {
    /// `root` must already be canonical (see `WebServer::start`).
    pub(crate) fn new(
        root: Option<PathBuf>,
        options: &WebServerOptions,
        since: SystemTime,
    ) -> Files {
        let builtin = options
            .files
            .iter()
            .map(|(path, file)| (path.clone(), Arc::new(Entity::builtin(file, since))))
            .collect();
        let cache_control = match options.max_age {
            Some(age) => format!("max-age={}", age.as_secs()),
            None => "no-cache".to_owned(),
        };
        let (jobs, waiting) = sync_channel(MAX_WAITING);
        Files {
            root,
            builtin,
            cache: Mutex::new(HashMap::new()),
            epoch: Instant::now(),
            max_file_size: options.max_file_size,
            cache_control,
            budget: options.file_cache_bytes,
            jobs,
            waiting: Mutex::new(Some(waiting)),
            #[cfg(test)]
            gate: Arc::default(),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// On a network thread: what can be done for `path` without the disk.
    pub(crate) fn lookup(&self, path: &str) -> Lookup {
        if self.root.is_none() {
            return match self.builtin.get(path) {
                Some(e) => Lookup::Ready(e.clone()),
                None => Lookup::Missing,
            };
        }
        let cached = self
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(path)
            .cloned();
        let Some(cached) = cached else {
            return Lookup::Disk;
        };
        let now = self.now_ms();
        let age = now.saturating_sub(cached.checked.load(Ordering::Relaxed));
        if u128::from(age) >= REVALIDATE_AFTER.as_millis() {
            return Lookup::Disk;
        }
        cached.used.store(now, Ordering::Relaxed);
        Lookup::Ready(cached.entity.clone())
    }

    /// On a network thread: queues `ask` for the file thread. `Err` gives the request back
    /// when too many already wait.
    pub(crate) fn enqueue(&self, conn: ConnId, ask: Box<Ask>) -> Result<(), Box<Ask>> {
        match self.jobs.try_send(Job { conn, ask }) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(job) | TrySendError::Disconnected(job)) => Err(job.ask),
        }
    }

    /// Starts the file thread (once), answering through `net`. Needs a root; without one
    /// every file is in memory already.
    pub(crate) fn start_thread(site: &Arc<Site>, net: NetHandle) -> std::io::Result<()> {
        if site.files.root.is_none() {
            return Ok(());
        }
        let Some(rx) = site
            .files
            .waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        else {
            return Ok(());
        };
        // The thread holds the site weakly, so it never keeps the server alive: it ends when
        // the site, which owns the only sender, is dropped.
        let weak = Arc::downgrade(site);
        std::thread::Builder::new()
            .name("wss-files".into())
            .spawn(move || {
                let mut worker = FileThread {
                    own: HashMap::new(),
                    bytes: 0,
                };
                while let Ok(job) = rx.recv() {
                    let Some(site) = weak.upgrade() else {
                        break;
                    };
                    #[cfg(test)]
                    site.files.gate.pass();
                    let response = worker.answer(&site, &job.ask);
                    net.decide(
                        job.conn,
                        Decision::Respond {
                            response: finished(response),
                            keep_alive: true,
                        },
                    );
                }
            })
            .map(|_| ())
    }
}

/// The file thread's own bookkeeping: which paths it cached and what they cost, so picking
/// what to evict never holds the shared lock.
struct FileThread {
    own: HashMap<String, Arc<Cached>>,
    bytes: usize,
}

impl FileThread {
    fn answer(&mut self, site: &Site, ask: &Ask) -> wss_proto::handshake::Response {
        let files = &site.files;
        let (Some(root), Some(path)) = (files.root.as_deref(), ask.path.as_deref()) else {
            return not_found(ask);
        };
        match resolve(root, path, files.max_file_size) {
            Resolved::File(source) => {
                if let Some(c) = self.own.get(path) {
                    if c.entity.source.as_ref() == Some(&source) {
                        let now = files.now_ms();
                        c.checked.store(now, Ordering::Relaxed);
                        c.used.store(now, Ordering::Relaxed);
                        return site.answer(&c.entity, ask);
                    }
                }
                match Entity::read(source, files.max_file_size, &files.cache_control) {
                    Some(entity) => {
                        let entity = Arc::new(entity);
                        self.insert(files, path, entity.clone());
                        site.answer(&entity, ask)
                    }
                    None => {
                        self.remove(files, path);
                        self.fallback(site, path, ask)
                    }
                }
            }
            Resolved::Folder => {
                self.remove(files, path);
                folder_redirect(ask)
            }
            Resolved::Missing => {
                self.remove(files, path);
                self.fallback(site, path, ask)
            }
        }
    }

    /// The built-in file at `path` when the root has none.
    fn fallback(&self, site: &Site, path: &str, ask: &Ask) -> wss_proto::handshake::Response {
        match site.files.builtin.get(path) {
            Some(e) => site.answer(e, ask),
            None => not_found(ask),
        }
    }

    fn remove(&mut self, files: &Files, path: &str) {
        if let Some(old) = self.own.remove(path) {
            self.bytes -= old.entity.cost();
            files
                .cache
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(path);
        }
    }

    /// Caches `entity` at `path` if it fits the budget, evicting the least recently used
    /// entries first. A file larger than the whole budget is served but not kept.
    fn insert(&mut self, files: &Files, path: &str, entity: Arc<Entity>) {
        self.remove(files, path);
        let cost = entity.cost();
        if cost > files.budget {
            return;
        }
        while self.bytes + cost > files.budget {
            // A scan of this thread's own map: no lock held, no network thread waits.
            let Some(victim) = self
                .own
                .iter()
                .min_by_key(|(_, c)| c.used.load(Ordering::Relaxed))
                .map(|(p, _)| p.clone())
            else {
                break;
            };
            self.remove(files, &victim);
        }
        let now = files.now_ms();
        let cached = Arc::new(Cached {
            entity,
            checked: AtomicU64::new(now),
            used: AtomicU64::new(now),
        });
        self.bytes += cost;
        self.own.insert(path.to_owned(), cached.clone());
        files
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(path.to_owned(), cached);
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
pub(crate) mod test_gate {
    use std::sync::{Condvar, Mutex};
    use std::time::{Duration, Instant};

    /// A door the file thread passes before each job: closed, it waits (a slow disk).
    #[derive(Default)]
    pub(crate) struct Gate {
        /// (closed, jobs waiting at the door, jobs passed)
        state: Mutex<(bool, usize, usize)>,
        cv: Condvar,
    }

    impl Gate {
        pub(crate) fn pass(&self) {
            let mut s = self.state.lock().unwrap();
            s.1 += 1;
            self.cv.notify_all();
            while s.0 {
                s = self.cv.wait(s).unwrap();
            }
            s.1 -= 1;
            s.2 += 1;
            self.cv.notify_all();
        }

        pub(crate) fn set_closed(&self, closed: bool) {
            self.state.lock().unwrap().0 = closed;
            self.cv.notify_all();
        }

        /// Waits (up to 10 s) until `n` jobs wait at the closed door; returns whether they do.
        pub(crate) fn wait_waiting(&self, n: usize) -> bool {
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut s = self.state.lock().unwrap();
            while s.1 < n {
                let now = Instant::now();
                if now >= deadline {
                    return false;
                }
                s = self.cv.wait_timeout(s, deadline - now).unwrap().0;
            }
            true
        }

        pub(crate) fn waiting(&self) -> usize {
            self.state.lock().unwrap().1
        }

        pub(crate) fn passed(&self) -> usize {
            self.state.lock().unwrap().2
        }
    }
}
