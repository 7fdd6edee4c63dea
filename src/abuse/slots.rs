//! Connection slots: how many connections are served at once, and which
//! one makes room when all are taken.
//!
//! A slowloris client opens many connections and sends their request heads
//! a byte at a time (or nothing at all), so that they hold every slot and a
//! real webhook waits outside. The header timeout ends each such connection
//! eventually, but the client simply opens another. So a slot is not held
//! on a first-come basis: when all are taken, a new connection takes the
//! slot of the connection that has been *waiting* longest on its client:
//! one that has not yet sent its whole request, or sits idle between
//! keep-alive requests.
//! A connection with a request in progress (the whole request in, its
//! answer not yet sent, a Server-Sent Events stream included) is never
//! closed to make room; when every slot holds one, a new connection waits.
//! A request whose body is still coming counts as waiting, like one whose
//! head is: a client that drips a body holds a slot no better than one
//! that drips headers.
//!
//! Why this and not a cap per address: a cap per address does nothing
//! against a client with many addresses (an IPv6 /64 holds 2^64 of them,
//! a botnet thousands), and behind a reverse proxy every connection comes
//! from the proxy's address. Closing the longest-waiting connection works
//! whatever the addresses: a real sender writes its request within
//! milliseconds of connecting, so it is the longest waiting only if more
//! than all the slots' worth of new connections arrive in those
//! milliseconds.

use std::collections::{BTreeMap, HashMap};
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};

use http_body::{Body, Frame, SizeHint};

use tokio::sync::Notify;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// The connection slots shared by every HTTP thread.
pub struct Slots {
    max: usize,
    table: Mutex<Table>,
    /// Signalled when a slot frees or a connection starts waiting.
    changed: Notify,
}

#[derive(Default)]
struct Table {
    /// Connection IDs and idle marks come from one counter, so an idle
    /// mark orders connections by when they started waiting.
    next: u64,
    open: HashMap<u64, Connection>,
    /// Waiting connections by idle mark, oldest first, to their ID.
    waiting: BTreeMap<u64, u64>,
}

struct Connection {
    /// Requests in progress; the connection is waiting when 0.
    requests: usize,
    /// The key of the connection in `waiting`, while it waits.
    idle_mark: Option<u64>,
    /// Cancelled to close the connection.
    close: CancellationToken,
}

impl Table {
    fn mark(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    fn open(&mut self) -> (u64, CancellationToken) {
        let id = self.mark();
        let mark = self.mark();
        let close = CancellationToken::new();
        self.open.insert(
            id,
            Connection {
                requests: 0,
                idle_mark: Some(mark),
                close: close.clone(),
            },
        );
        self.waiting.insert(mark, id);
        (id, close)
    }

    fn remove(&mut self, id: u64) -> Option<Connection> {
        let connection = self.open.remove(&id)?;
        if let Some(mark) = connection.idle_mark {
            self.waiting.remove(&mark);
        }
        Some(connection)
    }
}

/// What a new connection got.
enum Acquired {
    Free(Slot),
    /// A slot, taken from a waiting connection.
    Evicted(Slot),
}

impl Slots {
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max,
            table: Mutex::new(Table::default()),
            changed: Notify::new(),
        })
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A slot for a new connection: a free one, else that of the connection
    /// that has waited longest (which is closed), else the first to free.
    pub async fn acquire(self: &Arc<Self>) -> Slot {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            // Registered before looking, so no change in between is missed.
            changed.as_mut().enable();
            match self.try_acquire() {
                Some(Acquired::Free(slot)) => return slot,
                Some(Acquired::Evicted(slot)) => {
                    crate::metrics::connection_evicted();
                    return slot;
                }
                None => changed.await,
            }
        }
    }

    fn try_acquire(self: &Arc<Self>) -> Option<Acquired> {
        let mut table = self.table();
        let evicted = if table.open.len() < self.max {
            false
        } else {
            let (_, &oldest) = table.waiting.first_key_value()?;
            let connection = table.remove(oldest).expect("waiting connections are open");
            connection.close.cancel();
            true
        };
        let (id, close) = table.open();
        let slot = Slot {
            slots: self.clone(),
            id,
            close,
        };
        Some(if evicted {
            Acquired::Evicted(slot)
        } else {
            Acquired::Free(slot)
        })
    }

    /// Connections holding a slot now.
    #[cfg(test)]
    fn open(&self) -> usize {
        self.table().open.len()
    }
}

