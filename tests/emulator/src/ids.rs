//! Salesforce record ids: 15 case-sensitive characters (3-character key
//! prefix, pod, counter) plus a 3-character case-folding checksum that makes
//! the 18-character form safe for case-insensitive systems.

use std::sync::atomic::{AtomicU64, Ordering};

/// Key prefixes of the objects the emulator knows.
pub mod prefix {
    /// Organization.
    pub const ORG: &str = "00D";
    /// User.
    pub const USER: &str = "005";
    /// Contact.
    pub const CONTACT: &str = "003";
    /// Account.
    pub const ACCOUNT: &str = "001";
    /// Profile.
    pub const PROFILE: &str = "00e";
    /// Group (a public group, a queue).
    pub const GROUP: &str = "00G";
    /// GroupMember.
    pub const GROUP_MEMBER: &str = "011";
    /// Query locator (`nextRecordsUrl`).
    pub const QUERY_LOCATOR: &str = "01g";
}

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const CHECKSUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";

/// Hands out ids; one per emulator so a run is reproducible from its seed.
#[derive(Debug, Default)]
pub struct IdGen {
    next: AtomicU64,
}

impl IdGen {
    /// The next 18-character id with `prefix`.
    pub fn next(&self, prefix: &str) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        make(prefix, n)
    }
}

/// Builds the 18-character id for `prefix` and counter `n`.
pub fn make(prefix: &str, n: u64) -> String {
    let mut counter = [b'0'; 9];
    let mut v = n;
    for slot in counter.iter_mut().rev() {
        *slot = BASE62[(v % 62) as usize];
        v /= 62;
    }
    // Pod "5g" then "0": the shape of ids seen in real orgs.
    let id15 = format!("{prefix}5g0{}", std::str::from_utf8(&counter).expect("ascii"));
    let suffix = checksum(&id15);
    id15 + &suffix
}

/// The 3-character checksum suffix of a 15-character id.
pub fn checksum(id15: &str) -> String {
    let bytes = id15.as_bytes();
    (0..3)
        .map(|chunk| {
            let mut flags = 0usize;
            for i in 0..5 {
                if bytes[chunk * 5 + i].is_ascii_uppercase() {
                    flags |= 1 << i;
                }
            }
            CHECKSUM[flags] as char
        })
        .collect()
}

/// Normalises a 15- or 18-character id to 18 characters, or `None` when it is
/// not an id at all (wrong length, characters, or checksum).
pub fn normalize(raw: &str) -> Option<String> {
    if !raw.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    match raw.len() {
        15 => Some(format!("{raw}{}", checksum(raw))),
        18 => {
            // The suffix is case-insensitive; it restores the case of the body.
            let body = &raw[..15];
            if checksum(body).eq_ignore_ascii_case(&raw[15..]) {
                Some(format!("{body}{}", checksum(body)))
            } else {
                None
            }
        }
        _ => None,
    }
}

/// Whether `id` (already normalised) belongs to the object with `prefix`.
pub fn has_prefix(id: &str, prefix: &str) -> bool {
    id.starts_with(prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_eighteen_characters_with_a_valid_checksum() {
        let g = IdGen::default();
        let a = g.next(prefix::CONTACT);
        let b = g.next(prefix::CONTACT);
        assert_ne!(a, b);
        assert_eq!(a.len(), 18);
        assert!(a.starts_with("003"));
        assert_eq!(normalize(&a).as_deref(), Some(a.as_str()));
        assert_eq!(normalize(&a[..15]).as_deref(), Some(a.as_str()));
    }

    #[test]
    fn a_known_salesforce_id_has_its_real_checksum() {
        // From Salesforce's documentation of the 15→18 conversion.
        assert_eq!(checksum("001A0000006Vm9r"), "IAC");
        assert_eq!(normalize("001A0000006Vm9rIAC").as_deref(), Some("001A0000006Vm9rIAC"));
        assert_eq!(normalize("001A0000006Vm9riac").as_deref(), Some("001A0000006Vm9rIAC"));
    }

    #[test]
    fn malformed_ids_are_refused() {
        assert_eq!(normalize("abc"), None);
        assert_eq!(normalize("001A0000006Vm9rXXX"), None);
        assert_eq!(normalize("001A0000006Vm9r!!"), None);
        assert_eq!(normalize("001A0000006Vm9-IAC"), None);
    }
}
