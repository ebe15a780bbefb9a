//! Proxy-local credentials: what the login shims hand out instead of the org's token.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// At most this many proxy-local credentials are remembered (oldest forgotten first).
const MAX_SESSIONS: usize = 100_000;

/// Proxy-local credentials: random, known only by their SHA-256, useless against Salesforce.
#[derive(Default)]
pub(crate) struct Sessions {
    inner: Mutex<Known>,
}

/// Digests of live credentials, and their issue order for eviction.
type Known = (HashSet<[u8; 32]>, VecDeque<[u8; 32]>);

fn digest(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

impl Sessions {
    /// A new credential, `{org15}!SFKEEP.{random}`.
    pub(crate) fn issue(&self, org: &str) -> String {
        let random: [u8; 32] = rand::random();
        let prefix: String = org.chars().take(15).collect();
        let id = format!("{prefix}!SFKEEP.{}", URL_SAFE_NO_PAD.encode(random));
        let d = digest(&id);
        let mut g = sfkeep::sync::lock(&self.inner);
        if g.0.insert(d) {
            g.1.push_back(d);
        }
        while g.1.len() > MAX_SESSIONS {
            if let Some(old) = g.1.pop_front() {
                g.0.remove(&old);
            }
        }
        id
    }

    pub(crate) fn contains(&self, s: &str) -> bool {
        let d = digest(s);
        sfkeep::sync::lock(&self.inner).0.contains(&d)
    }

    pub(crate) fn remove(&self, s: &str) {
        let d = digest(s);
        let mut g = sfkeep::sync::lock(&self.inner);
        if g.0.remove(&d) {
            g.1.retain(|x| *x != d);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_remembered_by_digest() {
        let s = Sessions::default();
        let a = s.issue("00D5g000001ABCDEAA");
        assert!(a.starts_with("00D5g000001ABCD!SFKEEP."));
        assert!(s.contains(&a));
        assert!(!s.contains("00D5g000001ABCD!SFKEEP.x"));
        s.remove(&a);
        assert!(!s.contains(&a));
    }
}
