//! A connection's outgoing bytes: a queue of chunks written with one `writev` per call.
//!
//! Chunks are either owned (frames encoded for this connection, small ones coalesced) or shared
//! (`Arc<[u8]>`: a broadcast frame encoded once for many connections, never copied). An idle
//! connection's queue holds no allocation.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};
use std::sync::Arc;

use wss_proto::Scratch;

/// Chunks up to this size are appended to the previous owned chunk instead of queued apart, so
/// a burst of small frames becomes a few iovecs.
const COALESCE_LIMIT: usize = 16 * 1024;

/// Shared frames (and owned byte runs) up to this size are copied onto the owned tail rather
/// than queued as their own chunk: copying a few hundred bytes costs less than a chunk (ring
/// slot, reference count taken and dropped, one more iovec), and a burst of small broadcast
/// frames then goes out as one buffer.
const SHARED_COPY_MAX: usize = 512;

/// iovecs per `writev` call (Linux allows 1024; more buys nothing once the socket buffer is full).
const MAX_IOVECS: usize = 64;

/// A written owned chunk up to this capacity is kept to encode the next frame into.
const SPARE_MAX: usize = 16 * 1024;

/// Emptied queue states each loop thread keeps for the next connection that has something to
/// send: with them a message costs no allocation (the ring and a frame buffer are reused),
/// and an idle connection still holds none. Sized for a turn in which a few hundred
/// connections each have a frame queued; at most `POOL_MAX * (POOL_SPARE_MAX + 600)` bytes per
/// loop (about 1.2 MiB; a few tens of KiB with small frames).
const POOL_MAX: usize = 256;

/// A pooled state keeps a frame buffer up to this capacity (larger ones are dropped).
const POOL_SPARE_MAX: usize = 4 * 1024;

thread_local! {
    // Boxes on purpose: a queue holds its state boxed, and lending one moves a pointer.
    #[allow(clippy::vec_box)]
    static POOL: RefCell<Vec<Box<Inner>>> = const { RefCell::new(Vec::new()) };
}

#[derive(Debug)]
enum Chunk {
    Owned(Vec<u8>),
    Shared(Arc<[u8]>),
}

impl Chunk {
    fn bytes(&self) -> &[u8] {
        match self {
            Chunk::Owned(v) => v,
            Chunk::Shared(a) => a,
        }
    }
}

/// Outgoing bytes of one connection, oldest first. One pointer while empty: the state lives
/// in a box only while something is queued.
#[derive(Debug, Default)]
pub(crate) struct OutQueue {
    inner: Option<Box<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    chunks: VecDeque<Chunk>,
    /// Bytes of the front chunk already written.
    front_written: usize,
    /// Unwritten bytes in the whole queue.
    len: usize,
    /// An emptied owned chunk, reused for the next frame encoded here.
    spare: Vec<u8>,
}

