//! The baseline of the ingest bench: Debian's Orthanc as a child process with its own
//! configuration, storage and SQLite index in the run's directory, its REST upload
//! (`POST /instances`) and its instance count (`GET /statistics`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use tfesi_e2e::free_port;

use crate::support::{Study, wait_until};

/// How long Orthanc may take to answer `GET /system` after start.
const START_WITHIN: Duration = Duration::from_secs(60);
/// Per HTTP request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Orthanc's called AE title.
pub const AE_TITLE: &str = "ORTHANC";

type Http = Client<HttpConnector, Full<Bytes>>;

/// The Orthanc binary: TFESI_BENCH_ORTHANC, else Debian's `/usr/sbin/Orthanc`.
pub fn binary() -> PathBuf {
    std::env::var_os("TFESI_BENCH_ORTHANC").map_or_else(|| PathBuf::from("/usr/sbin/Orthanc"), PathBuf::from)
}

/// The configuration of one run: everything in `dir`, 127.0.0.1 ports of its own, durable
/// storage (`SyncStorageArea`), no compression, no plugins, no authentication, any calling AE
/// title may store; the DICOM PDU size of our receiver (64 KiB).
pub fn config(dir: &Path, http_port: u16, dicom_port: u16, max_pdu: u32) -> Value {
    let storage = dir.join("storage").display().to_string();
    json!({
        "Name": "tfesi-bench",
        "StorageDirectory": storage,
        "IndexDirectory": storage,
        "StorageCompression": false,
        "SyncStorageArea": true,
        "Plugins": [],
        "LuaScripts": [],
        "HttpServerEnabled": true,
        "HttpPort": http_port,
        "RemoteAccessAllowed": false,
        "AuthenticationEnabled": false,
        "SslEnabled": false,
        "OrthancExplorerEnabled": false,
        "WebDavEnabled": false,
        "HttpCompressionEnabled": false,
        "KeepAlive": true,
        "TcpNoDelay": true,
        "DicomServerEnabled": true,
        "DicomAet": AE_TITLE,
        "DicomPort": dicom_port,
        "DicomCheckCalledAet": false,
        "DicomAlwaysAllowEcho": true,
        "DicomAlwaysAllowStore": true,
        "DicomModalities": {},
        "MaximumPduLength": max_pdu,
        "OverwriteInstances": false,
        "SaveJobs": false,
        "MetricsEnabled": false,
    })
}

/// One running Orthanc; killed by its PID when dropped.
pub struct Orthanc {
    child: Child,
    log_path: PathBuf,
    pub http: SocketAddr,
    pub dicom: SocketAddr,
    pub version: String,
    client: Http,
}

impl Orthanc {
    /// Writes the configuration into `dir` and starts Orthanc with it; waits for `GET /system`.
    pub async fn start(dir: &Path, max_pdu: u32) -> Self {
        std::fs::create_dir_all(dir.join("storage")).expect("Orthanc's directory");
        let http: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("HTTP address");
        let dicom: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("DICOM address");
        let config_path = dir.join("orthanc.json");
        let text =
            serde_json::to_string_pretty(&config(dir, http.port(), dicom.port(), max_pdu)).expect("json");
        std::fs::write(&config_path, text).expect("write Orthanc's configuration");
        let log_path = dir.join("orthanc.log");
        let log = std::fs::File::create(&log_path).expect("Orthanc's log file");
        let log_err = log.try_clone().expect("log file handle");
        let child = Command::new(binary())
            .arg(&config_path)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .spawn()
            .unwrap_or_else(|error| {
                panic!("start {} ({error}; scripts/setup.sh installs Debian's orthanc)", binary().display())
            });
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new()).build(connector);
        let mut orthanc = Self { child, log_path, http, dicom, version: String::new(), client };
        let system = wait_until(START_WITHIN, || orthanc.get_json("/system")).await;
        let Some(system) = system else {
            panic!("Orthanc did not answer GET /system; its log:\n{}", orthanc.log());
        };
        orthanc.version = system["Version"].as_str().unwrap_or("?").to_owned();
        orthanc
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Panics with its log when the process has exited.
    pub fn assert_running(&mut self) {
        let exited = matches!(self.child.try_wait(), Ok(Some(_)));
        assert!(!exited, "Orthanc exited during the bench; its log:\n{}", self.log());
    }

    async fn get_json(&self, path: &str) -> Option<Value> {
        let request =
            http::Request::get(format!("http://{}{path}", self.http)).body(Full::new(Bytes::new())).ok()?;
        let response =
            tokio::time::timeout(REQUEST_TIMEOUT, self.client.request(request)).await.ok()?.ok()?;
        if !response.status().is_success() {
            return None;
        }
        let body = response.into_body().collect().await.ok()?.to_bytes();
        serde_json::from_slice(&body).ok()
    }

    /// Instances Orthanc's index holds (`GET /statistics`, CountInstances).
    pub async fn count_instances(&self) -> i64 {
        let statistics = self.get_json("/statistics").await.expect("GET /statistics");
        statistics["CountInstances"].as_i64().expect("CountInstances in /statistics")
    }

    /// POSTs every file of every study to `/instances`, `clients` requests in flight at once
    /// (HTTP/1.1 keep-alive, one connection per client); returns the instances Orthanc answered
    /// `"Status": "Success"` for. Panics on any other answer.
    pub async fn post_instances(&self, studies: &[&Study], clients: usize) -> usize {
        let files: Arc<Vec<Bytes>> = Arc::new(
            studies.iter().flat_map(|study| study.files.iter().map(|(_, bytes)| bytes.clone())).collect(),
        );
        let uri = format!("http://{}/instances", self.http);
        let next = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..clients.max(1) {
            let (files, next, client, uri) =
                (Arc::clone(&files), Arc::clone(&next), self.client.clone(), uri.clone());
            tasks.push(tokio::spawn(async move {
                let mut stored = 0;
                loop {
                    let index = next.fetch_add(1, Ordering::SeqCst);
                    let Some(bytes) = files.get(index) else {
                        return stored;
                    };
                    let request = http::Request::post(&uri)
                        .header(http::header::CONTENT_TYPE, "application/dicom")
                        .body(Full::new(bytes.clone()))
                        .expect("a request");
                    let response = tokio::time::timeout(REQUEST_TIMEOUT, client.request(request))
                        .await
                        .expect("POST /instances within the timeout")
                        .expect("POST /instances");
                    let status = response.status();
                    let body = response.into_body().collect().await.expect("the answer's body").to_bytes();
                    let answer: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    assert!(
                        status.is_success() && answer["Status"] == "Success",
                        "POST /instances answered {status}: {}",
                        String::from_utf8_lossy(&body)
                    );
                    stored += 1;
                }
            }));
        }
        let mut stored = 0;
        for task in tasks {
            stored += task.await.expect("an HTTP client task");
        }
        stored
    }
}

impl Drop for Orthanc {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
