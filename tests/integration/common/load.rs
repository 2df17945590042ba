//! Constant HTTP load during deploys, every response checked.

use std::net::SocketAddr;
use std::time::Duration;

use super::get;

/// Counts from a [`Load`] run.
#[derive(Debug, Default, Clone)]
pub(crate) struct LoadReport {
    pub ok: u64,
    pub connection_errors: u64,
    pub non_200: u64,
    /// 200 responses whose body was none of the expected versions.
    pub unexpected_body: u64,
    pub first_error: Option<String>,
}

/// Constant HTTP load on loopback from a few threads, one request per connection
/// (`Connection: close`), every response checked against the allowed bodies.
pub(crate) struct Load {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    allowed: std::sync::Arc<std::sync::Mutex<Vec<Vec<u8>>>>,
    threads: Vec<std::thread::JoinHandle<LoadReport>>,
}

impl Load {
    pub(crate) fn start(
        addr: SocketAddr,
        path: &str,
        allowed: Vec<Vec<u8>>,
        threads: usize,
    ) -> Load {
        Load::start_host(addr, None, path, allowed, threads)
    }

    /// [`Load::start`] with a `Host` header (the shared edge routes by it).
    pub(crate) fn start_host(
        addr: SocketAddr,
        host: Option<&str>,
        path: &str,
        allowed: Vec<Vec<u8>>,
        threads: usize,
    ) -> Load {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let allowed = std::sync::Arc::new(std::sync::Mutex::new(allowed));
        let handles = (0..threads)
            .map(|_| {
                let stop = stop.clone();
                let allowed = allowed.clone();
                let path = path.to_string();
                let host = host.map(String::from);
                std::thread::spawn(move || {
                    let mut r = LoadReport::default();
                    let headers: Vec<(&str, &str)> =
                        host.iter().map(|h| ("Host", h.as_str())).collect();
                    while !stop.load(Ordering::Relaxed) {
                        match get(addr, &path, &headers, Duration::from_secs(5)) {
                            Err(e) => {
                                r.connection_errors += 1;
                                r.first_error.get_or_insert(format!("{e:#}"));
                            }
                            Ok(resp) if resp.status != 200 => {
                                r.non_200 += 1;
                                r.first_error.get_or_insert(format!(
                                    "status {}: {}",
                                    resp.status,
                                    resp.text()
                                ));
                            }
                            Ok(resp) => {
                                if allowed.lock().unwrap().contains(&resp.body) {
                                    r.ok += 1;
                                } else {
                                    r.unexpected_body += 1;
                                    r.first_error
                                        .get_or_insert(format!("unexpected body: {}", resp.text()));
                                }
                            }
                        }
                    }
                    r
                })
            })
            .collect();
        Load {
            stop,
            allowed,
            threads: handles,
        }
    }

    /// Allow another body from now on (e.g. before deploying a new version).
    pub(crate) fn allow(&self, body: Vec<u8>) {
        self.allowed.lock().unwrap().push(body);
    }

    pub(crate) fn finish(self) -> LoadReport {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut total = LoadReport::default();
        for t in self.threads {
            let r = t.join().unwrap();
            total.ok += r.ok;
            total.connection_errors += r.connection_errors;
            total.non_200 += r.non_200;
            total.unexpected_body += r.unexpected_body;
            if total.first_error.is_none() {
                total.first_error = r.first_error;
            }
        }
        total
    }
}

impl LoadReport {
    pub(crate) fn failures(&self) -> u64 {
        self.connection_errors + self.non_200 + self.unexpected_body
    }
}

/// Counts from a [`KeepAliveLoad`] run.
#[derive(Debug, Default, Clone)]
pub(crate) struct KeepAliveReport {
    pub(crate) ok: u64,
    /// Connect/write/read errors, resets, EOF or timeout before a complete response.
    pub(crate) socket_errors: u64,
    pub(crate) non_2xx: u64,
    pub(crate) unexpected_body: u64,
    /// Connections opened (the first per thread, then one after each `Connection: close`).
    pub(crate) connections: u64,
    /// Responses that carried `Connection: close` (an old edge worker shutting down).
    pub(crate) closes: u64,
    pub(crate) first_error: Option<String>,
}

impl KeepAliveReport {
    pub(crate) fn failures(&self) -> u64 {
        self.socket_errors + self.non_2xx + self.unexpected_body
    }
}

/// Keep-alive HTTP/1.1 load, like `wrk -c N`: each thread reuses one TCP connection for request
/// after request, without delay, and opens a new one only after the server answered with
/// `Connection: close`. A connection that fails or ends before a complete response is an error
/// (a client without retries would fail that request).
pub(crate) struct KeepAliveLoad {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    threads: Vec<std::thread::JoinHandle<KeepAliveReport>>,
}

