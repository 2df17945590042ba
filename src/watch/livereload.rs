//! `sitebuild watch`'s live-reload server: a tiny Server-Sent Events endpoint. The dev edge
//! proxies `/.sitebuild/events` here; each successful update sends `data: reload` and open tabs
//! reload, or, when only stylesheets changed, `data: css ["/a.css", …]` and open tabs swap those
//! `<link rel=stylesheet>` in place (the script is in `nginx/edge.conf.j2`). It listens on the
//! project network's gateway address (reachable from containers on that network, not from other
//! machines).

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
    tx: broadcast::Sender<(u64, Arc<str>)>,
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
        let _ = self.tx.send((generation, Arc::from("reload")));
    }

    /// Tell every open tab to swap the stylesheets at these site paths (`css/site.css`).
    pub(crate) fn swap_css(&self, generation: u64, paths: &[String]) {
        let _ = self.tx.send((generation, Arc::from(css_message(paths))));
    }

    /// Tabs listening now.
    pub(crate) fn clients(&self) -> usize {
        self.clients.load(Ordering::Relaxed)
    }
}

async fn serve(
    mut stream: TcpStream,
    mut rx: broadcast::Receiver<(u64, Arc<str>)>,
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
                    Ok((generation, data)) => {
                        stream.write_all(format!("id: {generation}\ndata: {data}\n\n").as_bytes()).await?;
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

/// `css ["/a.css","/b%20c/d.css"]`: the URL paths (percent-encoded, as `URL.pathname` has them)
/// as a JSON array on one line.
pub(crate) fn css_message(paths: &[String]) -> String {
    let urls: Vec<String> = paths
        .iter()
        .map(|rel| {
            let mut url = String::from("/");
            for b in rel.bytes() {
                if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
                    url.push(b as char);
                } else {
                    url.push_str(&format!("%{b:02X}"));
                }
            }
            url
        })
        .collect();
    format!("css {}", serde_json::Value::from(urls))
}

/// Only stylesheets changed: the paths to swap in place; None: reload.
pub(crate) fn only_stylesheets(
    changed: &std::collections::BTreeSet<String>,
) -> Option<Vec<String>> {
    let css = |rel: &String| {
        rel.rsplit_once('.')
            .is_some_and(|(_, ext)| ext.eq_ignore_ascii_case("css"))
    };
    (!changed.is_empty() && changed.iter().all(css)).then(|| changed.iter().cloned().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stylesheet_only_changes_become_one_css_message() {
        let set = |v: &[&str]| v.iter().map(|s| (*s).to_string()).collect();
        assert_eq!(
            only_stylesheets(&set(&["a.css", "b c/d.CSS"])),
            Some(vec!["a.css".to_string(), "b c/d.CSS".to_string()])
        );
        assert_eq!(only_stylesheets(&set(&["a.css", "index.html"])), None);
        assert_eq!(only_stylesheets(&set(&["a.css.map"])), None);
        assert_eq!(only_stylesheets(&set(&[])), None);
        assert_eq!(
            css_message(&["a.css".to_string(), "b c/é\"\n.css".to_string()]),
            r#"css ["/a.css","/b%20c/%C3%A9%22%0A.css"]"#
        );
    }
}
