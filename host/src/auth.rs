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
pub async fn create_admin(store: &Store, username: &str, password: &str) -> Result<i64, AdminError> {
    check_new_admin(username, password)?;
    Ok(store.create_admin(username, &hash(password).await).await?)
}

/// Creates the first admin, unless one exists (on PostgreSQL, once however
/// many nodes start together); its id, or `None` when there was one.
pub async fn create_first_admin(store: &Store, username: &str, password: &str) -> Result<Option<i64>, AdminError> {
    match store.postgres() {
        Some(pg) => {
            check_new_admin(username, password)?;
            Ok(pg.create_first_admin(username, &hash(password).await).await?)
        }
        None if store.admin_count().await? > 0 => Ok(None),
        None => create_admin(store, username, password).await.map(Some),
    }
}

fn check_new_admin(username: &str, password: &str) -> Result<(), AdminError> {
    let ok_name = !username.is_empty() && username.len() <= 64 && username.chars().all(|c| c.is_ascii_alphanumeric() || ".-_@".contains(c));
    if !ok_name {
        return Err(AdminError::BadUsername);
    }
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(AdminError::WeakPassword);
    }
    Ok(())
}

/// An argon2id hash, computed off the async workers (it takes tens of ms
/// of CPU by design).
async fn hash(password: &str) -> String {
    let password = password.to_string();
    tokio::task::spawn_blocking(move || hash_now(&password)).await.expect("hashing does not panic")
}

/// Whether `password` matches `hash`, checked off the async workers.
async fn verify(password: &str, hash: &str) -> bool {
    let (password, hash) = (password.to_string(), hash.to_string());
    tokio::task::spawn_blocking(move || verify_now(&password, &hash)).await.unwrap_or(false)
}

fn hash_now(password: &str) -> String {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).expect("the OS has randomness");
    let salt = SaltString::encode_b64(&salt).expect("16 bytes is a valid salt");
    Argon2::default().hash_password(password.as_bytes(), &salt).expect("argon2 with default parameters").to_string()
}

fn verify_now(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

/// Why a password was not changed.
#[derive(Debug, thiserror::Error)]
pub enum PasswordChangeError {
    /// The current password given is wrong.
    #[error("current password: that is not your current password")]
    WrongCurrent,
    /// The new password is too short.
    #[error("new password: use at least {MIN_PASSWORD_LEN} characters")]
    WeakPassword,
    /// The two new passwords differ.
    #[error("confirm new password: the two new passwords differ")]
    Mismatch,
    /// The database refused.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Changes an admin's password after checking the current one, and ends
/// every other session of theirs; `keep` (the session asking) stays.
pub async fn change_password(store: &Store, keep: &Session, current: &str, new: &str, confirm: &str) -> Result<(), PasswordChangeError> {
    let admin_id = keep.admin_id;
    let stored = store.admin_password_hash(admin_id).await?.unwrap_or_default();
    if !verify(current, &stored).await {
        return Err(PasswordChangeError::WrongCurrent);
    }
    if new.chars().count() < MIN_PASSWORD_LEN {
        return Err(PasswordChangeError::WeakPassword);
    }
    if new != confirm {
        return Err(PasswordChangeError::Mismatch);
    }
    store.set_password(admin_id, &hash(new).await, Some(&keep.token_hash)).await?;
    Ok(())
}

/// Ends every session of `keep`'s admin but `keep` itself.
pub async fn end_other_sessions(store: &Store, keep: &Session) -> Result<usize, StoreError> {
    store.end_sessions(keep.admin_id, Some(&keep.token_hash)).await
}

/// Checks a login; on success opens a session and returns its token.
pub async fn login(store: &Store, username: &str, password: &str) -> Result<Option<String>, StoreError> {
    let Some((id, hash)) = store.admin(username).await? else {
        // Spend the same effort as a real check, so timing does not reveal names.
        let _ = verify(password, "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$0fU2Yc8WZbQqOYkD6i9m4F6Y0jE0kzQm0m7oXk8u5lQ").await;
        return Ok(None);
    };
    if !verify(password, &hash).await {
        return Ok(None);
    }
    let token = random(32);
    store.create_session(&token_hash(&token), id, &random(24), SESSION_TTL_MS).await?;
    Ok(Some(token))
}

/// The session for a cookie token.
pub async fn session(store: &Store, token: &str) -> Result<Option<Session>, StoreError> {
    store.session(&token_hash(token)).await
}

/// Ends the session for a cookie token.
pub async fn logout(store: &Store, token: &str) -> Result<(), StoreError> {
    store.delete_session(&token_hash(token)).await
}

/// Longest API token lifetime, in days (ten years).
pub const MAX_TOKEN_DAYS: u32 = 3650;

/// Creates an API token: `name` is 1–64 printable characters; it expires
/// after `days` if given. Returns the token, to be shown once.
pub async fn create_api_token(store: &Store, name: &str, days: Option<u32>) -> Result<String, TokenError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(TokenError::BadName);
    }
    let expires_at = match days {
        None => None,
        Some(d) if (1..=MAX_TOKEN_DAYS).contains(&d) => Some(crate::store::now_ms() + i64::from(d) * 24 * 60 * 60 * 1000),
        Some(_) => return Err(TokenError::BadExpiry),
    };
    Ok(store.create_api_token(name, expires_at).await?)
}

