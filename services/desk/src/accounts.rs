//! Nurse accounts: the accounts file, password hashing (PBKDF2-HMAC-SHA256, salted, slow) and
//! sign-in checks that take the same time whether or not the username exists.
//!
//! The file has one account per line, fields separated by `:`, display name last so that it may
//! hold any character; blank lines and lines starting with `#` are ignored:
//!
//! ```text
//! # username:roles:password hash:display name
//! a.nurse:nurse:pbkdf2-sha256$600000$<salt hex>$<hash hex>:Alex Nurse
//! ```

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::path::Path;

use ring::pbkdf2;
use ring::rand::{SecureRandom, SystemRandom};
use tfesi_auth::Role;

/// Name of the hashing scheme written at the start of every hash.
const SCHEME: &str = "pbkdf2-sha256";
/// PBKDF2-HMAC-SHA256 iterations for new hashes (OWASP's 2023 recommendation).
pub const ITERATIONS: u32 = 600_000;
/// Fewest iterations accepted in the file (a weaker hash is refused at start).
const MIN_ITERATIONS: u32 = 100_000;
/// Salt length, bytes.
const SALT_BYTES: usize = 16;
/// Derived key length, bytes.
const HASH_BYTES: usize = 32;

/// Why the accounts file or a password could not be used.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// The file could not be read.
    #[error("cannot read the accounts file {path}: {cause}")]
    Read { path: String, cause: std::io::Error },
    /// A line of the file is malformed.
    #[error("accounts file line {line}: {reason}")]
    Line { line: usize, reason: String },
    /// The input to `hash-password` is unusable.
    #[error("{0}")]
    Input(String),
    /// The system random generator failed.
    #[error("the system random generator failed")]
    Random,
}

/// A stored password hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordHash {
    iterations: NonZeroU32,
    salt: Vec<u8>,
    hash: Vec<u8>,
}

impl PasswordHash {
    /// Hashes `password` with a fresh random salt.
    pub fn new(password: &str) -> Result<Self, AccountError> {
        let mut salt = vec![0_u8; SALT_BYTES];
        SystemRandom::new().fill(&mut salt).map_err(|_| AccountError::Random)?;
        Ok(Self::with_salt(password, salt, ITERATIONS))
    }

    fn with_salt(password: &str, salt: Vec<u8>, iterations: u32) -> Self {
        let iterations = NonZeroU32::new(iterations).unwrap_or(NonZeroU32::MIN);
        let mut hash = vec![0_u8; HASH_BYTES];
        pbkdf2::derive(pbkdf2::PBKDF2_HMAC_SHA256, iterations, &salt, password.as_bytes(), &mut hash);
        Self { iterations, salt, hash }
    }

    /// Parses `pbkdf2-sha256$<iterations>$<salt hex>$<hash hex>`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let parts: Vec<&str> = text.split('$').collect();
        let [scheme, iterations, salt, hash] = parts.as_slice() else {
            return Err(format!("the password hash must be {SCHEME}$<iterations>$<salt hex>$<hash hex>"));
        };
        if *scheme != SCHEME {
            return Err(format!("unknown password hash scheme '{scheme}' (expected {SCHEME})"));
        }
        let iterations: u32 =
            iterations.parse().map_err(|_| "the hash's iteration count is not a number".to_owned())?;
        if iterations < MIN_ITERATIONS {
            return Err(format!(
                "the hash uses {iterations} iterations; at least {MIN_ITERATIONS} are required"
            ));
        }
        let salt = hex::decode(salt).map_err(|_| "the hash's salt is not hex".to_owned())?;
        let hash = hex::decode(hash).map_err(|_| "the hash's digest is not hex".to_owned())?;
        if salt.len() < 8 || hash.len() != HASH_BYTES {
            return Err(format!("the hash needs a salt of at least 8 bytes and a {HASH_BYTES}-byte digest"));
        }
        let iterations = NonZeroU32::new(iterations).unwrap_or(NonZeroU32::MIN);
        Ok(Self { iterations, salt, hash })
    }

    /// Whether `password` matches (constant-time comparison of the derived keys).
    pub fn verify(&self, password: &str) -> bool {
        pbkdf2::verify(
            pbkdf2::PBKDF2_HMAC_SHA256,
            self.iterations,
            &self.salt,
            password.as_bytes(),
            &self.hash,
        )
        .is_ok()
    }
}

impl std::fmt::Display for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{SCHEME}${}${}${}", self.iterations, hex::encode(&self.salt), hex::encode(&self.hash))
    }
}

/// One nurse account.
#[derive(Debug, Clone)]
pub struct Account {
    /// Sign-in name, also the token subject the registry records as `recorded_by`.
    pub username: String,
    /// Name shown on the desk.
    pub display_name: String,
    /// Roles of the account; only accounts with `nurse` may sign in to the desk.
    pub roles: Vec<Role>,
    password: PasswordHash,
}

impl Account {
    /// Whether this account may use the desk.
    pub fn is_nurse(&self) -> bool {
        self.roles.contains(&Role::Nurse)
    }
}

/// Checks a username: 1 to 64 characters of letters, digits, `.`, `_`, `-`, `@`.
fn check_username(username: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@');
    if username.is_empty() || username.len() > 64 || !username.chars().all(allowed) {
        return Err("a username is 1 to 64 letters, digits, '.', '_', '-' or '@'".to_owned());
    }
    Ok(())
}

