//! Admin accounts and sessions: argon2id password hashes, random session
//! tokens stored only as SHA-256 hashes, a CSRF token per session.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use crate::secrets::{random, token_hash};
use crate::store::{Session, Store, StoreError};

/// Session lifetime.
pub const SESSION_TTL_MS: i64 = 12 * 60 * 60 * 1000;
/// Shortest accepted admin password.
pub const MIN_PASSWORD_LEN: usize = 10;

/// Why an admin could not be created.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The username is empty or odd.
    #[error("username: use 1–64 letters, digits, '.', '-', '_' or '@'")]
    BadUsername,
    /// The password is too short.
    #[error("password: use at least {MIN_PASSWORD_LEN} characters")]
    WeakPassword,
    /// The database refused.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A random password for a generated admin.
pub fn random_password() -> String {
    random(18)
}

/// Creates an admin with an argon2id hash of `password`.
pub fn create_admin(store: &Store, username: &str, password: &str) -> Result<i64, AdminError> {
    let ok_name = !username.is_empty() && username.len() <= 64 && username.chars().all(|c| c.is_ascii_alphanumeric() || ".-_@".contains(c));
    if !ok_name {
        return Err(AdminError::BadUsername);
    }
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(AdminError::WeakPassword);
    }
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).expect("the OS has randomness");
    let salt = SaltString::encode_b64(&salt).expect("16 bytes is a valid salt");
    let hash = Argon2::default().hash_password(password.as_bytes(), &salt).expect("argon2 with default parameters").to_string();
    Ok(store.create_admin(username, &hash)?)
}

/// Checks a login; on success opens a session and returns its token.
pub fn login(store: &Store, username: &str, password: &str) -> Result<Option<String>, StoreError> {
    let Some((id, hash)) = store.admin(username)? else {
        // Spend the same effort as a real check, so timing does not reveal names.
        let _ = PasswordHash::new("$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$0fU2Yc8WZbQqOYkD6i9m4F6Y0jE0kzQm0m7oXk8u5lQ")
            .map(|h| Argon2::default().verify_password(password.as_bytes(), &h));
        return Ok(None);
    };
    let Ok(parsed) = PasswordHash::new(&hash) else { return Ok(None) };
    if Argon2::default().verify_password(password.as_bytes(), &parsed).is_err() {
        return Ok(None);
    }
    let token = random(32);
    store.create_session(&token_hash(&token), id, &random(24), SESSION_TTL_MS)?;
    Ok(Some(token))
}

/// The session for a cookie token.
pub fn session(store: &Store, token: &str) -> Result<Option<Session>, StoreError> {
    store.session(&token_hash(token))
}

/// Ends the session for a cookie token.
pub fn logout(store: &Store, token: &str) -> Result<(), StoreError> {
    store.delete_session(&token_hash(token))
}

/// Compares CSRF tokens in constant time.
pub fn csrf_ok(session: &Session, given: &str) -> bool {
    let a = session.csrf_token.as_bytes();
    let b = given.as_bytes();
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::SecretBox;

    #[test]
    fn admins_log_in_with_the_right_password_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), SecretBox::new(&[3; 32])).unwrap();
        assert!(matches!(create_admin(&store, "admin", "short"), Err(AdminError::WeakPassword)));
        assert!(matches!(create_admin(&store, "bad name", "long enough pw"), Err(AdminError::BadUsername)));
        create_admin(&store, "admin", "correct horse battery").unwrap();
        assert!(login(&store, "admin", "wrong password!").unwrap().is_none());
        assert!(login(&store, "nobody", "correct horse battery").unwrap().is_none());
        let token = login(&store, "admin", "correct horse battery").unwrap().unwrap();
        let s = session(&store, &token).unwrap().unwrap();
        assert_eq!(s.username, "admin");
        assert!(csrf_ok(&s, &s.csrf_token.clone()));
        assert!(!csrf_ok(&s, "forged"));
        logout(&store, &token).unwrap();
        assert!(session(&store, &token).unwrap().is_none());
    }
}
