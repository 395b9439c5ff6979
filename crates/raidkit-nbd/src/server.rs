//! The NBD server: the handshake, then requests served concurrently by a shared pool of
//! worker threads.
//!
//! Each connection has one thread that reads: it negotiates, then reads request after
//! request and hands each to the pool, after taking its share of the connection's budget
//! (requests and bytes in flight), so a client can neither grow the server's memory
//! without bound nor starve the others. Workers run the request against the [`Export`]
//! and write the reply under the connection's write lock; replies may come back out of
//! order, as the protocol allows. A stop (the caller's flag) closes the listener, shuts
//! the reading side of every connection, and waits for every request in flight to be
//! answered before [`Server::serve`] returns.
//!
//! Owns connections, the handshake and request dispatch; must not know what an array is
//! (that is [`Export`]).

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::proto::{self, Request, cflag, chunk, cmd, errno, opt, rep, tflag};

/// A failed export operation: the protocol error to send, and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportError {
    /// The wire error ([`proto::errno`]).
    pub errno: u32,
    /// What went wrong, for structured replies and the log.
    pub message: String,
}

/// What the server exports: a byte-addressed device that may be used from many threads.
pub trait Export: Send + Sync {
    /// Bytes.
    fn size(&self) -> u64;
    /// Whether writes are refused.
    fn read_only(&self) -> bool;
    /// The preferred I/O size (a power of two).
    fn preferred_block(&self) -> u32;
    /// Reads `buf.len()` bytes at `offset`.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<(), ExportError>;
    /// Writes `buf` at `offset`.
    fn write_at(&self, buf: &[u8], offset: u64) -> Result<(), ExportError>;
    /// Makes every completed write durable.
    fn flush(&self) -> Result<(), ExportError>;
    /// Writes `len` zero bytes at `offset`.
    fn write_zeroes(&self, offset: u64, len: u64) -> Result<(), ExportError>;
    /// Discards `len` bytes at `offset` (they may read back as zeros or as before).
    fn discard(&self, offset: u64, len: u64) -> Result<(), ExportError>;
}

/// How the server behaves.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// The export's name (clients may also ask for `""`, the default export).
    pub name: String,
    /// A description sent to clients that ask.
    pub description: String,
    /// The minimum block size advertised (and enforced on clients that asked for it).
    pub min_block: u32,
    /// The largest read or write payload.
    pub max_payload: u32,
    /// Requests in flight per connection.
    pub max_requests: usize,
    /// Payload bytes in flight per connection.
    pub max_bytes: u64,
    /// Connections at once (more are closed at once).
    pub max_clients: usize,
    /// Worker threads shared by all connections.
    pub workers: usize,
    /// How long a client may take over the handshake.
    pub handshake_timeout: Duration,
}

impl Default for ServerOptions {
    fn default() -> ServerOptions {
        ServerOptions {
            name: String::new(),
            description: String::new(),
            min_block: 512,
            max_payload: 32 << 20,
            max_requests: 64,
            max_bytes: 128 << 20,
            max_clients: 16,
            workers: std::thread::available_parallelism().map_or(4, |n| n.get() * 4),
            handshake_timeout: Duration::from_secs(30),
        }
    }
}

/// What the server did, for the log at its end.
#[derive(Debug, Default)]
pub struct ServerStats {
    /// Connections accepted.
    pub connections: AtomicU64,
    /// Connections refused (too many at once).
    pub refused: AtomicU64,
    /// Requests answered.
    pub requests: AtomicU64,
    /// Requests answered with an error.
    pub errors: AtomicU64,
}

type Job = Box<dyn FnOnce() + Send>;

/// A socket the server talks over.
trait Conn: Read + Write + Send + Sync {
    fn clone_conn(&self) -> io::Result<Box<dyn Conn>>;
    fn shutdown_read(&self);
    fn shutdown_both(&self);
    fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()>;
}