/// The line of the accounts file for a new account.
pub fn account_line(username: &str, display_name: &str, password: &str) -> Result<String, AccountError> {
    check_username(username).map_err(AccountError::Input)?;
    let display_name = display_name.trim();
    if display_name.is_empty() || display_name.contains(['\n', '\r']) {
        return Err(AccountError::Input("the display name must be one non-empty line".to_owned()));
    }
    if password.chars().count() < 12 {
        return Err(AccountError::Input("the password must have at least 12 characters".to_owned()));
    }
    let hash = PasswordHash::new(password)?;
    Ok(format!("{username}:nurse:{hash}:{display_name}"))
}

/// Every account of the accounts file, by username.
#[derive(Debug)]
pub struct Accounts {
    by_username: HashMap<String, Account>,
    /// Verified against when the username is unknown, so that the answer takes as long.
    decoy: PasswordHash,
}

impl Accounts {
    /// Reads and checks the accounts file.
    pub fn load(path: &Path) -> Result<Self, AccountError> {
        let text = std::fs::read_to_string(path)
            .map_err(|cause| AccountError::Read { path: path.display().to_string(), cause })?;
        Self::parse(&text)
    }

    /// Parses the text of an accounts file.
    pub fn parse(text: &str) -> Result<Self, AccountError> {
        let mut by_username = HashMap::new();
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let fail = |reason: String| AccountError::Line { line, reason };
            let mut fields = trimmed.splitn(4, ':');
            let (Some(username), Some(roles), Some(hash), Some(display_name)) =
                (fields.next(), fields.next(), fields.next(), fields.next())
            else {
                return Err(fail("expected username:roles:password hash:display name".to_owned()));
            };
            check_username(username).map_err(fail)?;
            let roles = roles
                .split(',')
                .map(|name| Role::parse(name.trim()).ok_or_else(|| format!("unknown role '{name}'")))
                .collect::<Result<Vec<_>, _>>()
                .map_err(fail)?;
            let password = PasswordHash::parse(hash).map_err(fail)?;
            let account = Account {
                username: username.to_owned(),
                display_name: display_name.trim().to_owned(),
                roles,
                password,
            };
            if by_username.insert(username.to_owned(), account).is_some() {
                return Err(fail(format!("username '{username}' appears twice")));
            }
        }
        // A fixed salt is fine for the decoy: it is never compared with a real password.
        let decoy = PasswordHash::with_salt("decoy", vec![0x5a; SALT_BYTES], ITERATIONS);
        Ok(Self { by_username, decoy })
    }

    /// Number of accounts.
    pub fn len(&self) -> usize {
        self.by_username.len()
    }

    /// Whether the file holds no account.
    pub fn is_empty(&self) -> bool {
        self.by_username.is_empty()
    }

    /// The nurse account matching `username` and `password`, or `None` (whatever was wrong:
    /// the caller must not tell which). CPU-heavy (PBKDF2): call it off the async threads.
    pub fn sign_in(&self, username: &str, password: &str) -> Option<Account> {
        match self.by_username.get(username) {
            Some(account) => {
                let matches = account.password.verify(password);
                (matches && account.is_nurse()).then(|| account.clone())
            }
            None => {
                let _ = self.decoy.verify(password);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fast_line(username: &str, roles: &str, password: &str) -> String {
        let hash = PasswordHash::with_salt(password, vec![7; SALT_BYTES], MIN_ITERATIONS);
        format!("{username}:{roles}:{hash}:Display: {username}")
    }

    #[test]
    fn a_hash_round_trips_through_its_text() {
        let hash = PasswordHash::with_salt("correct horse", vec![1; SALT_BYTES], MIN_ITERATIONS);
        let parsed = PasswordHash::parse(&hash.to_string()).expect("parses");
        assert!(parsed.verify("correct horse"));
        assert!(!parsed.verify("correct horsE"));
    }

    #[test]
    fn the_right_password_signs_a_nurse_in_and_anything_else_does_not() {
        let text = format!(
            "# comment\n\n{}\n{}\n",
            fast_line("ana", "nurse", "ana's long password"),
            fast_line("ops", "admin", "ops' long password")
        );
        let accounts = Accounts::parse(&text).expect("parses");
        assert_eq!(accounts.len(), 2);
        let ana = accounts.sign_in("ana", "ana's long password").expect("signs in");
        assert_eq!(ana.display_name, "Display: ana", "the display name may hold ':'");
        assert!(accounts.sign_in("ana", "wrong").is_none());
        assert!(accounts.sign_in("nobody", "ana's long password").is_none());
        assert!(accounts.sign_in("ops", "ops' long password").is_none(), "only nurses use the desk");
    }

    #[test]
    fn a_weak_or_malformed_hash_is_refused_with_its_line() {
        let weak = PasswordHash::with_salt("x", vec![7; SALT_BYTES], 1_000);
        let error = Accounts::parse(&format!("ana:nurse:{weak}:Ana")).expect_err("too few iterations");
        assert!(error.to_string().contains("line 1"), "{error}");
        let error = Accounts::parse("\nana:nurse:plaintext:Ana").expect_err("not a hash");
        assert!(error.to_string().contains("line 2"), "{error}");
        let error = Accounts::parse(&format!("ana:chef:{weak}:Ana")).expect_err("unknown role");
        assert!(error.to_string().contains("unknown role"), "{error}");
    }

    #[test]
    fn duplicate_usernames_are_refused() {
        let line = fast_line("ana", "nurse", "pw");
        let error = Accounts::parse(&format!("{line}\n{line}")).expect_err("duplicate");
        assert!(error.to_string().contains("twice"), "{error}");
    }

    #[test]
    fn account_line_checks_its_input() {
        assert!(account_line("bad name", "Ana", "a long enough password").is_err());
        assert!(account_line("ana", "", "a long enough password").is_err());
        assert!(account_line("ana", "Ana", "short").is_err());
    }
}