/// Why an API token was not made.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The name is empty, too long or has control characters.
    #[error("name: use 1–64 printable characters")]
    BadName,
    /// The lifetime is out of range.
    #[error("expires after: use 1 to {MAX_TOKEN_DAYS} days, or nothing for a token that does not expire")]
    BadExpiry,
    /// The database refused (e.g. the name is taken).
    #[error(transparent)]
    Store(#[from] StoreError),
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

    #[tokio::test]
    async fn admins_log_in_with_the_right_password_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), SecretBox::new(&[3; 32])).unwrap();
        assert!(matches!(create_admin(&store, "admin", "short").await, Err(AdminError::WeakPassword)));
        assert!(matches!(create_admin(&store, "bad name", "long enough pw").await, Err(AdminError::BadUsername)));
        create_admin(&store, "admin", "correct horse battery").await.unwrap();
        assert!(login(&store, "admin", "wrong password!").await.unwrap().is_none());
        assert!(login(&store, "nobody", "correct horse battery").await.unwrap().is_none());
        let token = login(&store, "admin", "correct horse battery").await.unwrap().unwrap();
        let s = session(&store, &token).await.unwrap().unwrap();
        assert_eq!(s.username, "admin");
        assert!(csrf_ok(&s, &s.csrf_token.clone()));
        assert!(!csrf_ok(&s, "forged"));
        logout(&store, &token).await.unwrap();
        assert!(session(&store, &token).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_password_change_checks_the_current_one_and_ends_other_sessions() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), SecretBox::new(&[3; 32])).unwrap();
        let id = create_admin(&store, "admin", "correct horse battery").await.unwrap();
        let here = login(&store, "admin", "correct horse battery").await.unwrap().unwrap();
        let here = session(&store, &here).await.unwrap().unwrap();
        let elsewhere = login(&store, "admin", "correct horse battery").await.unwrap().unwrap();
        assert!(matches!(change_password(&store, &here, "guess guess guess", "new password 1", "new password 1").await, Err(PasswordChangeError::WrongCurrent)));
        assert!(matches!(change_password(&store, &here, "correct horse battery", "short", "short").await, Err(PasswordChangeError::WeakPassword)));
        assert!(matches!(change_password(&store, &here, "correct horse battery", "new password 1", "new password 2").await, Err(PasswordChangeError::Mismatch)));
        assert!(session(&store, &elsewhere).await.unwrap().is_some(), "refused changes end nothing");
        change_password(&store, &here, "correct horse battery", "new password 1", "new password 1").await.unwrap();
        assert!(store.session(&here.token_hash).await.unwrap().is_some(), "the session that changed it stays");
        assert!(session(&store, &elsewhere).await.unwrap().is_none(), "every other session ends");
        assert!(login(&store, "admin", "correct horse battery").await.unwrap().is_none());
        assert!(login(&store, "admin", "new password 1").await.unwrap().is_some());
        assert_eq!(end_other_sessions(&store, &here).await.unwrap(), 1);
        assert_eq!(store.session_count(id).await.unwrap(), 1);
    }
}