/// Unix and TCP streams are connections alike.
macro_rules! conn_for {
    ($stream:ty) => {
        impl Conn for $stream {
            fn clone_conn(&self) -> io::Result<Box<dyn Conn>> {
                Ok(Box::new(self.try_clone()?))
            }
            fn shutdown_read(&self) {
                let _ = self.shutdown(Shutdown::Read);
            }
            fn shutdown_both(&self) {
                let _ = self.shutdown(Shutdown::Both);
            }
            fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
                <$stream>::set_read_timeout(self, t)
            }
        }
    };
}

conn_for!(UnixStream);
conn_for!(TcpStream);

/// A listening socket.
pub enum Listener {
    /// A Unix socket.
    Unix(UnixListener),
    /// A TCP socket.
    Tcp(TcpListener),
}

impl Listener {
    fn accept(&self) -> io::Result<Box<dyn Conn>> {
        match self {
            Listener::Unix(l) => {
                let (s, _) = l.accept()?;
                s.set_nonblocking(false)?;
                Ok(Box::new(s))
            }
            Listener::Tcp(l) => {
                let (s, _) = l.accept()?;
                s.set_nonblocking(false)?;
                let _ = s.set_nodelay(true);
                Ok(Box::new(s))
            }
        }
    }

    fn set_nonblocking(&self) -> io::Result<()> {
        match self {
            Listener::Unix(l) => l.set_nonblocking(true),
            Listener::Tcp(l) => l.set_nonblocking(true),
        }
    }
}

/// The server.
pub struct Server {
    export: Arc<dyn Export>,
    options: ServerOptions,
    jobs: mpsc::Sender<Job>,
    workers: Vec<JoinHandle<()>>,
    /// What it did.
    pub stats: Arc<ServerStats>,
}

