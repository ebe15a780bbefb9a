//! A client connection's transport: plain TCP, or TLS over TCP (see `tls`).
//!
//! The connection and its request body share the transport (`Arc`) and use it without `&mut`:
//! non-blocking reads and writes that say `WouldBlock`, then readiness, as tokio's `TcpStream`
//! offers (`try_read_buf`, `poll_read_ready`, `try_write`, `poll_write_ready`). For TLS the
//! same calls go through a rustls server connection behind a mutex (one task uses it at a
//! time, so it is never contended): a read decrypts what has arrived, and a write encrypts
//! into rustls' buffer and sends what the socket takes. What a write left in that buffer is
//! sent by [`ClientIo::poll_flush`], which the writer calls at the end of every piece.

use std::io::{self, Read as _, Write as _};
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll, ready};

use bytes::BytesMut;
use rustls::ServerConnection;
use tokio::net::TcpStream;

/// A client connection's transport.
pub(crate) enum ClientIo {
    /// Plain HTTP.
    Plain(TcpStream),
    /// HTTPS: the TCP stream and the TLS session on it (handshake done); boxed, as it is
    /// large beside a plain stream.
    Tls(Box<TlsIo>),
}

/// A TLS session over a TCP stream, used without blocking.
pub(crate) struct TlsIo {
    tcp: TcpStream,
    session: Mutex<ServerConnection>,
}

/// Reads and writes of a `&TcpStream` as `std::io`, without blocking (what rustls reads
/// records from and writes records to).
struct NonBlocking<'a>(&'a TcpStream);

impl io::Read for NonBlocking<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.try_read(buf)
    }
}

impl io::Write for NonBlocking<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl TlsIo {
    /// After a completed handshake.
    pub(crate) fn new(tcp: TcpStream, session: ServerConnection) -> Self {
        Self {
            tcp,
            session: Mutex::new(session),
        }
    }

    fn session(&self) -> MutexGuard<'_, ServerConnection> {
        sfkeep::sync::lock(&self.session)
    }

    /// Sends what rustls holds; `WouldBlock` when the socket takes no more.
    fn send_pending(&self, s: &mut ServerConnection) -> io::Result<()> {
        while s.wants_write() {
            s.write_tls(&mut NonBlocking(&self.tcp))?;
        }
        Ok(())
    }

    fn try_read(&self, dst: &mut [u8]) -> io::Result<usize> {
        let mut s = self.session();
        loop {
            match s.reader().read(dst) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // The peer closed without `close_notify`, as many HTTP clients do: an end of
                // stream like any other (HTTP's own framing tells a cut-off message).
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) => return Err(e),
            }
            // Nothing decrypted: read records. `WouldBlock` here comes from the socket, so the
            // caller's readiness wait is the right one.
            s.read_tls(&mut NonBlocking(&self.tcp))?;
            let processed = s.process_new_packets();
            // An alert for a bad record, or a reply to a key update: sent now if it fits.
            match self.send_pending(&mut s) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            if let Err(e) = processed {
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
        }
    }

    fn try_write(&self, b: &[u8]) -> io::Result<usize> {
        let mut s = self.session();
        // What an earlier write left goes first: until it has, nothing more is taken.
        self.send_pending(&mut s)?;
        let n = s.writer().write(b)?;
        if n == 0 && !b.is_empty() {
            return Err(io::ErrorKind::WriteZero.into());
        }
        match self.send_pending(&mut s) {
            Ok(()) => Ok(n),
            // Taken, and held until the next write or flush.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(n),
            Err(e) => Err(e),
        }
    }

    fn poll_flush(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            match self.send_pending(&mut self.session()) {
                Ok(()) => return Poll::Ready(Ok(())),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    ready!(self.tcp.poll_write_ready(cx))?;
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl ClientIo {
    /// Reads what has arrived into `buf`'s spare capacity; `Ok(0)` at the end of the stream.
    pub(crate) fn try_read_buf(&self, buf: &mut BytesMut) -> io::Result<usize> {
        match self {
            ClientIo::Plain(s) => s.try_read_buf(buf),
            ClientIo::Tls(t) => {
                let start = buf.len();
                let room = (buf.capacity() - start).clamp(1, 32 << 10);
                buf.resize(start + room, 0);
                let got = t.try_read(&mut buf[start..]);
                buf.truncate(start + *got.as_ref().unwrap_or(&0));
                got
            }
        }
    }

    /// Ready when a read may make progress (call after `try_read_buf` said `WouldBlock`).
    pub(crate) fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.tcp().poll_read_ready(cx)
    }

    /// Writes some of `b`; for TLS, what is taken may wait in the session for
    /// [`ClientIo::poll_flush`].
    pub(crate) fn try_write(&self, b: &[u8]) -> io::Result<usize> {
        match self {
            ClientIo::Plain(s) => s.try_write(b),
            ClientIo::Tls(t) => t.try_write(b),
        }
    }

    /// Ready when a write may make progress (call after `try_write` said `WouldBlock`).
    pub(crate) fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.tcp().poll_write_ready(cx)
    }

    /// Sends what TLS holds from earlier writes (nothing to do for plain TCP).
    pub(crate) fn poll_flush(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            ClientIo::Plain(_) => Poll::Ready(Ok(())),
            ClientIo::Tls(t) => t.poll_flush(cx),
        }
    }

    /// The TCP stream underneath.
    pub(crate) fn tcp(&self) -> &TcpStream {
        match self {
            ClientIo::Plain(s) => s,
            ClientIo::Tls(t) => &t.tcp,
        }
    }

    /// Ends the sending side (TLS `close_notify` first, best effort) and returns the TCP
    /// stream, from which what the client still sends may be read and dropped.
    pub(crate) async fn close_write(self) -> io::Result<TcpStream> {
        use tokio::io::AsyncWriteExt;
        let mut tcp = match self {
            ClientIo::Plain(s) => s,
            ClientIo::Tls(t) => {
                t.session().send_close_notify();
                std::future::poll_fn(|cx| t.poll_flush(cx)).await?;
                t.tcp
            }
        };
        tcp.shutdown().await?;
        Ok(tcp)
    }
}