/// A connection's slot; frees it on drop.
pub struct Slot {
    slots: Arc<Slots>,
    id: u64,
    close: CancellationToken,
}

impl Slot {
    /// Resolves when the connection must close to make room.
    pub fn closed(&self) -> WaitForCancellationFutureOwned {
        self.close.clone().cancelled_owned()
    }

    /// What the connection's service marks requests in progress with.
    pub fn requests(&self) -> Requests {
        Requests {
            slots: self.slots.clone(),
            id: self.id,
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.slots.table().remove(self.id);
        self.slots.changed.notify_one();
    }
}

/// Marks the requests of one connection in progress.
#[derive(Clone)]
pub struct Requests {
    slots: Arc<Slots>,
    id: u64,
}

impl Requests {
    /// Marks a request in progress until the returned guard drops.
    fn start(&self) -> InProgress {
        let mut table = self.slots.table();
        if let Some(connection) = table.open.get_mut(&self.id) {
            connection.requests += 1;
            if let Some(mark) = connection.idle_mark.take() {
                table.waiting.remove(&mark);
            }
        }
        InProgress(self.clone())
    }
}

/// One request of a connection, from its head on: in progress once all of
/// it is in (its body read to the end, or dropped unread: the server
/// answers without it), until every clone is dropped (the answer sent).
#[derive(Clone)]
pub struct Request(Arc<RequestMark>);

struct RequestMark {
    requests: Requests,
    in_progress: OnceLock<InProgress>,
}

impl Requests {
    /// A request whose head was just read.
    pub fn request(&self) -> Request {
        Request(Arc::new(RequestMark {
            requests: self.clone(),
            in_progress: OnceLock::new(),
        }))
    }
}

impl Request {
    /// All of the request is in.
    pub fn received(&self) {
        self.0.in_progress.get_or_init(|| self.0.requests.start());
    }

