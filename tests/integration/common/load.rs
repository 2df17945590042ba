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
    /// Count one request/response on a kept-alive connection (`allowed`: is this body one of
    /// the expected ones). True when the connection is done: an error, or the server's close.
    fn record(
        &mut self,
        exchange: Result<(u16, Vec<u8>, bool), String>,
        allowed: impl Fn(&[u8]) -> bool,
    ) -> bool {
        match exchange {
            Err(e) => {
                self.socket_errors += 1;
                self.first_error.get_or_insert(format!(
                    "request {} on connection {}: {e}",
                    self.ok + 1,
                    self.connections
                ));
                true
            }
            Ok((status, body, close)) => {
                if !(200..300).contains(&status) {
                    self.non_2xx += 1;
                    self.first_error.get_or_insert(format!(
                        "status {status}: {}",
                        String::from_utf8_lossy(&body)
                    ));
                } else if allowed(&body) {
                    self.ok += 1;
                } else {
                    self.unexpected_body += 1;
                    self.first_error.get_or_insert(format!(
                        "unexpected body: {}",
                        String::from_utf8_lossy(&body)
                    ));
                }
                if close {
                    self.closes += 1;
                }
                close
            }
        }
    }

    /// The counts of several clients together (the first error seen kept).
    fn sum(reports: impl Iterator<Item = KeepAliveReport>) -> KeepAliveReport {
        let mut total = KeepAliveReport::default();
        for r in reports {
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
fn keepalive_exchange<S: std::io::Read + std::io::Write + ?Sized>(
    stream: &mut S,
    buf: &mut Vec<u8>,
    request: &[u8],
) -> Result<(u16, Vec<u8>, bool), String> {
    stream
        .write_all(request)
        .map_err(|e| format!("write: {e}"))?;
    let mut chunk = [0u8; 16 * 1024];
    let fill = |stream: &mut S, buf: &mut Vec<u8>, chunk: &mut [u8]| match stream.read(chunk) {
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
                        let exchange = keepalive_exchange(stream, &mut buf, &request);
                        if r.record(exchange, |b| allowed.lock().unwrap().iter().any(|a| a == b)) {
                            conn = None;
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
        KeepAliveReport::sum(self.threads.into_iter().map(|t| t.join().unwrap()))
    }
}

/// A byte stream to the server: plain TCP or TLS over it.
pub(crate) trait Stream: std::io::Read + std::io::Write + Send {}
impl<T: std::io::Read + std::io::Write + Send> Stream for T {}

/// HTTPS for the test clients (rustls, already a dependency): trusts one certificate (a PEM
/// file, e.g. a throwaway self-signed one) and sends `name` as SNI, HTTP/1.1 only (ALPN).
#[derive(Clone)]
pub(crate) struct TlsClient {
    config: std::sync::Arc<rustls::ClientConfig>,
    name: rustls::pki_types::ServerName<'static>,
}

/// Trusts exactly one certificate (its DER bytes), with the handshake signatures checked:
/// webpki refuses a self-signed certificate as an end entity (`CaUsedAsEndEntity`, openssl's
/// `req -x509` marks it CA:TRUE), so the test certificate is pinned instead.
#[derive(Debug)]
struct Pinned {
    cert: rustls::pki_types::CertificateDer<'static>,
    provider: std::sync::Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::client::danger::ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.cert.as_ref() {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General("not the pinned certificate".into()))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

impl TlsClient {
    pub(crate) fn trusting(cert_pem: &std::path::Path, name: &str) -> TlsClient {
        use rustls::pki_types::pem::PemObject;
        let cert = rustls::pki_types::CertificateDer::from_pem_file(cert_pem).unwrap();
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(std::sync::Arc::new(Pinned { cert, provider }))
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        TlsClient {
            config: std::sync::Arc::new(config),
            name: rustls::pki_types::ServerName::try_from(name.to_string()).unwrap(),
        }
    }

    /// A new TLS connection to `addr` (the handshake happens on the first read or write).
    pub(crate) fn connect(
        &self,
        addr: SocketAddr,
        timeout: Duration,
    ) -> Result<Box<dyn Stream>, String> {
        let tcp = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .map_err(|e| format!("connect: {e}"))?;
        let _ = tcp.set_read_timeout(Some(timeout));
        let _ = tcp.set_write_timeout(Some(timeout));
        let _ = tcp.set_nodelay(true);
        let conn = rustls::ClientConnection::new(self.config.clone(), self.name.clone())
            .map_err(|e| format!("TLS: {e}"))?;
        Ok(Box::new(rustls::StreamOwned::new(conn, tcp)))
    }
}

/// How an [`HttpsLoad`] client uses connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Connections {
    /// A new TLS connection per request (`Connection: close`).
    New,
    /// One connection reused request after request (like `wrk -c N`), a new one only after the
    /// server said `Connection: close`.
    KeepAlive,
}

/// HTTP/1.1 load over HTTPS on loopback: each thread requests `targets` in turn (path and the
/// bodies allowed for it), every response checked; counts as in [`KeepAliveReport`] (a reset,
/// an EOF or a timeout before a complete response is a socket error).
pub(crate) struct HttpsLoad {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    threads: Vec<std::thread::JoinHandle<KeepAliveReport>>,
}

impl HttpsLoad {
    pub(crate) fn start(
        addr: SocketAddr,
        tls: &TlsClient,
        host: &str,
        targets: Vec<(String, Vec<Vec<u8>>)>,
        mode: Connections,
        threads: usize,
    ) -> HttpsLoad {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let close = if mode == Connections::New {
            "Connection: close\r\n"
        } else {
            ""
        };
        // (request bytes, the bodies allowed for it)
        type Request = (Vec<u8>, Vec<Vec<u8>>);
        let targets: std::sync::Arc<Vec<Request>> = std::sync::Arc::new(
            targets
                .into_iter()
                .map(|(path, allowed)| {
                    (
                        format!(
                            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: https-load\r\n{close}\r\n"
                        )
                        .into_bytes(),
                        allowed,
                    )
                })
                .collect(),
        );
        let handles = (0..threads)
            .map(|t| {
                let (stop, tls, targets) = (stop.clone(), tls.clone(), targets.clone());
                std::thread::spawn(move || {
                    let mut r = KeepAliveReport::default();
                    let mut conn: Option<Box<dyn Stream>> = None;
                    let mut buf = Vec::new();
                    let mut i = t;
                    while !stop.load(Ordering::Relaxed) {
                        let (request, allowed) = &targets[i % targets.len()];
                        i += 1;
                        let stream = match conn.as_mut() {
                            Some(s) => s,
                            None => match tls.connect(addr, Duration::from_secs(5)) {
                                Ok(s) => {
                                    r.connections += 1;
                                    buf.clear();
                                    conn.insert(s)
                                }
                                Err(e) => {
                                    r.socket_errors += 1;
                                    r.first_error.get_or_insert(e);
                                    std::thread::sleep(Duration::from_millis(10));
                                    continue;
                                }
                            },
                        };
                        let exchange = keepalive_exchange(stream.as_mut(), &mut buf, request);
                        let dropped = r.record(exchange, |b| allowed.iter().any(|a| a == b));
                        if dropped || mode == Connections::New {
                            conn = None;
                        }
                    }
                    r
                })
            })
            .collect();
        HttpsLoad {
            stop,
            threads: handles,
        }
    }

    pub(crate) fn finish(self) -> KeepAliveReport {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        KeepAliveReport::sum(self.threads.into_iter().map(|t| t.join().unwrap()))
    }
}

/// Counts from a [`Downloads`] run.
#[derive(Debug, Default, Clone)]
pub(crate) struct DownloadReport {
    /// Complete, with the expected sha256.
    pub(crate) complete: u64,
    /// Ended early (clean EOF or the connection closed) after at least `cut_after` of transfer,
    /// with every byte received the right one: the edge's `worker_shutdown_timeout` ending an
    /// old worker's transfer. Reported, not a failure.
    pub(crate) cut: u64,
    /// Anything else: an error status, wrong bytes, a reset or EOF before `cut_after`.
    pub(crate) failed: u64,
    /// Bytes received by cut downloads, and the longest transfer (s).
    pub(crate) cut_bytes: u64,
    pub(crate) longest_s: f64,
    pub(crate) first_error: Option<String>,
    pub(crate) first_cut: Option<String>,
}

/// Clients that download one file again and again over HTTPS at `rate` bytes/s each (a slow
/// reader; `usize::MAX` reads as fast as it can), each body checked against `expected`.
pub(crate) struct Downloads {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    threads: Vec<std::thread::JoinHandle<DownloadReport>>,
}

/// One download: Ok(body) when complete, Err((what, body so far)) otherwise.
fn download(
    stream: &mut dyn Stream,
    request: &[u8],
    rate: usize,
) -> Result<Vec<u8>, (String, Vec<u8>)> {
    let mut raw = Vec::new();
    stream
        .write_all(request)
        .map_err(|e| (format!("write: {e}"), Vec::new()))?;
    let mut chunk = vec![0u8; 16 * 1024];
    let started = std::time::Instant::now();
    let mut read = |stream: &mut dyn Stream, raw: &mut Vec<u8>| -> Result<(), String> {
        match stream.read(&mut chunk) {
            Ok(0) => Err("EOF".into()),
            Ok(n) => {
                raw.extend_from_slice(&chunk[..n]);
                if rate != usize::MAX {
                    let due = Duration::from_secs_f64(raw.len() as f64 / rate as f64);
                    if let Some(wait) = due.checked_sub(started.elapsed()) {
                        std::thread::sleep(wait);
                    }
                }
                Ok(())
            }
            Err(e) => Err(format!("read: {e} ({:?})", e.kind())),
        }
    };
    let head_end = loop {
        if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        read(stream, &mut raw)
            .map_err(|e| (format!("{e} before the response head"), Vec::new()))?;
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).to_string();
    let status = head.split_whitespace().nth(1).unwrap_or("");
    if status != "200" {
        return Err((format!("status {status}"), Vec::new()));
    }
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .ok_or_else(|| (format!("no Content-Length: {head}"), Vec::new()))?;
    raw.drain(..head_end);
    while raw.len() < len {
        if let Err(e) = read(stream, &mut raw) {
            return Err((e, raw));
        }
    }
    Ok(raw)
}

/// How a [`Downloads`] client reads: `rate` bytes/s, and the transfer time from which an early
/// end with right bytes counts as cut by the edge (`worker_shutdown_timeout`), not failed.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Pace {
    pub(crate) rate: usize,
    pub(crate) cut_after: Duration,
}

impl Downloads {
    pub(crate) fn start(
        addr: SocketAddr,
        tls: &TlsClient,
        host: &str,
        path: &str,
        expected: std::sync::Arc<Vec<u8>>,
        pace: Pace,
        threads: usize,
    ) -> Downloads {
        let Pace { rate, cut_after } = pace;
        use sha2::Digest;
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: download\r\nConnection: close\r\n\r\n"
        )
        .into_bytes();
        let want = sha2::Sha256::digest(&expected[..]);
        let handles = (0..threads)
            .map(|_| {
                let (stop, tls, request, expected) =
                    (stop.clone(), tls.clone(), request.clone(), expected.clone());
                std::thread::spawn(move || {
                    let mut r = DownloadReport::default();
                    while !stop.load(Ordering::Relaxed) {
                        let t = std::time::Instant::now();
                        let got = tls
                            .connect(addr, Duration::from_secs(15))
                            .map_err(|e| (e, Vec::new()))
                            .and_then(|mut s| download(s.as_mut(), &request, rate));
                        let took = t.elapsed();
                        r.longest_s = r.longest_s.max(took.as_secs_f64());
                        match got {
                            Ok(body) if sha2::Sha256::digest(&body) == want => r.complete += 1,
                            Ok(body) => {
                                r.failed += 1;
                                r.first_error
                                    .get_or_insert(format!("{} bytes, wrong sha256", body.len()));
                            }
                            Err((e, body))
                                if !body.is_empty()
                                    && took >= cut_after
                                    && body[..] == expected[..body.len()] =>
                            {
                                r.cut += 1;
                                r.cut_bytes += body.len() as u64;
                                r.first_cut.get_or_insert(format!(
                                    "{e} after {} of {} bytes, {:.1} s",
                                    body.len(),
                                    expected.len(),
                                    took.as_secs_f64()
                                ));
                            }
                            Err((e, body)) => {
                                r.failed += 1;
                                r.first_error.get_or_insert(format!(
                                    "{e} after {} bytes, {:.1} s",
                                    body.len(),
                                    took.as_secs_f64()
                                ));
                            }
                        }
                    }
                    r
                })
            })
            .collect();
        Downloads {
            stop,
            threads: handles,
        }
    }

    pub(crate) fn finish(self) -> DownloadReport {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut total = DownloadReport::default();
        for t in self.threads {
            let r = t.join().unwrap();
            total.complete += r.complete;
            total.cut += r.cut;
            total.failed += r.failed;
            total.cut_bytes += r.cut_bytes;
            total.longest_s = total.longest_s.max(r.longest_s);
            if total.first_error.is_none() {
                total.first_error = r.first_error;
            }
            if total.first_cut.is_none() {
                total.first_cut = r.first_cut;
            }
        }
        total
    }
}

/// Counts from an [`H2Load`] run.
#[derive(Debug, Default, Clone)]
pub(crate) struct H2Report {
    pub(crate) ok: u64,
    /// Responses that were not `200` over HTTP/2, or a body none of the allowed ones.
    pub(crate) bad: u64,
    /// curl runs that failed (each loses the requests it had not finished).
    pub(crate) curl_failures: u64,
    pub(crate) curl_runs: u64,
    pub(crate) first_error: Option<String>,
}

impl H2Report {
    pub(crate) fn failures(&self) -> u64 {
        self.bad + self.curl_failures
    }
}

/// HTTP/2 load: `curl --http2` in a loop, each run one TLS connection carrying every target
/// (`--parallel`: multiplexed streams), every response's status, protocol and body checked.
/// `curl` is the binary to run: one that retries what a GOAWAY refused ([`super::h2_curl`]).
pub(crate) struct H2Load {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    threads: Vec<std::thread::JoinHandle<H2Report>>,
}

impl H2Load {
    pub(crate) fn start(
        curl: &std::path::Path,
        https_port: u16,
        cacert: &std::path::Path,
        host: &str,
        targets: Vec<(String, Vec<Vec<u8>>)>,
        threads: usize,
    ) -> H2Load {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let targets = std::sync::Arc::new(targets);
        let handles = (0..threads)
            .map(|_| {
                let (stop, targets) = (stop.clone(), targets.clone());
                let (curl, cacert, host) =
                    (curl.to_path_buf(), cacert.to_path_buf(), host.to_string());
                std::thread::spawn(move || {
                    let dir = tempfile::tempdir().unwrap();
                    let mut r = H2Report::default();
                    while !stop.load(Ordering::Relaxed) {
                        let mut cmd = std::process::Command::new(&curl);
                        cmd.args(["-sS", "--http2", "--parallel", "--max-time", "10"])
                            .arg("--cacert")
                            .arg(&cacert)
                            .arg("--resolve")
                            .arg(format!("{host}:{https_port}:127.0.0.1"))
                            .args([
                                "-w",
                                "%{http_code} %{http_version} %{filename_effective}\\n",
                            ]);
                        for (i, (path, _)) in targets.iter().enumerate() {
                            let _ = std::fs::remove_file(dir.path().join(i.to_string()));
                            cmd.arg("-o")
                                .arg(dir.path().join(i.to_string()))
                                .arg(format!("https://{host}:{https_port}{path}"));
                        }
                        let out = cmd.output().unwrap();
                        r.curl_runs += 1;
                        if !out.status.success() {
                            r.curl_failures += 1;
                            r.first_error.get_or_insert(format!(
                                "curl exit {:?}: {}",
                                out.status.code(),
                                String::from_utf8_lossy(&out.stderr).trim()
                            ));
                            continue;
                        }
                        for line in String::from_utf8_lossy(&out.stdout).lines() {
                            let mut parts = line.splitn(3, ' ');
                            let (code, version, file) = (
                                parts.next().unwrap_or(""),
                                parts.next().unwrap_or(""),
                                parts.next().unwrap_or(""),
                            );
                            let i: usize = std::path::Path::new(file)
                                .file_name()
                                .and_then(|n| n.to_str()?.parse().ok())
                                .unwrap_or(usize::MAX);
                            let body = std::fs::read(file).unwrap_or_default();
                            let allowed = targets.get(i).map(|t| &t.1);
                            if code == "200"
                                && version == "2"
                                && allowed.is_some_and(|a| a.contains(&body))
                            {
                                r.ok += 1;
                            } else {
                                r.bad += 1;
                                r.first_error.get_or_insert(format!(
                                    "{line}: {}",
                                    String::from_utf8_lossy(&body)
                                ));
                            }
                        }
                    }
                    r
                })
            })
            .collect();
        H2Load {
            stop,
            threads: handles,
        }
    }

    pub(crate) fn finish(self) -> H2Report {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut total = H2Report::default();
        for t in self.threads {
            let r = t.join().unwrap();
            total.ok += r.ok;
            total.bad += r.bad;
            total.curl_failures += r.curl_failures;
            total.curl_runs += r.curl_runs;
            if total.first_error.is_none() {
                total.first_error = r.first_error;
            }
        }
        total
    }
}