impl OutQueue {
    /// Unwritten bytes.
    pub(crate) fn len(&self) -> usize {
        self.inner.as_ref().map_or(0, |i| i.len)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The state, taken from the loop's pool (or made) when the queue was empty.
    fn inner(&mut self) -> &mut Inner {
        self.inner
            .get_or_insert_with(|| POOL.with(|p| p.borrow_mut().pop()).unwrap_or_default())
    }

    /// Queues bytes owned by this connection. Small ones are copied onto the owned tail (as
    /// `push_with`); others are copied onto it when it has room, queued as they are otherwise.
    pub(crate) fn push_owned(&mut self, bytes: Vec<u8>) {
        self.push_owned_in(None, bytes);
    }

    /// [`push_owned`](Self::push_owned), taking a frame buffer from the loop's `scratch`
    /// when one is needed.
    fn push_owned_in(&mut self, scratch: Option<&mut Scratch>, bytes: Vec<u8>) {
        if bytes.is_empty() {
            return;
        }
        if bytes.len() <= SHARED_COPY_MAX {
            // A few bytes (a pong, a close): copied where the next frames coalesce too.
            self.push_with_in(scratch, bytes.len(), |v| v.extend_from_slice(&bytes));
            return;
        }
        let inner = self.inner();
        inner.len += bytes.len();
        // Appending to a partly written front chunk is fine: `front_written` counts from its
        // start. Only into room the tail already has: growing it would reallocate and copy
        // every byte queued so far, when queuing `bytes` as a chunk of its own costs one iovec.
        if let Some(Chunk::Owned(tail)) = inner.chunks.back_mut() {
            if bytes.len() <= COALESCE_LIMIT && tail.capacity() - tail.len() >= bytes.len() {
                tail.extend_from_slice(&bytes);
                return;
            }
        }
        inner.chunks.push_back(Chunk::Owned(bytes));
    }

    /// Appends to the tail owned chunk through a closure writing into a `Vec`, so encoders can
    /// write in place. Used for the small frames the loop encodes itself; `size` is what
    /// `encode` will append, or 0 when unknown (more still works, at the price of a
    /// reallocation).
    pub(crate) fn push_with(&mut self, size: usize, encode: impl FnOnce(&mut Vec<u8>)) {
        self.push_with_in(None, size, encode);
    }

    /// [`push_with`](Self::push_with), taking a new chunk's buffer from the loop's `scratch`
    /// when the queue's spare is too small (without one, a new buffer: the handshake's
    /// responses, once per connection).
    fn push_with_in(
        &mut self,
        scratch: Option<&mut Scratch>,
        size: usize,
        encode: impl FnOnce(&mut Vec<u8>),
    ) {
        let inner = self.inner();
        match inner.chunks.back_mut() {
            // Only into room the tail already has: a burst of echoes used to grow the tail
            // by doubling, and each reallocation copied everything queued before (in a 1 KiB
            // echo that copy was a quarter of the loop's user time under callgrind).
            Some(Chunk::Owned(tail)) if tail.capacity() - tail.len() >= size => {
                let before = tail.len();
                encode(tail);
                inner.len += tail.len() - before;
            }
            _ => {
                // Room for a burst up front (a broadcast queues dozens of small frames here in
                // one turn): the first chunk of a turn gets the pooled size, a further one the
                // coalescing size, so a long burst takes few chunks.
                let room = if inner.chunks.is_empty() {
                    POOL_SPARE_MAX
                } else {
                    COALESCE_LIMIT
                }
                .max(size);
                let mut v = std::mem::take(&mut inner.spare);
                if v.capacity() < room {
                    // Written chunks go back to the loop's scratch: take one from there.
                    match scratch {
                        Some(scratch) => {
                            let small = std::mem::replace(&mut v, scratch.take(room));
                            scratch.recycle(small);
                        }
                        None => v = Vec::with_capacity(room),
                    }
                }
                v.clear();
                encode(&mut v);
                if v.is_empty() {
                    inner.spare = v;
                    self.recycle_if_empty();
                    return;
                }
                inner.len += v.len();
                inner.chunks.push_back(Chunk::Owned(v));
            }
        }
    }

    /// Queues shared bytes: a small frame is copied onto the owned tail (as `push_with`),
    /// a larger one is queued without a copy.
    #[cfg(test)]
    pub(crate) fn push_shared(&mut self, bytes: Arc<[u8]>) {
        self.push_shared_in(None, bytes);
    }

    /// [`push_shared`](Self::push_shared), copying a small frame into a buffer from the
    /// loop's `scratch` when one is needed.
    fn push_shared_in(&mut self, scratch: Option<&mut Scratch>, bytes: Arc<[u8]>) {
        if bytes.is_empty() {
            return;
        }
        if bytes.len() <= SHARED_COPY_MAX {
            self.push_with_in(scratch, bytes.len(), |v| v.extend_from_slice(&bytes));
            return;
        }
        let inner = self.inner();
        inner.len += bytes.len();
        inner.chunks.push_back(Chunk::Shared(bytes));
    }

    /// One `writev` of the queued chunks. Returns the bytes written (0 only when the queue is
    /// empty); written bytes leave the queue, and buffers written whole go to `scratch` (the
    /// loop's), for the next messages it receives.
    pub(crate) fn write_to<W: Write>(
        &mut self,
        w: &mut W,
        scratch: &mut Scratch,
    ) -> io::Result<usize> {
        let Some(inner) = self.inner.as_deref_mut() else {
            return Ok(0);
        };
        if inner.len == 0 {
            return Ok(0);
        }
        let n = if inner.chunks.len() == 1 {
            // The usual case (frames coalesce): no iovec array to build.
            let front = inner.chunks.front().map_or(&[][..], Chunk::bytes);
            w.write(front.get(inner.front_written..).unwrap_or_default())?
        } else {
            let mut slices: [IoSlice<'_>; MAX_IOVECS] = [IoSlice::new(&[]); MAX_IOVECS];
            let mut count = 0;
            for (i, chunk) in inner.chunks.iter().take(MAX_IOVECS).enumerate() {
                let bytes = chunk.bytes();
                let bytes = if i == 0 {
                    bytes.get(inner.front_written..).unwrap_or_default()
                } else {
                    bytes
                };
                slices[i] = IoSlice::new(bytes);
                count = i + 1;
            }
            w.write_vectored(&slices[..count])?
        };
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        inner.consume(n, scratch);
        self.recycle_if_empty();
        Ok(n)
    }

    /// An emptied queue gives its state back to the loop's pool: an idle connection keeps
    /// nothing.
    fn recycle_if_empty(&mut self) {
        if self.inner.as_ref().is_some_and(|i| i.len == 0) {
            if let Some(mut inner) = self.inner.take() {
                inner.chunks.clear();
                inner.front_written = 0;
                if inner.spare.capacity() > POOL_SPARE_MAX {
                    inner.spare = Vec::new();
                }
                if inner.chunks.capacity() <= 16 {
                    POOL.with(|p| {
                        let mut pool = p.borrow_mut();
                        if pool.len() < POOL_MAX {
                            pool.push(inner);
                        }
                    });
                }
            }
        }
    }

    /// Drops everything queued.
    pub(crate) fn clear(&mut self) {
        self.inner = None;
    }
}

impl Inner {
    fn consume(&mut self, mut n: usize, scratch: &mut Scratch) {
        self.len -= n.min(self.len);
        while n > 0 {
            let Some(front) = self.chunks.front() else {
                break;
            };
            let left = front.bytes().len() - self.front_written;
            if n < left {
                self.front_written += n;
                return;
            }
            n -= left;
            self.front_written = 0;
            if let Some(Chunk::Owned(v)) = self.chunks.pop_front() {
                if v.capacity() <= SPARE_MAX && v.capacity() > self.spare.capacity() {
                    self.spare = v;
                } else {
                    // A large payload sent as it was received (an echo, a relay): its buffer
                    // serves the next message this loop receives.
                    scratch.recycle(v);
                }
            }
        }
    }
}

impl OutQueue {
    /// The queue as the protocol core's transmit queue, with the loop's `scratch` for the
    /// buffers it takes and gives back.
    pub(crate) fn tx<'a>(&'a mut self, scratch: &'a mut Scratch) -> Tx<'a> {
        Tx { out: self, scratch }
    }
}

/// The protocol core frames messages straight into the socket queue
/// ([`Connection::send`](wss_proto::Connection::send)).
pub(crate) struct Tx<'a> {
    out: &'a mut OutQueue,
    scratch: &'a mut Scratch,
}

impl wss_proto::Transmit for Tx<'_> {
    #[inline]
    fn push_with(&mut self, size: usize, encode: impl FnOnce(&mut Vec<u8>)) {
        self.out.push_with_in(Some(self.scratch), size, encode);
    }