/// One response on a kept-alive connection: (status, body, server said `Connection: close`).
fn keepalive_exchange(
    stream: &mut std::net::TcpStream,
    buf: &mut Vec<u8>,
    request: &[u8],
) -> Result<(u16, Vec<u8>, bool), String> {
    use std::io::{Read, Write};
    stream
        .write_all(request)
        .map_err(|e| format!("write: {e}"))?;
    let mut chunk = [0u8; 16 * 1024];
    let fill = |stream: &mut std::net::TcpStream, buf: &mut Vec<u8>, chunk: &mut [u8]| match stream
        .read(chunk)
    {
        Ok(0) => Err(format!("EOF after {} bytes of a response", buf.len())),
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            Ok(())
        }
        Err(e) => Err(format!("read after {} bytes: {e}", buf.len())),
    };
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        fill(stream, buf, &mut chunk)?;
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line: {head:?}"))?;
    let header = |name: &str| {
        head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_ascii_lowercase())
        })
    };
    let close = header("connection").is_some_and(|v| v.contains("close"));
    buf.drain(..head_end);
    let body = if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        let mut body = Vec::new();
        loop {
            let line_end = loop {
                if let Some(i) = buf.windows(2).position(|w| w == b"\r\n") {
                    break i;
                }
                fill(stream, buf, &mut chunk)?;
            };
            let size = usize::from_str_radix(
                String::from_utf8_lossy(&buf[..line_end])
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .trim(),
                16,
            )
            .map_err(|e| format!("bad chunk size: {e}"))?;
            while buf.len() < line_end + 2 + size + 2 {
                fill(stream, buf, &mut chunk)?;
            }
            body.extend_from_slice(&buf[line_end + 2..line_end + 2 + size]);
            buf.drain(..line_end + 2 + size + 2);
            if size == 0 {
                break body;
            }
        }
    } else {
        let len: usize = header("content-length")
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("no Content-Length: {head:?}"))?;
        while buf.len() < len {
            fill(stream, buf, &mut chunk)?;
        }
        buf.drain(..len).collect()
    };
    Ok((status, body, close))
}

impl KeepAliveLoad {
    pub(crate) fn start(
        addr: SocketAddr,
        path: &str,
        allowed: Vec<Vec<u8>>,
        threads: usize,
    ) -> Self {
        Self::start_host(addr, None, path, allowed, threads)
    }

    /// [`KeepAliveLoad::start`] with this `Host` header instead of the address.
    pub(crate) fn start_host(
        addr: SocketAddr,
        host: Option<&str>,
        path: &str,
        allowed: Vec<Vec<u8>>,
        threads: usize,
    ) -> Self {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let allowed = std::sync::Arc::new(std::sync::Mutex::new(allowed));
        let host = host.map_or_else(|| addr.to_string(), String::from);
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: keepalive-load\r\n\r\n");
        let handles = (0..threads)
            .map(|_| {
                let stop = stop.clone();
                let allowed = allowed.clone();
                let request = request.clone().into_bytes();
                std::thread::spawn(move || {
                    let mut r = KeepAliveReport::default();
                    let mut conn: Option<std::net::TcpStream> = None;
                    let mut buf = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        let stream = match conn.as_mut() {
                            Some(s) => s,
                            None => {
                                match std::net::TcpStream::connect_timeout(
                                    &addr,
                                    Duration::from_secs(5),
                                ) {
                                    Ok(s) => {
                                        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                                        let _ = s.set_nodelay(true);
                                        r.connections += 1;
                                        buf.clear();
                                        conn.insert(s)
                                    }
                                    Err(e) => {
                                        r.socket_errors += 1;
                                        r.first_error.get_or_insert(format!("connect: {e}"));
                                        std::thread::sleep(Duration::from_millis(10));
                                        continue;
                                    }
                                }
                            }
                        };
                        match keepalive_exchange(stream, &mut buf, &request) {
                            Err(e) => {
                                r.socket_errors += 1;
                                r.first_error.get_or_insert(format!(
                                    "request {} on connection {}: {e}",
                                    r.ok + 1,
                                    r.connections
                                ));
                                conn = None;
                            }
                            Ok((status, body, close)) => {
                                if !(200..300).contains(&status) {
                                    r.non_2xx += 1;
                                    r.first_error.get_or_insert(format!(
                                        "status {status}: {}",
                                        String::from_utf8_lossy(&body)
                                    ));
                                } else if allowed.lock().unwrap().contains(&body) {
                                    r.ok += 1;
                                } else {
                                    r.unexpected_body += 1;
                                    r.first_error.get_or_insert(format!(
                                        "unexpected body: {}",
                                        String::from_utf8_lossy(&body)
                                    ));
                                }
                                if close {
                                    r.closes += 1;
                                    conn = None;
                                }
                            }
                        }
                    }
                    r
                })
            })
            .collect();
        KeepAliveLoad {
            stop,
            threads: handles,
        }
    }

    pub(crate) fn finish(self) -> KeepAliveReport {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut total = KeepAliveReport::default();
        for t in self.threads {
            let r = t.join().unwrap();
            total.ok += r.ok;
            total.socket_errors += r.socket_errors;
            total.non_2xx += r.non_2xx;
            total.unexpected_body += r.unexpected_body;
            total.connections += r.connections;
            total.closes += r.closes;
            if total.first_error.is_none() {
                total.first_error = r.first_error;
            }
        }
        total
    }
}
