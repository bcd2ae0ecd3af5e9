//! A Service on loopback: a stable address whose connections go to whichever pod is
//! current, so a pod can be replaced (a Deployment roll) without the URL changing.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A TCP forwarder from a fixed loopback address to the current backend. Stops when
/// dropped; connections already open keep their backend, as on a cluster while the old
/// pod terminates.
#[derive(Debug)]
pub struct ServiceForward {
    addr: SocketAddr,
    backend: watch::Sender<Option<SocketAddr>>,
    task: tokio::task::JoinHandle<()>,
}

impl ServiceForward {
    /// Listens on `addr` (port 0 picks a free one). Without a backend, connections are
    /// closed at once, like a Service without ready endpoints.
    pub async fn bind(addr: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (backend, current) = watch::channel(None);
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let Some(target) = *current.borrow() else {
                    continue;
                };
                tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Ok(Self {
            addr,
            backend,
            task,
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sends new connections to `backend` (none: refuse them).
    pub fn point_to(&self, backend: Option<SocketAddr>) {
        self.backend.send_replace(backend);
    }
}

impl Drop for ServiceForward {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn echo_server(reply: &'static str) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let _ = stream.write_all(reply.as_bytes()).await;
            }
        });
        addr
    }

    async fn read_from(addr: SocketAddr) -> String {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let mut out = String::new();
        let _ = stream.read_to_string(&mut out).await;
        out
    }

    #[tokio::test]
    async fn connections_follow_the_current_backend() {
        let forward = ServiceForward::bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        assert_eq!(read_from(forward.addr()).await, "");
        forward.point_to(Some(echo_server("one").await));
        assert_eq!(read_from(forward.addr()).await, "one");
        forward.point_to(Some(echo_server("two").await));
        assert_eq!(read_from(forward.addr()).await, "two");
    }
}