impl Server {
    /// A server of `export` (its worker threads start now).
    pub fn new(export: Arc<dyn Export>, options: ServerOptions) -> Server {
        let (jobs, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let workers = (0..options.workers.max(1))
            .map(|i| {
                let rx = rx.clone();
                std::thread::Builder::new()
                    .name(format!("nbd-worker-{i}"))
                    .spawn(move || {
                        loop {
                            let job = {
                                let rx = rx.lock().unwrap_or_else(|e| e.into_inner());
                                rx.recv()
                            };
                            match job {
                                Ok(job) => job(),
                                Err(_) => return,
                            }
                        }
                    })
                    .expect("spawn a worker thread")
            })
            .collect();
        Server {
            export,
            options,
            jobs,
            workers,
            stats: Arc::new(ServerStats::default()),
        }
    }

    /// Serves one client already connected on `stream`, on the calling thread, until it
    /// disconnects or misbehaves (for tests and fuzzing: the same handshake and request
    /// handling as [`Server::serve`]).
    pub fn serve_stream(&self, stream: UnixStream) -> io::Result<()> {
        self.client().run(Box::new(stream))
    }

    fn client(&self) -> Client {
        Client {
            export: self.export.clone(),
            options: self.options.clone(),
            jobs: self.jobs.clone(),
            stats: self.stats.clone(),
        }
    }

    /// Accepts and serves clients on `listener` until `stop` is set, then finishes every
    /// request in flight and returns (the export is not flushed here: the caller closes
    /// it).
    pub fn serve(&self, listener: Listener, stop: &AtomicBool) -> io::Result<()> {
        listener.set_nonblocking()?;
        let live = Arc::new(AtomicUsize::new(0));
        let mut connections: Vec<(Box<dyn Conn>, JoinHandle<()>)> = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok(conn) => {
                    connections.retain(|(_, h)| !h.is_finished());
                    if live.load(Ordering::Acquire) >= self.options.max_clients {
                        self.stats.refused.fetch_add(1, Ordering::Relaxed);
                        log::warn!(
                            "a client was turned away: {} connections already",
                            self.options.max_clients
                        );
                        continue;
                    }
                    self.stats.connections.fetch_add(1, Ordering::Relaxed);
                    let handle = conn.clone_conn()?;
                    let client = self.client();
                    live.fetch_add(1, Ordering::AcqRel);
                    let live = live.clone();
                    let thread = std::thread::Builder::new()
                        .name("nbd-connection".to_string())
                        .spawn(move || {
                            if let Err(e) = client.run(conn) {
                                log::info!("a client connection ended: {e}");
                            }
                            live.fetch_sub(1, Ordering::AcqRel);
                        })?;
                    connections.push((handle, thread));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    connections.retain(|(_, h)| !h.is_finished());
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        // Stop reading; every connection answers what it took, then ends.
        for (conn, _) in &connections {
            conn.shutdown_read();
        }
        for (_, thread) in connections {
            let _ = thread.join();
        }
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Closing the channel ends the workers once the queue is empty.
        let (dead, _) = mpsc::channel();
        self.jobs = dead;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

/// Requests and bytes in flight on one connection.
struct Budget {
    state: Mutex<(usize, u64)>,
    freed: Condvar,
}

impl Budget {
    fn take(&self, bytes: u64, max_requests: usize, max_bytes: u64) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        // One request larger than the byte budget still runs, alone.
        while st.0 >= max_requests || (st.0 > 0 && st.1 + bytes > max_bytes) {
            st = self.freed.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        st.0 += 1;
        st.1 += bytes;
    }

    fn give(&self, bytes: u64) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.0 -= 1;
        st.1 -= bytes;
        self.freed.notify_all();
    }

    fn wait_idle(&self) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        while st.0 > 0 {
            st = self.freed.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// One connection's state.
struct Client {
    export: Arc<dyn Export>,
    options: ServerOptions,
    jobs: mpsc::Sender<Job>,
    stats: Arc<ServerStats>,
}

/// What the handshake agreed.
struct Agreed {
    structured: bool,
    /// The client asked for block sizes: it promised to honour them.
    aligned: bool,
}

/// Largest option data accepted (an export name is at most 4096 bytes).
const MAX_OPTION: u32 = 16 << 10;

fn read_exact(conn: &mut dyn Conn, buf: &mut [u8]) -> io::Result<()> {
    conn.read_exact(buf)
}

/// Reads and drops `len` bytes.
fn skip(conn: &mut dyn Conn, mut len: u64) -> io::Result<()> {
    let mut buf = vec![0u8; 64 << 10];
    while len > 0 {
        let n = (len as usize).min(buf.len());
        conn.read_exact(&mut buf[..n])?;
        len -= n as u64;
    }
    Ok(())
}

impl Client {
    fn flags(&self) -> u16 {
        let mut flags = tflag::HAS_FLAGS | tflag::SEND_FLUSH | tflag::SEND_FUA;
        if self.export.read_only() {
            flags |= tflag::READ_ONLY;
        } else {
            flags |= tflag::SEND_TRIM | tflag::SEND_WRITE_ZEROES;
        }
        // A flush reaches every member whichever connection sent it, so it covers the
        // writes completed on all of them.
        flags | tflag::CAN_MULTI_CONN
    }

    /// Serves one connection to its end, then closes it for every holder of the socket
    /// (the accept loop keeps a handle to stop it), so the client sees the end at once.
    fn run(self, mut conn: Box<dyn Conn>) -> io::Result<()> {
        let closer = conn.clone_conn()?;
        let result = (|| {
            conn.set_read_timeout(Some(self.options.handshake_timeout))?;
            let Some(agreed) = self.handshake(conn.as_mut())? else {
                return Ok(());
            };
            conn.set_read_timeout(None)?;
            self.transmission(conn, agreed)
        })();
        closer.shutdown_both();
        result
    }

    /// Negotiates; `None` when the client ended it (abort, or an export it cannot have).
    fn handshake(&self, conn: &mut dyn Conn) -> io::Result<Option<Agreed>> {
        conn.write_all(&proto::greeting())?;
        let mut flags = [0u8; 4];
        read_exact(conn, &mut flags)?;
        let flags = u32::from_be_bytes(flags);
        if flags & proto::CLIENT_FIXED_NEWSTYLE == 0
            || flags & !(proto::CLIENT_FIXED_NEWSTYLE | proto::CLIENT_NO_ZEROES) != 0
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("client flags {flags:#x} not supported (fixed newstyle only)"),
            ));
        }
        let zeroes = flags & proto::CLIENT_NO_ZEROES == 0;
        let mut structured = false;
        loop {
            let mut header = [0u8; 16];
            read_exact(conn, &mut header)?;
            let h = proto::parse_option_header(&header)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            if h.length > MAX_OPTION {
                skip(conn, u64::from(h.length))?;
                conn.write_all(&proto::option_reply(h.option, rep::ERR_TOO_BIG, b""))?;
                continue;
            }
            let mut data = vec![0u8; h.length as usize];
            read_exact(conn, &mut data)?;
            let reply = |conn: &mut dyn Conn, kind: u32, data: &[u8]| {
                conn.write_all(&proto::option_reply(h.option, kind, data))
            };
            match h.option {
                opt::EXPORT_NAME => {
                    if !self.names(&data) {
                        // No error reply exists for this option: the connection ends.
                        return Ok(None);
                    }
                    conn.write_all(&proto::export_name_reply(
                        self.export.size(),
                        self.flags(),
                        zeroes,
                    ))?;
                    return Ok(Some(Agreed {
                        structured,
                        aligned: false,
                    }));
                }
                opt::ABORT => {
                    let _ = reply(conn, rep::ACK, b"");
                    return Ok(None);
                }
                opt::LIST => {
                    if !data.is_empty() {
                        reply(conn, rep::ERR_INVALID, b"")?;
                        continue;
                    }
                    let name = self.options.name.as_bytes();
                    let mut entry = (name.len() as u32).to_be_bytes().to_vec();
                    entry.extend_from_slice(name);
                    reply(conn, rep::SERVER, &entry)?;
                    reply(conn, rep::ACK, b"")?;
                }
                opt::STRUCTURED_REPLY => {
                    if !data.is_empty() {
                        reply(conn, rep::ERR_INVALID, b"")?;
                        continue;
                    }
                    structured = true;
                    reply(conn, rep::ACK, b"")?;
                }
                opt::INFO | opt::GO => {
                    let Ok(request) = proto::parse_info_request(&data) else {
                        reply(conn, rep::ERR_INVALID, b"")?;
                        continue;
                    };
                    if !self.names(&request.name) {
                        reply(conn, rep::ERR_UNKNOWN, b"no such export")?;
                        continue;
                    }
                    reply(
                        conn,
                        rep::INFO,
                        &proto::info_export(self.export.size(), self.flags()),
                    )?;
                    if request.infos.contains(&proto::info::NAME) {
                        reply(
                            conn,
                            rep::INFO,
                            &proto::info_text(proto::info::NAME, &self.options.name),
                        )?;
                    }
                    if request.infos.contains(&proto::info::DESCRIPTION)
                        && !self.options.description.is_empty()
                    {
                        reply(
                            conn,
                            rep::INFO,
                            &proto::info_text(proto::info::DESCRIPTION, &self.options.description),
                        )?;
                    }
                    let preferred = self
                        .export
                        .preferred_block()
                        .clamp(self.options.min_block, self.options.max_payload);
                    reply(
                        conn,
                        rep::INFO,
                        &proto::info_block_size(
                            self.options.min_block,
                            preferred,
                            self.options.max_payload,
                        ),
                    )?;
                    reply(conn, rep::ACK, b"")?;
                    if h.option == opt::GO {
                        return Ok(Some(Agreed {
                            structured,
                            aligned: request.infos.contains(&proto::info::BLOCK_SIZE),
                        }));
                    }
                }
                _ => reply(conn, rep::ERR_UNSUP, b"")?,
            }
        }
    }

    /// Whether `name` names the export (`""` is the default export).
    fn names(&self, name: &[u8]) -> bool {
        name.is_empty() || name == self.options.name.as_bytes()
    }

    /// Why `r` cannot be served (a wire error), checked before anything is done.
    fn refuse(&self, r: &Request, agreed: &Agreed) -> Option<(u32, String)> {
        let size = self.export.size();
        let end = r.offset.checked_add(u64::from(r.length));
        let writes = matches!(r.kind, cmd::WRITE | cmd::TRIM | cmd::WRITE_ZEROES);
        if writes && self.export.read_only() {
            return Some((errno::EPERM, "the export is read-only".to_string()));
        }
        if matches!(r.kind, cmd::READ | cmd::WRITE) && r.length > self.options.max_payload {
            return Some((
                errno::EOVERFLOW,
                format!(
                    "{} bytes is over the maximum payload of {}",
                    r.length, self.options.max_payload
                ),
            ));
        }
        if matches!(
            r.kind,
            cmd::READ | cmd::WRITE | cmd::TRIM | cmd::WRITE_ZEROES
        ) {
            if end.is_none_or(|e| e > size) {
                let error = if writes { errno::ENOSPC } else { errno::EINVAL };
                return Some((
                    error,
                    format!(
                        "bytes {}..+{} are past the end of the export ({size} bytes)",
                        r.offset, r.length
                    ),
                ));
            }
            let min = u64::from(self.options.min_block);
            // Aligned start, and an aligned length or one that ends at the export's end.
            let start_ok = r.offset.is_multiple_of(min);
            let len_ok = u64::from(r.length).is_multiple_of(min) || end == Some(size);
            if agreed.aligned && !(start_ok && len_ok) {
                return Some((
                    errno::EINVAL,
                    format!(
                        "bytes {}..+{} are not aligned to the block size {min} agreed",
                        r.offset, r.length
                    ),
                ));
            }
        }
        None
    }

    fn transmission(&self, mut conn: Box<dyn Conn>, agreed: Agreed) -> io::Result<()> {
        let writer: Arc<Mutex<Box<dyn Conn>>> = Arc::new(Mutex::new(conn.clone_conn()?));
        let budget = Arc::new(Budget {
            state: Mutex::new((0, 0)),
            freed: Condvar::new(),
        });
        let wrote = Arc::new(AtomicBool::new(false));
        let agreed = Arc::new(agreed);
        let result = loop {
            let mut header = [0u8; proto::REQUEST_SIZE];
            match conn.read_exact(&mut header) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break Ok(()),
                Err(e) => break Err(e),
            }
            let r = match proto::parse_request(&header) {
                Ok(r) => r,
                Err(e) => break Err(io::Error::new(io::ErrorKind::InvalidData, e)),
            };
            if r.kind == cmd::DISC {
                break Ok(());
            }
            let refused = self.refuse(&r, &agreed);
            // A write's payload is read even when it is refused, to stay in step.
            // Its share of the budget is taken before its payload is read or its data
            // allocated, and given back once it is answered.
            let bytes = if refused.is_none() && matches!(r.kind, cmd::READ | cmd::WRITE) {
                u64::from(r.length)
            } else {
                0
            };
            budget.take(bytes, self.options.max_requests, self.options.max_bytes);
            let mut payload = Vec::new();
            if r.kind == cmd::WRITE {
                let read = if refused.is_some() {
                    skip(conn.as_mut(), u64::from(r.length))
                } else {
                    payload = vec![0u8; r.length as usize];
                    conn.read_exact(&mut payload)
                };
                if let Err(e) = read {
                    budget.give(bytes);
                    break Err(e);
                }
            }
            let unknown = !matches!(
                r.kind,
                cmd::READ | cmd::WRITE | cmd::FLUSH | cmd::TRIM | cmd::WRITE_ZEROES
            );
            let refused = refused.or_else(|| {
                unknown.then(|| {
                    (
                        errno::EINVAL,
                        format!("command {} is not supported", r.kind),
                    )
                })
            });
            let job = {
                let export = self.export.clone();
                let writer = writer.clone();
                let budget = budget.clone();
                let stats = self.stats.clone();
                let agreed = agreed.clone();
                let wrote = wrote.clone();
                move || {
                    if matches!(r.kind, cmd::WRITE | cmd::TRIM | cmd::WRITE_ZEROES) {
                        wrote.store(true, Ordering::Release);
                    }
                    let reply = match refused {
                        Some(error) => Reply::Error(error),
                        None => execute(export.as_ref(), &r, &payload),
                    };
                    stats.requests.fetch_add(1, Ordering::Relaxed);
                    if !matches!(reply, Reply::Done | Reply::Data(_)) {
                        stats.errors.fetch_add(1, Ordering::Relaxed);
                    }
                    let (head, data) = encode(&r, reply, agreed.structured);
                    {
                        // Header and data as they are (no copy of the data into one
                        // buffer), together under the lock.
                        let mut w = writer.lock().unwrap_or_else(|e| e.into_inner());
                        let sent = w
                            .write_all(&head)
                            .and_then(|()| data.as_ref().map_or(Ok(()), |d| w.write_all(d)));
                        if let Err(e) = sent {
                            log::info!("a reply could not be sent: {e}");
                        }
                    }
                    budget.give(bytes);
                }
            };
            if self.jobs.send(Box::new(job)).is_err() {
                break Err(io::Error::other("the server is stopping"));
            }
        };
        budget.wait_idle();
        if wrote.load(Ordering::Acquire)
            && let Err(e) = self.export.flush()
        {
            log::warn!("flush at the end of a connection failed: {}", e.message);
        }
        result
    }
}

/// A request's outcome.
enum Reply {
    Done,
    Data(Vec<u8>),
    /// Parts of a read: data or an error per piece.
    Pieces(Vec<(u64, Result<Vec<u8>, ExportError>)>),
    Error((u32, String)),
}

/// Pieces a failed read is retried in, so the reply can say which parts failed.
const PIECE: u64 = 64 << 10;

fn execute(export: &dyn Export, r: &Request, payload: &[u8]) -> Reply {
    let fua = r.flags & cflag::FUA != 0;
    let done = |result: Result<(), ExportError>| match result {
        Ok(()) => Reply::Done,
        Err(e) => Reply::Error((e.errno, e.message)),
    };
    let then_fua = |result: Result<(), ExportError>| {
        result.and_then(|()| if fua { export.flush() } else { Ok(()) })
    };
    match r.kind {
        cmd::READ => {
            let mut buf = vec![0u8; r.length as usize];
            match export.read_at(&mut buf, r.offset) {
                Ok(()) => Reply::Data(buf),
                Err(_) => {
                    let mut pieces = Vec::new();
                    let mut at = 0u64;
                    while at < u64::from(r.length) {
                        let len = PIECE.min(u64::from(r.length) - at) as usize;
                        let mut piece = vec![0u8; len];
                        let got = export.read_at(&mut piece, r.offset + at).map(|()| piece);
                        pieces.push((r.offset + at, got));
                        at += len as u64;
                    }
                    Reply::Pieces(pieces)
                }
            }
        }
        cmd::WRITE => done(then_fua(export.write_at(payload, r.offset))),
        cmd::FLUSH => done(export.flush()),
        cmd::TRIM => done(then_fua(export.discard(r.offset, u64::from(r.length)))),
        cmd::WRITE_ZEROES => done(then_fua(export.write_zeroes(r.offset, u64::from(r.length)))),
        _ => Reply::Error((errno::EINVAL, "unsupported command".to_string())),
    }
}

/// The reply's bytes: a header (or a whole reply), and a read's data to follow it.
fn encode(r: &Request, reply: Reply, structured: bool) -> (Vec<u8>, Option<Vec<u8>>) {
    match reply {
        Reply::Data(data) if structured => {
            let mut head = proto::chunk_header(
                chunk::FLAG_DONE,
                chunk::OFFSET_DATA,
                r.cookie,
                8 + data.len() as u32,
            )
            .to_vec();
            head.extend_from_slice(&r.offset.to_be_bytes());
            (head, Some(data))
        }
        Reply::Data(data) => (proto::simple_reply(r.cookie, 0).to_vec(), Some(data)),
        other => (encode_whole(r, other, structured), None),
    }
}

/// A reply without a separate data part: simple, or structured for reads when agreed.
fn encode_whole(r: &Request, reply: Reply, structured: bool) -> Vec<u8> {
    let first_error = |pieces: &[(u64, Result<Vec<u8>, ExportError>)]| {
        pieces
            .iter()
            .find_map(|(_, p)| p.as_ref().err().map(|e| e.errno))
            .unwrap_or(errno::EIO)
    };
    match reply {
        Reply::Done => proto::simple_reply(r.cookie, 0).to_vec(),
        Reply::Error((error, message)) => {
            if structured && r.kind == cmd::READ {
                proto::error_offset_chunk(chunk::FLAG_DONE, r.cookie, error, &message, r.offset)
            } else {
                proto::simple_reply(r.cookie, error).to_vec()
            }
        }
        Reply::Data(data) if structured => {
            let mut b = Vec::with_capacity(28 + data.len());
            b.extend_from_slice(&proto::chunk_header(
                chunk::FLAG_DONE,
                chunk::OFFSET_DATA,
                r.cookie,
                8 + data.len() as u32,
            ));
            b.extend_from_slice(&r.offset.to_be_bytes());
            b.extend_from_slice(&data);
            b
        }
        Reply::Data(data) => {
            let mut b = proto::simple_reply(r.cookie, 0).to_vec();
            b.extend_from_slice(&data);
            b
        }
        Reply::Pieces(pieces) if structured && r.flags & cflag::DF == 0 => {
            let mut b = Vec::new();
            for (offset, piece) in &pieces {
                match piece {
                    Ok(data) => {
                        b.extend_from_slice(&proto::chunk_header(
                            0,
                            chunk::OFFSET_DATA,
                            r.cookie,
                            8 + data.len() as u32,
                        ));
                        b.extend_from_slice(&offset.to_be_bytes());
                        b.extend_from_slice(data);
                    }
                    Err(e) => b.extend_from_slice(&proto::error_offset_chunk(
                        0, r.cookie, e.errno, &e.message, *offset,
                    )),
                }
            }
            b.extend_from_slice(&proto::chunk_header(
                chunk::FLAG_DONE,
                chunk::NONE,
                r.cookie,
                0,
            ));
            b
        }
        Reply::Pieces(pieces) => {
            let error = first_error(&pieces);
            let message = pieces
                .iter()
                .find_map(|(_, p)| p.as_ref().err().map(|e| e.message.clone()))
                .unwrap_or_default();
            encode_whole(r, Reply::Error((error, message)), structured)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    use crate::testing::converse;

    /// A well-formed client: GO, then a write, a read of it, and a disconnect.
    fn good_client() -> Vec<u8> {
        let mut b = 3u32.to_be_bytes().to_vec();
        b.extend_from_slice(&proto::IHAVEOPT.to_be_bytes());
        b.extend_from_slice(&opt::GO.to_be_bytes());
        b.extend_from_slice(&6u32.to_be_bytes());
        b.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        let req = |kind, offset, length| {
            proto::encode_request(&Request {
                flags: 0,
                kind,
                cookie: 9,
                offset,
                length,
            })
        };
        b.extend_from_slice(&req(cmd::WRITE, 4096, 4));
        b.extend_from_slice(b"abcd");
        b.extend_from_slice(&req(cmd::READ, 4096, 4));
        b.extend_from_slice(&req(cmd::DISC, 0, 0));
        b
    }

    #[test]
    fn a_good_client_reads_back_what_it_wrote() {
        let out = converse(&good_client());
        assert_eq!(&out[..8], b"NBDMAGIC");
        // The read's simple reply ends the conversation: its data is the write's.
        assert_eq!(&out[out.len() - 4..], b"abcd");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Any bytes from a client, or a good conversation with some bytes changed: the
        /// server answers or hangs up, and never panics or hangs.
        #[test]
        fn any_client_bytes_end_cleanly(noise in proptest::collection::vec(any::<u8>(), 0..300),
                                        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4)) {
            let _ = converse(&noise);
            let mut good = good_client();
            for (at, x) in flips {
                let i = at % good.len();
                good[i] ^= x;
            }
            let _ = converse(&good);
        }
    }
}
