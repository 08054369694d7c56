//! TLS, mutual TLS, the plaintext health port and the auth layer of the platform's gRPC server,
//! with certificates the test makes (a CA, a server and a client certificate) and a real
//! tonic client.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair};
use tfesi_platform::{
    AuthConfig, ClientTlsConfig, GrpcServer, Health, ServerConfig, ServerTlsConfig, Shutdown,
};
use tokio::net::TcpListener;
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    /// A CA, a server certificate for localhost and a client certificate, as PEM files.
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issue = |names: Vec<String>, usage: ExtendedKeyUsagePurpose, stem: &str| {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(names).unwrap();
            params.extended_key_usages = vec![usage];
            let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
            std::fs::write(dir.path().join(format!("{stem}.crt")), cert.pem()).unwrap();
            std::fs::write(dir.path().join(format!("{stem}.key")), key.serialize_pem()).unwrap();
        };
        std::fs::write(dir.path().join("ca.crt"), ca.pem()).unwrap();
        issue(vec!["localhost".to_owned()], ExtendedKeyUsagePurpose::ServerAuth, "server");
        issue(vec!["preprocess".to_owned()], ExtendedKeyUsagePurpose::ClientAuth, "client");
        Self { dir }
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    fn server(&self, mutual: bool) -> ServerTlsConfig {
        ServerTlsConfig {
            cert_file: self.path("server.crt"),
            key_file: self.path("server.key"),
            client_ca_file: mutual.then(|| self.path("ca.crt")),
        }
    }

    fn client(&self, with_certificate: bool) -> ClientTlsConfig {
        ClientTlsConfig {
            ca_file: self.path("ca.crt"),
            cert_file: with_certificate.then(|| self.path("client.crt")),
            key_file: with_certificate.then(|| self.path("client.key")),
            domain_name: Some("localhost".to_owned()),
        }
    }
}

async fn start(
    config: ServerConfig,
    auth: &AuthConfig,
) -> (std::net::SocketAddr, tfesi_platform::ShutdownTrigger) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (trigger, shutdown) = Shutdown::new();
    let server = GrpcServer::new(&config, Health::default()).with_auth(auth).unwrap();
    tokio::spawn(server.serve(listener, shutdown));
    tokio::time::sleep(Duration::from_millis(200)).await;
    (address, trigger)
}

/// Checks health at `address`; the error (connection or status) as a string.
async fn health(address: std::net::SocketAddr, tls: Option<&ClientTlsConfig>) -> Result<(), String> {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let channel =
        tfesi_platform::client::lazy_channel(&format!("{scheme}://{address}"), tls, Duration::from_secs(2))
            .map_err(|error| format!("{error:#}"))?;
    let mut client = HealthClient::new(channel);
    let mut request = tonic::Request::new(HealthCheckRequest { service: String::new() });
    request.set_timeout(Duration::from_secs(3));
    client
        .check(request)
        .await
        .map(|_| ())
        .map_err(|status| format!("{:?}: {}", status.code(), status.message()))
}

#[tokio::test]
async fn mutual_tls_admits_a_client_with_a_certificate_of_the_ca_and_refuses_others() {
    let pki = Pki::new();
    let config = ServerConfig { tls: Some(pki.server(true)), ..ServerConfig::default() };
    let (address, trigger) = start(config, &AuthConfig::disabled()).await;
    health(address, Some(&pki.client(true))).await.expect("a client with a certificate of the CA");
    assert!(health(address, Some(&pki.client(false))).await.is_err(), "no client certificate");
    assert!(health(address, None).await.is_err(), "plaintext");
    trigger.trigger();
}

#[tokio::test]
async fn tls_without_client_certificates_and_the_plaintext_health_port() {
    let pki = Pki::new();
    let probe_port = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    let config = ServerConfig {
        tls: Some(pki.server(false)),
        health_listen: Some(probe_port),
        ..ServerConfig::default()
    };
    let (address, trigger) = start(config, &AuthConfig::disabled()).await;
    health(address, Some(&pki.client(false))).await.expect("server-only TLS");
    assert!(health(address, None).await.is_err(), "the main port is TLS only");
    health(probe_port, None).await.expect("the probe port is plaintext");
    trigger.trigger();
}

#[tokio::test]
async fn a_method_missing_from_the_policy_table_is_refused_to_every_valid_token() {
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, "0123456789abcdef0123456789abcdef").unwrap();
    let auth = AuthConfig::hs256(&secret_file);
    let (address, trigger) = start(ServerConfig::default(), &auth).await;
    let call = |token: Option<String>| async move {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut grpc = tonic::client::Grpc::new(channel);
        grpc.ready().await.unwrap();
        let mut request = tonic::Request::new(());
        if let Some(token) = token {
            request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
        }
        let path = http::uri::PathAndQuery::from_static("/tfesi.test.Unlisted/Anything");
        grpc.unary::<_, (), _>(request, path, tonic_prost::ProstCodec::<(), ()>::default()).await.unwrap_err()
    };
    assert_eq!(call(None).await.code(), Code::Unauthenticated);
    let secret = std::fs::read(&secret_file).unwrap();
    let admin = tfesi_auth::mint_hs256(&secret, &auth, "root", &tfesi_auth::Role::ALL, 60).unwrap();
    let refused = call(Some(admin)).await;
    assert_eq!(refused.code(), Code::PermissionDenied, "{}", refused.message());
    assert!(refused.message().contains("not open to any role"), "{}", refused.message());
    // Health stays public.
    health(address, None).await.expect("health needs no token");
    trigger.trigger();
}

#[test]
fn a_server_without_an_auth_decision_does_not_start() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (_trigger, shutdown) = Shutdown::new();
        let error = GrpcServer::new(&ServerConfig::default(), Health::default())
            .serve(listener, shutdown)
            .await
            .expect_err("refused");
        assert!(format!("{error:#}").contains("with_auth"), "{error:#}");
    });
}
