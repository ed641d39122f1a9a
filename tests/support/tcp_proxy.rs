//! A TCP proxy a test can cut: between servers and their database it plays a database
//! restart as the servers see it (every connection dropped, new ones refused, then
//! service again) without touching the real database, which other tests share.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Forwards every connection made to [`TcpProxy::addr`] to `upstream`. Stops when dropped.
pub struct TcpProxy {
    addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    accept: JoinHandle<()>,
}

#[derive(Default)]
struct Shared {
    down: bool,
    /// Connections being forwarded, aborted (both sockets closed) by [`TcpProxy::cut`].
    piping: Vec<JoinHandle<()>>,
}

impl TcpProxy {
    /// Listens on a port of 127.0.0.1 the system picks.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy binds");
        let addr = listener.local_addr().expect("proxy address");
        let shared = Arc::new(Mutex::new(Shared::default()));
        let state = shared.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                // The check and the registration under one lock: a connection accepted
                // during a cut is never forwarded, one accepted before it is always aborted.
                let mut s = state.lock().unwrap_or_else(PoisonError::into_inner);
                if s.down {
                    // Closed at once: the client's start-up fails as against a server
                    // that is shutting down.
                    drop(client);
                    continue;
                }
                s.piping.retain(|h| !h.is_finished());
                let pipe = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                s.piping.push(pipe);
            }
        });
        Self {
            addr,
            shared,
            accept,
        }
    }

    /// Where clients connect.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Drops every forwarded connection and refuses new ones until [`Self::restore`];
    /// returns once every forwarded socket is closed.
    pub async fn cut(&self) {
        let piping = {
            let mut s = self.lock();
            s.down = true;
            std::mem::take(&mut s.piping)
        };
        for pipe in piping {
            pipe.abort();
            let _ = pipe.await;
        }
    }

    /// Forwards new connections again.
    pub fn restore(&self) {
        self.lock().down = false;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.accept.abort();
        for pipe in self.lock().piping.drain(..) {
            pipe.abort();
        }
    }
}
