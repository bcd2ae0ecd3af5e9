//! A TCP proxy on loopback whose link a test can cut and restore: the network between
//! one client (an operator) and a server (the API server), cut without root, network
//! namespaces or firewall rules.
//!
//! While the link is cut, nothing crosses it: bytes either side sends are dropped, and a
//! connection opened meanwhile is accepted but never reaches the server (as a client
//! behind a dead link sees it: requests hang, nothing answers). When the link is
//! restored, every connection that lived through the cut is closed, both ends seeing
//! the connection end, as after a partition longer than the peers' patience; new
//! connections go through again. Requests sent during the cut are never delivered late.
//!
//! ```no_run
//! # fn demo(api_server: std::net::SocketAddr) -> std::io::Result<()> {
//! use aigateway_testkit::cut_proxy::CutProxy;
//!
//! let proxy = CutProxy::start(api_server)?;
//! // ... point the client at https://{proxy.address()} ...
//! proxy.cut();
//! std::thread::sleep(std::time::Duration::from_secs(30));
//! proxy.restore();
//! # Ok(()) }
//! ```

use std::net::SocketAddr;
use std::thread::JoinHandle;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// The state of the link: whether it is cut, and how many cuts there have been (a
/// connection that saw a cut is closed at its end).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Link {
    cut: bool,
    cuts: u64,
}

/// A running proxy; dropping it closes every connection through it.
pub struct CutProxy {
    address: SocketAddr,
    link: watch::Sender<Link>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl CutProxy {
    /// Listens on a free port of 127.0.0.1 and forwards every connection to `target`,
    /// on a thread of its own (so it works from synchronous tests too).
    pub fn start(target: SocketAddr) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        // Bound here (not in the runtime) so that `start` works inside another runtime.
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let address = listener.local_addr()?;
        let (link, _) = watch::channel(Link::default());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let links = link.clone();
        let thread = std::thread::spawn(move || {
            runtime.block_on(async move {
                let Ok(listener) = TcpListener::from_std(listener) else {
                    return;
                };
                let accept = async {
                    loop {
                        let Ok((client, _)) = listener.accept().await else {
                            continue;
                        };
                        tokio::spawn(forward(client, target, links.subscribe()));
                    }
                };
                tokio::select! {
                    _ = accept => {}
                    _ = stopped => {}
                }
            });
            // Dropping the runtime drops every connection task, closing their sockets.
        });
        Ok(Self {
            address,
            link,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Where clients connect (`127.0.0.1:PORT`).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Cuts the link: from now on nothing crosses it.
    pub fn cut(&self) {
        self.link.send_modify(|link| {
            if !link.cut {
                link.cut = true;
                link.cuts += 1;
            }
        });
    }

    /// Restores the link: connections that lived through the cut are closed, new ones
    /// are forwarded again.
    pub fn restore(&self) {
        self.link.send_modify(|link| link.cut = false);
    }

    /// Whether the link is cut now.
    pub fn is_cut(&self) -> bool {
        self.link.borrow().cut
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Forwards one connection until either side closes it or a cut it lived through ends.
async fn forward(mut client: TcpStream, target: SocketAddr, mut link: watch::Receiver<Link>) {
    let born = *link.borrow_and_update();
    if born.cut {
        // Opened behind a dead link: held (its bytes dropped) until the cut ends, then
        // closed.
        let mut sink = [0u8; 4096];
        loop {
            tokio::select! {
                read = client.read(&mut sink) => if matches!(read, Ok(0) | Err(_)) { return },
                changed = link.changed() => if changed.is_err() || !link.borrow_and_update().cut { return },
            }
        }
    }
    let Ok(server) = TcpStream::connect(target).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let mut up = [0u8; 16 * 1024];
    let mut down = [0u8; 16 * 1024];
    loop {
        let now = *link.borrow_and_update();
        if now.cuts != born.cuts && !now.cut {
            // It lived through a cut: both ends see it close.
            return;
        }
        tokio::select! {
            read = client_read.read(&mut up) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) if !now.cut => if server_write.write_all(&up[..n]).await.is_err() { return },
                Ok(_) => {}
            },
            read = server_read.read(&mut down) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) if !now.cut => if client_write.write_all(&down[..n]).await.is_err() { return },
                Ok(_) => {}
            },
            changed = link.changed() => if changed.is_err() { return },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::time::Duration;

    /// An echo server on loopback.
    fn echo() -> SocketAddr {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                std::thread::spawn(move || {
                    let mut buffer = [0u8; 1024];
                    while let Ok(n) = stream.read(&mut buffer) {
                        if n == 0 || stream.write_all(&buffer[..n]).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        address
    }

    fn round_trip(stream: &mut std::net::TcpStream, text: &[u8]) -> std::io::Result<Vec<u8>> {
        stream.write_all(text)?;
        let mut answer = vec![0u8; text.len()];
        stream.read_exact(&mut answer)?;
        Ok(answer)
    }

    #[test]
    fn a_cut_drops_traffic_and_its_end_closes_the_connections_that_lived_through_it() {
        let proxy = CutProxy::start(echo()).unwrap();
        let mut before = std::net::TcpStream::connect(proxy.address()).unwrap();
        before
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        assert_eq!(round_trip(&mut before, b"hello").unwrap(), b"hello");

        proxy.cut();
        assert!(proxy.is_cut());
        // Nothing comes back while cut: the read times out.
        assert!(round_trip(&mut before, b"lost").is_err());
        let mut during = std::net::TcpStream::connect(proxy.address()).unwrap();
        during
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        assert!(round_trip(&mut during, b"never").is_err());

        proxy.restore();
        std::thread::sleep(Duration::from_millis(100));
        // Both connections that saw the cut are closed; what was sent meanwhile was
        // dropped, never delivered late.
        for stream in [&mut before, &mut during] {
            let mut rest = Vec::new();
            let read = stream.read_to_end(&mut rest);
            assert!(read.is_err() || rest.is_empty(), "{read:?} {rest:?}");
        }
        let mut after = std::net::TcpStream::connect(proxy.address()).unwrap();
        after
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        assert_eq!(round_trip(&mut after, b"again").unwrap(), b"again");
    }
}
