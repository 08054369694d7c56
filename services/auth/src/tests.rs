#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use super::*;

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-test-secret";

fn hs256() -> (AuthConfig, Authenticator, tempfile_free::Secret) {
    let secret = tempfile_free::Secret::write(SECRET);
    let config = AuthConfig { hs256_secret_file: Some(secret.path.clone()), ..AuthConfig::default() };
    let authenticator = Authenticator::from_config(&config).unwrap();
    (config, authenticator, secret)
}

/// A secret file under the target directory, removed on drop (no tempfile dependency).
mod tempfile_free {
    use std::sync::atomic::{AtomicU32, Ordering};

    /// Distinguishes the files of one thread (a test may hold several at once).
    static NEXT: AtomicU32 = AtomicU32::new(0);

    pub struct Secret {
        pub path: std::path::PathBuf,
    }
    impl Secret {
        pub fn write(bytes: &[u8]) -> Self {
            let path = std::env::temp_dir().join(format!(
                "tfesi-auth-test-{}-{:?}-{}",
                std::process::id(),
                std::thread::current().id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::write(&path, bytes).unwrap();
            Self { path }
        }
    }
    impl Drop for Secret {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[test]
fn every_rpc_of_every_service_is_in_the_policy_exactly_once() {
    let paths: Vec<&str> = policy::POLICY.iter().map(|(path, _)| *path).collect();
    let unique: BTreeSet<&str> = paths.iter().copied().collect();
    assert_eq!(unique.len(), paths.len(), "a method listed twice");
    for (path, roles) in policy::POLICY {
        assert!(!roles.is_empty(), "{path} allows nobody: remove it or give it roles");
    }
}

#[test]
fn a_valid_token_with_an_allowed_role_passes_and_names_the_acting_role() {
    let (config, authenticator, _secret) = hs256();
    let token = mint_hs256(SECRET, &config, "nurse-ann", &[Role::Nurse], 60).unwrap();
    let caller = layer::check(
        &authenticator,
        "/tfesi.registry.v1.Registry/RecordFollowUp",
        Some(&format!("Bearer {token}")),
    )
    .unwrap();
    assert_eq!(caller.subject, "nurse-ann");
    assert_eq!(caller.acting_role, Some(Role::Nurse));
}

#[test]
fn a_wrong_role_is_permission_denied_and_says_which_roles_are_needed() {
    let (config, authenticator, _secret) = hs256();
    let token = mint_hs256(SECRET, &config, "nurse-ann", &[Role::Nurse], 60).unwrap();
    let status = layer::check(
        &authenticator,
        "/tfesi.inference.v1.Inference/Promote",
        Some(&format!("Bearer {token}")),
    )
    .unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied);
    assert!(status.message().contains("mlops, admin"), "{}", status.message());
}

#[test]
fn missing_malformed_expired_and_forged_tokens_are_unauthenticated() {
    let (config, authenticator, _secret) = hs256();
    let path = "/tfesi.registry.v1.Registry/GetEpisode";
    let expired = {
        let mut claims_config = config.clone();
        claims_config.leeway_s = 0;
        let token = mint_hs256(SECRET, &claims_config, "app", &[Role::App], 0).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(1100));
        token
    };
    let strict = Authenticator::from_config(&AuthConfig { leeway_s: 0, ..config.clone() }).unwrap();
    let forged =
        mint_hs256(b"another-secret-another-secret-another", &config, "app", &[Role::App], 60).unwrap();
    let other_audience = mint_hs256(
        SECRET,
        &AuthConfig { audience: "elsewhere".into(), ..config.clone() },
        "app",
        &[Role::App],
        60,
    )
    .unwrap();
    for (header, authenticator, expected) in [
        (None, &authenticator, "needs an `authorization"),
        (Some("Basic abc".to_owned()), &authenticator, "must be `Bearer"),
        (Some("Bearer not-a-jwt".to_owned()), &authenticator, "not a JWT"),
        (Some(format!("Bearer {expired}")), &strict, "expired"),
        (Some(format!("Bearer {forged}")), &authenticator, "signature"),
        (Some(format!("Bearer {other_audience}")), &authenticator, "audience"),
    ] {
        let status = layer::check(authenticator, path, header.as_deref()).unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unauthenticated, "{header:?}");
        assert!(status.message().contains(expected), "{header:?}: {}", status.message());
    }
}

#[test]
fn health_and_reflection_need_no_token_and_unknown_methods_are_denied() {
    let (config, authenticator, _secret) = hs256();
    assert!(layer::check(&authenticator, "/grpc.health.v1.Health/Check", None).is_ok());
    assert!(
        layer::check(&authenticator, "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", None)
            .is_ok()
    );
    let admin = mint_hs256(SECRET, &config, "root", &Role::ALL, 60).unwrap();
    let status = layer::check(
        &authenticator,
        "/tfesi.registry.v1.Registry/DropEverything",
        Some(&format!("Bearer {admin}")),
    )
    .unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied);
}

