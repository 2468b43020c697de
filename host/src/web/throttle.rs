//! Login throttling: after a few wrong passwords from one client, or many
//! for one username from anywhere, further attempts are answered 429 with
//! `Retry-After` before any password is checked, the wait doubling with each
//! failure. Kept in memory: a restart forgets it, which costs an attacker a
//! restart they cannot cause.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Wrong passwords one client may try before it must wait.
pub(super) const CLIENT_FREE_FAILURES: u32 = 5;
/// Wrong passwords for one username, from all clients, before it must wait:
/// higher, since a locked username also locks out its owner.
pub(super) const USER_FREE_FAILURES: u32 = 20;
/// The longest wait.
const MAX_WAIT: Duration = Duration::from_secs(15 * 60);
/// Failures older than this are forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(30 * 60);
/// Entries kept at most; beyond, stale ones are dropped and new usernames
/// are not tracked (clients always are), so a flood of made-up names cannot
/// grow memory without bound.
const MAX_ENTRIES: usize = 20_000;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Client(IpAddr),
    User(String),
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
    blocked_until: Option<Instant>,
}

/// Failed logins by client and by username.
#[derive(Debug, Default)]
pub(super) struct LoginThrottle {
    failures: Mutex<HashMap<Key, Failures>>,
}

fn user_key(username: &str) -> Key {
    Key::User(username.chars().take(64).collect::<String>().to_lowercase())
}

impl LoginThrottle {
    /// `Err(wait)` if this client or username must wait before trying again.
    pub(super) fn check(&self, client: IpAddr, username: &str, now: Instant) -> Result<(), Duration> {
        let map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let wait = [Key::Client(client), user_key(username)]
            .iter()
            .filter_map(|k| map.get(k)?.blocked_until)
            .filter_map(|until| until.checked_duration_since(now))
            .filter(|d| !d.is_zero())
            .max();
        match wait {
            Some(w) => Err(w),
            None => Ok(()),
        }
    }

    /// Counts a wrong password.
    pub(super) fn failed(&self, client: IpAddr, username: &str, now: Instant) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_ENTRIES {
            map.retain(|_, f| now.duration_since(f.last) < FORGET_AFTER);
        }
        let full = map.len() >= MAX_ENTRIES;
        for (key, free) in [(Key::Client(client), CLIENT_FREE_FAILURES), (user_key(username), USER_FREE_FAILURES)] {
            if full && matches!(key, Key::User(_)) && !map.contains_key(&key) {
                continue;
            }
            let f = map.entry(key).or_insert(Failures { count: 0, last: now, blocked_until: None });
            if now.duration_since(f.last) >= FORGET_AFTER {
                f.count = 0;
            }
            f.count += 1;
            f.last = now;
            if f.count >= free {
                // 1 s at the threshold, doubling, at most MAX_WAIT.
                let wait = Duration::from_secs(1u64 << (f.count - free).min(20)).min(MAX_WAIT);
                f.blocked_until = Some(now + wait);
            }
        }
    }

    /// Forgets a client's and a username's failures after a right password.
    pub(super) fn succeeded(&self, client: IpAddr, username: &str) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(&Key::Client(client));
        map.remove(&user_key(username));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));

    fn client(n: u8) -> IpAddr {
        IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, n))
    }

    #[test]
    fn a_client_waits_after_a_few_failures_and_longer_each_time() {
        let t = LoginThrottle::default();
        let now = Instant::now();
        for _ in 0..CLIENT_FREE_FAILURES - 1 {
            t.check(A, "admin", now).unwrap();
            t.failed(A, "admin", now);
        }
        t.check(A, "admin", now).unwrap();
        t.failed(A, "admin", now);
        assert_eq!(t.check(A, "admin", now), Err(Duration::from_secs(1)));
        // The same client is held back whatever name it tries next.
        assert!(t.check(A, "someone-else", now).is_err());
        let later = now + Duration::from_secs(1);
        t.check(A, "admin", later).unwrap();
        t.failed(A, "admin", later);
        assert_eq!(t.check(A, "admin", later), Err(Duration::from_secs(2)));
        // Another client is not held back for a username below its own limit.
        t.check(client(1), "admin", later).unwrap();
        // A right password clears the client.
        t.succeeded(A, "admin");
        t.check(A, "admin", later).unwrap();
    }

    #[test]
    fn a_username_waits_after_many_failures_from_many_clients() {
        let t = LoginThrottle::default();
        let now = Instant::now();
        for n in 0..USER_FREE_FAILURES as u8 {
            t.failed(client(n), "Admin", now);
        }
        // Any client, any spelling of the name.
        assert!(t.check(client(200), "admin", now).is_err());
        assert!(t.check(client(200), "bob", now).is_ok());
        // Old failures are forgotten.
        let much_later = now + FORGET_AFTER + MAX_WAIT;
        t.check(client(200), "admin", much_later).unwrap();
        t.failed(client(201), "admin", much_later);
        t.check(client(202), "admin", much_later).unwrap();
    }

    #[test]
    fn the_wait_is_capped_and_made_up_names_cannot_grow_memory_without_bound() {
        let t = LoginThrottle::default();
        let now = Instant::now();
        for _ in 0..100 {
            t.failed(A, "admin", now);
        }
        assert_eq!(t.check(A, "admin", now), Err(MAX_WAIT));
        for n in 0..MAX_ENTRIES + 500 {
            t.failed(A, &format!("user{n}"), now);
        }
        assert!(t.failures.lock().unwrap().len() <= MAX_ENTRIES + 1);
    }
}