    #[inline]
    fn push_owned(&mut self, bytes: Vec<u8>) {
        self.out.push_owned_in(Some(self.scratch), bytes);
    }

    #[inline]
    fn push_shared(&mut self, bytes: Arc<[u8]>) {
        self.out.push_shared_in(Some(self.scratch), bytes);
    }

    #[inline]
    fn scratch(&mut self) -> Option<&mut Scratch> {
        Some(self.scratch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that accepts at most `cap` bytes per call and records them.
    struct Trickle {
        cap: usize,
        got: Vec<u8>,
        calls: usize,
    }

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.write_vectored(&[IoSlice::new(buf)])
        }
        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            self.calls += 1;
            let mut n = 0;
            for b in bufs {
                let take = b.len().min(self.cap - n);
                self.got.extend_from_slice(&b[..take]);
                n += take;
                if n == self.cap {
                    break;
                }
            }
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn partial_writes_keep_order_across_owned_and_shared_chunks() {
        let mut q = OutQueue::default();
        q.push_owned(b"abc".to_vec());
        q.push_shared(Arc::from(&b"defgh"[..]));
        q.push_owned(b"ij".to_vec());
        q.push_with(2, |v| v.extend_from_slice(b"kl"));
        assert_eq!(q.len(), 12);
        let mut w = Trickle {
            cap: 4,
            got: Vec::new(),
            calls: 0,
        };
        while !q.is_empty() {
            q.write_to(&mut w, &mut Scratch::new()).unwrap();
        }
        assert_eq!(w.got, b"abcdefghijkl");
        assert_eq!(w.calls, 3);
        assert_eq!(q.len(), 0);
        assert!(q.inner.is_none(), "an emptied queue holds no state");
    }

    #[test]
    fn small_owned_chunks_coalesce_into_one_iovec() {
        let mut q = OutQueue::default();
        for _ in 0..100 {
            q.push_owned(vec![1u8; 10]);
        }
        assert_eq!(q.inner.as_ref().map(|i| i.chunks.len()), Some(1));
        assert_eq!(q.len(), 1000);
    }

    #[test]
    fn a_burst_of_frames_never_moves_bytes_already_queued() {
        let mut q = OutQueue::default();
        let frame = |i: usize| vec![i as u8; 1000];
        q.push_with(1000, |v| v.extend_from_slice(&frame(0)));
        let first = match q.inner.as_ref().and_then(|i| i.chunks.front()) {
            Some(Chunk::Owned(v)) => v.as_ptr(),
            other => panic!("unexpected {other:?}"),
        };
        for i in 1..40 {
            q.push_with(1000, |v| v.extend_from_slice(&frame(i)));
        }
        let inner = q.inner.as_ref().unwrap();
        match inner.chunks.front() {
            Some(Chunk::Owned(v)) => assert_eq!(v.as_ptr(), first, "the first chunk grew"),
            other => panic!("unexpected {other:?}"),
        }
        assert!(
            inner.chunks.len() > 1,
            "a full chunk is followed, not grown"
        );
        assert!(inner.chunks.len() <= 4, "a burst takes few chunks");
        let mut w = Trickle {
            cap: 100_000,
            got: Vec::new(),
            calls: 0,
        };
        while !q.is_empty() {
            q.write_to(&mut w, &mut Scratch::new()).unwrap();
        }
        let want: Vec<u8> = (0..40).flat_map(frame).collect();
        assert_eq!(w.got, want);
        assert_eq!(w.calls, 1, "one writev for the whole burst");
    }

    #[test]
    fn an_emptied_queue_lends_its_state_to_the_next_one() {
        let mut a = OutQueue::default();
        a.push_with(100, |v| v.extend_from_slice(&[7u8; 100]));
        let mut w = Trickle {
            cap: 1000,
            got: Vec::new(),
            calls: 0,
        };
        a.write_to(&mut w, &mut Scratch::new()).unwrap();
        assert!(a.inner.is_none(), "an idle connection keeps nothing");
        // The next frame on this thread reuses the ring and the frame buffer.
        let mut b = OutQueue::default();
        b.push_with(2, |v| v.extend_from_slice(b"hi"));
        let inner = b.inner.as_ref().unwrap();
        assert!(inner.chunks.capacity() > 0);
        match inner.chunks.front() {
            Some(Chunk::Owned(v)) => assert!(v.capacity() >= 100, "buffer reused"),
            other => panic!("unexpected {other:?}"),
        }
        b.write_to(&mut w, &mut Scratch::new()).unwrap();
        assert_eq!(&w.got[100..], b"hi");
    }

    #[test]
    fn small_shared_frames_are_copied_and_large_ones_shared() {
        let small: Arc<[u8]> = Arc::from(&[1u8; SHARED_COPY_MAX][..]);
        let large: Arc<[u8]> = Arc::from(&[2u8; SHARED_COPY_MAX + 1][..]);
        let mut q = OutQueue::default();
        q.push_shared(small.clone());
        q.push_shared(small.clone());
        assert_eq!(
            Arc::strong_count(&small),
            1,
            "small frames hold no reference"
        );
        assert_eq!(
            q.inner.as_ref().map(|i| i.chunks.len()),
            Some(1),
            "one buffer"
        );
        q.push_shared(large.clone());
        assert_eq!(
            Arc::strong_count(&large),
            2,
            "a large frame is queued, not copied"
        );
        q.push_shared(small.clone());
        assert_eq!(q.len(), 3 * SHARED_COPY_MAX + SHARED_COPY_MAX + 1);
        let mut w = Trickle {
            cap: 100_000,
            got: Vec::new(),
            calls: 0,
        };
        while !q.is_empty() {
            q.write_to(&mut w, &mut Scratch::new()).unwrap();
        }
        let mut want = [&small[..], &small[..], &large[..]].concat();
        want.extend_from_slice(&small);
        assert_eq!(w.got, want, "order kept across copied and shared frames");
        assert_eq!(Arc::strong_count(&large), 1, "written chunks are released");
    }

    #[test]
    fn empty_pushes_queue_nothing() {
        let mut q = OutQueue::default();
        q.push_owned(Vec::new());
        q.push_shared(Arc::from(&b""[..]));
        q.push_with(0, |_| {});
        assert!(q.is_empty());
        assert!(q.inner.is_none());
    }

    #[test]
    fn clear_forgets_a_partly_written_queue() {
        let mut q = OutQueue::default();
        q.push_owned(vec![0u8; 100]);
        let mut w = Trickle {
            cap: 10,
            got: Vec::new(),
            calls: 0,
        };
        q.write_to(&mut w, &mut Scratch::new()).unwrap();
        q.clear();
        assert!(q.is_empty());
        q.push_owned(b"x".to_vec());
        let mut w2 = Trickle {
            cap: 10,
            got: Vec::new(),
            calls: 0,
        };
        q.write_to(&mut w2, &mut Scratch::new()).unwrap();
        assert_eq!(w2.got, b"x");
    }
}