#[test]
fn jwt_mode_without_keys_is_a_configuration_error_naming_the_keys() {
    let error = Authenticator::from_config(&AuthConfig::default()).unwrap_err();
    assert!(error.to_string().contains("auth.hs256_secret_file"), "{error}");
    let short = tempfile_free::Secret::write(b"short");
    let error = Authenticator::from_config(&AuthConfig {
        hs256_secret_file: Some(short.path.clone()),
        ..AuthConfig::default()
    })
    .unwrap_err();
    assert!(error.to_string().contains("at least 32 bytes"), "{error}");
}

#[test]
fn disabled_mode_lets_everything_through_as_anonymous() {
    let authenticator =
        Authenticator::from_config(&AuthConfig { mode: AuthMode::Disabled, ..AuthConfig::default() })
            .unwrap();
    let caller = layer::check(&authenticator, "/tfesi.inference.v1.Inference/Promote", None).unwrap();
    assert_eq!(caller.subject, "anonymous");
}

/// Runs openssl (Debian's, present wherever the platform's setup ran) and returns stdout.
fn openssl(args: &[&str], input: Option<&[u8]>) -> Vec<u8> {
    use std::io::Write as _;
    let mut child = std::process::Command::new("openssl")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("openssl runs");
    if let Some(input) = input {
        child.stdin.take().unwrap().write_all(input).unwrap();
    }
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "openssl {args:?} failed");
    output.stdout
}

#[test]
fn es256_tokens_verify_against_a_public_key_file_and_hs256_ones_are_refused_there() {
    let private = openssl(&["ecparam", "-name", "prime256v1", "-genkey", "-noout"], None);
    let pkcs8 = openssl(&["pkcs8", "-topk8", "-nocrypt"], Some(&private));
    let public = openssl(&["ec", "-pubout"], Some(&private));
    let public_file = tempfile_free::Secret::write(&public);
    let config = AuthConfig { public_key_file: Some(public_file.path.clone()), ..AuthConfig::default() };
    let authenticator = Authenticator::from_config(&config).unwrap();
    let claims = Claims {
        sub: "retrain-job".into(),
        roles: vec!["mlops".into()],
        iss: config.issuer.clone(),
        aud: config.audience.clone(),
        exp: 4_102_444_800,
        iat: 0,
    };
    let key = jsonwebtoken::EncodingKey::from_ec_pem(&pkcs8).unwrap();
    let token =
        jsonwebtoken::encode(&jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256), &claims, &key)
            .unwrap();
    let caller = layer::check(
        &authenticator,
        "/tfesi.inference.v1.Inference/RegisterModel",
        Some(&format!("Bearer {token}")),
    )
    .unwrap();
    assert_eq!(caller.acting_role, Some(Role::Mlops));
    let hs = mint_hs256(SECRET, &config, "x", &[Role::Admin], 60).unwrap();
    let status = layer::check(
        &authenticator,
        "/tfesi.inference.v1.Inference/RegisterModel",
        Some(&format!("Bearer {hs}")),
    )
    .unwrap_err();
    assert_eq!(
        status.code(),
        tonic::Code::Unauthenticated,
        "an HS256 token must not pass where only ES256 keys are configured"
    );
}

#[test]
fn the_es256_signer_mints_tokens_the_public_key_verifies() {
    let private = openssl(&["ecparam", "-name", "prime256v1", "-genkey", "-noout"], None);
    let pkcs8 = openssl(&["pkcs8", "-topk8", "-nocrypt"], Some(&private));
    let public = openssl(&["ec", "-pubout"], Some(&private));
    let private_file = tempfile_free::Secret::write(&pkcs8);
    let public_file = tempfile_free::Secret::write(&public);
    let config = AuthConfig { public_key_file: Some(public_file.path.clone()), ..AuthConfig::default() };
    let signer = Signer::es256_from_file("signing_key_file", &private_file.path, None).unwrap();
    let token = signer.mint(&config, "ana.nurse", &[Role::Nurse], 60).unwrap();
    let caller = Authenticator::from_config(&config).unwrap().verify(&token).unwrap();
    assert_eq!(caller.subject, "ana.nurse");
    assert_eq!(caller.roles, vec![Role::Nurse]);
    let not_a_key = tempfile_free::Secret::write(b"not a key");
    let error = Signer::es256_from_file("signing_key_file", &not_a_key.path, None).unwrap_err();
    assert!(error.to_string().contains("signing_key_file"), "{error}");
}