    /// The request's body, which marks the request received at its end or
    /// when it is dropped.
    pub fn body<B: Body + Unpin>(&self, body: B) -> RequestBody<B> {
        if body.is_end_stream() {
            self.received();
        }
        RequestBody {
            body,
            request: Some(self.clone()),
        }
    }
}

/// A request's body, see [`Request::body`].
pub struct RequestBody<B> {
    body: B,
    request: Option<Request>,
}

impl<B> RequestBody<B> {
    fn received(&mut self) {
        if let Some(request) = self.request.take() {
            request.received();
        }
    }
}

impl<B: Body + Unpin> Body for RequestBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) || self.body.is_end_stream() {
            self.received();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl<B> Drop for RequestBody<B> {
    fn drop(&mut self) {
        self.received();
    }
}

/// A request in progress; the connection waits again when the last drops.
pub struct InProgress(Requests);

impl Drop for InProgress {
    fn drop(&mut self) {
        let slots = &self.0.slots;
        let mut table = slots.table();
        let mark = table.mark();
        let Some(connection) = table.open.get_mut(&self.0.id) else {
            return;
        };
        connection.requests -= 1;
        if connection.requests == 0 {
            connection.idle_mark = Some(mark);
            table.waiting.insert(mark, self.0.id);
            drop(table);
            // A new connection waiting for a slot may take this one's.
            slots.changed.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    async fn soon<F: std::future::Future>(future: F) -> Option<F::Output> {
        tokio::time::timeout(Duration::from_millis(50), future)
            .await
            .ok()
    }

    #[tokio::test]
    async fn a_full_house_closes_the_longest_waiting_connection() {
        let slots = Slots::new(3);
        let first = slots.acquire().await;
        let second = slots.acquire().await;
        let third = slots.acquire().await;
        assert_eq!(slots.open(), 3);
        let fourth = slots.acquire().await;
        assert!(soon(first.closed()).await.is_some(), "the oldest is closed");
        assert!(soon(second.closed()).await.is_none());
        assert_eq!(slots.open(), 3);
        // Dropping the closed one frees nothing more: its slot was taken.
        drop(first);
        assert_eq!(slots.open(), 3);
        drop((second, third, fourth));
        assert_eq!(slots.open(), 0);
    }

    #[tokio::test]
    async fn a_connection_with_a_request_in_progress_is_never_closed() {
        let slots = Slots::new(2);
        let busy = slots.acquire().await;
        let request = busy.requests().start();
        let idle = slots.acquire().await;
        let _new = slots.acquire().await;
        assert!(soon(idle.closed()).await.is_some());
        assert!(soon(busy.closed()).await.is_none());
        // Every slot busy: the next connection waits for one to free...
        let _second_request = _new.requests().start();
        let waiting = tokio::spawn({
            let slots = slots.clone();
            async move { slots.acquire().await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished());
        // ...and takes the slot of the first that waits again.
        drop(request);
        let got = soon(waiting).await.expect("a slot once a request ended");
        drop(got.unwrap());
        assert!(soon(busy.closed()).await.is_some());
    }

    /// A new connection's `acquire`, running.
    fn acquiring(slots: &Arc<Slots>) -> tokio::task::JoinHandle<Slot> {
        let slots = slots.clone();
        tokio::spawn(async move { slots.acquire().await })
    }

    #[tokio::test]
    async fn a_request_whose_body_is_still_coming_is_waiting() {
        use http_body_util::{BodyExt, StreamBody};
        let slots = Slots::new(1);
        let uploading = slots.acquire().await;
        let request = uploading.requests().request();
        let (sender, chunks) = tokio::sync::mpsc::channel::<Result<Frame<&[u8]>, String>>(1);
        let chunks = futures_util::stream::unfold(chunks, |mut chunks| async move {
            chunks.recv().await.map(|chunk| (chunk, chunks))
        });
        let mut body = request.body(StreamBody::new(Box::pin(chunks)));
        sender.send(Ok(Frame::data(&b"part"[..]))).await.unwrap();
        body.frame().await.unwrap().unwrap();
        let _newer = slots.acquire().await;
        assert!(soon(uploading.closed()).await.is_some());
    }

    #[tokio::test]
    async fn a_request_is_in_progress_from_its_whole_body_until_its_answer_is_sent() {
        use http_body_util::{BodyExt, Full};
        let slots = Slots::new(1);
        let answering = slots.acquire().await;
        let request = answering.requests().request();
        let mut body = request.body(Full::new(&b"all of it"[..]));
        body.frame().await.unwrap().unwrap();
        // The answer holds a clone; the handler dropped the rest.
        let answer = request.clone();
        drop((body, request));
        let newer = acquiring(&slots);
        assert!(soon(answering.closed()).await.is_none(), "in progress");
        drop(answer);
        assert!(soon(answering.closed()).await.is_some(), "answered");
        drop(newer);
    }

    #[tokio::test]
    async fn a_request_body_dropped_unread_is_answered_without_it() {
        let slots = Slots::new(1);
        let connection = slots.acquire().await;
        let request = connection.requests().request();
        let never = futures_util::stream::pending::<Result<Frame<&[u8]>, String>>();
        drop(request.body(http_body_util::StreamBody::new(never)));
        let newer = acquiring(&slots);
        assert!(soon(connection.closed()).await.is_none(), "answering");
        drop(request);
        assert!(soon(connection.closed()).await.is_some());
        drop(newer);
    }

    #[tokio::test]
    async fn a_keep_alive_connection_waits_again_after_its_request() {
        let slots = Slots::new(2);
        let old = slots.acquire().await;
        let served = slots.acquire().await;
        // `served` had a request after `old` started waiting: `old` has
        // waited longer.
        drop(served.requests().start());
        let _new = slots.acquire().await;
        assert!(soon(old.closed()).await.is_some());
        assert!(soon(served.closed()).await.is_none());
    }
}
