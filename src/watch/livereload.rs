//! `sitebuild watch`'s live-reload server: a tiny Server-Sent Events endpoint. The dev edge
//! proxies `/.sitebuild/events` here; each successful update sends `data: reload` and open tabs
//! reload. It listens on the project network's gateway address (reachable from containers on
//! that network, not from other machines).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;

/// A running live-reload server.
#[derive(Debug, Clone)]
pub(crate) struct LiveReload {
    pub(crate) addr: SocketAddr,
    tx: broadcast::Sender<u64>,
    clients: Arc<AtomicUsize>,
}

impl LiveReload {
    /// Listen on `ip` (port chosen by the OS) and serve until the runtime stops.
    pub(crate) async fn start(ip: std::net::IpAddr) -> Result<LiveReload> {
        let listener = TcpListener::bind(SocketAddr::new(ip, 0))
            .await
            .with_context(|| format!("cannot listen on {ip} for live reload"))?;
        let addr = listener.local_addr()?;
        let (tx, _) = broadcast::channel(16);
        let clients = Arc::new(AtomicUsize::new(0));
        let server = LiveReload {
            addr,
            tx: tx.clone(),
            clients: clients.clone(),
        };
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let rx = tx.subscribe();
                let clients = clients.clone();
                tokio::spawn(async move {
                    let _ = serve(stream, rx, clients).await;
                });
            }
        });
        Ok(server)
    }

    /// Tell every open tab to reload.
    pub(crate) fn reload(&self, generation: u64) {
        let _ = self.tx.send(generation);
    }

    /// Tabs listening now.
    pub(crate) fn clients(&self) -> usize {
        self.clients.load(Ordering::Relaxed)
    }
}

async fn serve(
    mut stream: TcpStream,
    mut rx: broadcast::Receiver<u64>,
    clients: Arc<AtomicUsize>,
) -> Result<()> {
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await??;
    let request = String::from_utf8_lossy(&buf[..n]);
    if !request.starts_with("GET /events ") {
        stream
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .await?;
        return Ok(());
    }
    stream
        .write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\n\
              Connection: keep-alive\r\n\r\nretry: 500\n\n",
        )
        .await?;
    clients.fetch_add(1, Ordering::Relaxed);
    let result = async {
        loop {
            tokio::select! {
                msg = rx.recv() => match msg {
                    Ok(generation) => {
                        stream.write_all(format!("id: {generation}\ndata: reload\n\n").as_bytes()).await?;
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return Ok::<(), anyhow::Error>(()),
                },
                () = tokio::time::sleep(Duration::from_secs(15)) => {
                    stream.write_all(b": keep-alive\n\n").await?;
                }
            }
        }
    }
    .await;
    clients.fetch_sub(1, Ordering::Relaxed);
    result
}
