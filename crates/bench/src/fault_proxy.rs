//! A TCP proxy on 127.0.0.1 that tests put between Logbook and a dependency
//! (PostgreSQL, Redis) and cut to simulate an outage, without touching the
//! shared service itself.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// A running proxy; dropping it stops it and closes every connection.
#[derive(Debug)]
pub struct FaultProxy {
    address: SocketAddr,
    open: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Listens on a free port of 127.0.0.1 and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> std::io::Result<FaultProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let (open, watched) = watch::channel(true);
        let task = tokio::spawn(forward(listener, upstream, Arc::new(watched)));
        Ok(FaultProxy {
            address,
            open,
            task,
        })
    }

    /// Where clients connect.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Cuts every open connection and refuses new ones until [`restore`](Self::restore).
    pub fn cut(&self) {
        self.open.send_replace(false);
    }

    /// Forwards again.
    pub fn restore(&self) {
        self.open.send_replace(true);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Accepts and forwards while open; a cut aborts the connections' tasks,
/// which closes both of their sockets.
async fn forward(listener: TcpListener, upstream: SocketAddr, open: Arc<watch::Receiver<bool>>) {
    let mut connections = JoinSet::new();
    let mut changes = (*open).clone();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((client, _)) = accepted else { continue };
                if !*changes.borrow() {
                    drop(client);
                    continue;
                }
                connections.spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(upstream).await {
                        let mut client = client;
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
            changed = changes.changed() => {
                if changed.is_err() {
                    return;
                }
                if !*changes.borrow() {
                    connections.abort_all();
                }
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}
