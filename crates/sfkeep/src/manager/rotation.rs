//! What the manager knows about the refresh token: whether it rotates, and which one the
//! server refused for good.
//!
//! Salesforce can rotate refresh tokens: each refresh answers with a new one, and presenting
//! an old one again makes the server revoke the whole token family
//! (`docs/salesforce-wire.md` §8.2). [`Rotation::Auto`] learns rotation from the first refresh
//! token other than the configured one. A refresh token the server refused (revoked, expired,
//! reused) is remembered by fingerprint and never sent again, here or — through
//! [`TokenRecord::refused_refresh_token`] — by any process sharing the store, so a manager
//! with a fallback grant goes straight to it.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::grant::Grant;
use crate::sync::lock;
use crate::token::TokenRecord;

/// Whether the refresh token rotates (each refresh returns a new one and the old one dies).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Rotation {
    /// Learned: rotation counts as on once a refresh token other than the configured one is
    /// seen (a refresh response carrying a new one, or such a record in the store).
    #[default]
    Auto,
    /// The app rotates refresh tokens.
    On,
    /// It does not.
    Off,
}

/// Rotation as configured and learned, and the refused refresh token.
#[derive(Debug)]
pub(crate) struct RotationMemory {
    configured: Rotation,
    /// `Rotation::Auto` has seen a rotated refresh token.
    seen: AtomicBool,
    /// Fingerprint of a refresh token the server refused for good.
    refused: Mutex<Option<String>>,
}

impl RotationMemory {
    pub(crate) fn new(configured: Rotation) -> Self {
        Self {
            configured,
            seen: AtomicBool::new(false),
            refused: Mutex::new(None),
        }
    }

    /// The configured setting.
    pub(crate) fn configured(&self) -> Rotation {
        self.configured
    }

    /// Whether refresh tokens rotate, as configured or (for `Auto`) learned so far.
    pub(crate) fn rotates(&self) -> bool {
        match self.configured {
            Rotation::On => true,
            Rotation::Off => false,
            Rotation::Auto => self.seen.load(Ordering::Relaxed),
        }
    }

    /// A record seen (adopted or obtained): under `Auto`, a refresh token other than the one
    /// `primary` was configured with means rotation is on.
    pub(crate) fn note_record(&self, primary: &Grant, rec: &TokenRecord) {
        if self.configured != Rotation::Auto || self.seen.load(Ordering::Relaxed) {
            return;
        }
        if let (Some(configured), Some(rt)) = (
            primary.configured_refresh_token(),
            rec.refresh_token.as_ref(),
        ) && rt.expose_secret() != configured.expose_secret()
        {
            self.seen.store(true, Ordering::Relaxed);
        }
    }

    /// A refresh-token response carried a new refresh token.
    pub(crate) fn note_rotated(&self) {
        if self.configured == Rotation::Auto {
            self.seen.store(true, Ordering::Relaxed);
        }
    }

    /// Whether the refresh token with fingerprint `fp` was refused, by this process or (as
    /// `previous` records) by another one.
    pub(crate) fn is_refused(&self, fp: &str, previous: Option<&TokenRecord>) -> bool {
        lock(&self.refused).as_deref() == Some(fp)
            || previous.and_then(|p| p.refused_refresh_token.as_deref()) == Some(fp)
    }

    /// The server refused the refresh token with fingerprint `fp` for good.
    pub(crate) fn refuse(&self, fp: String) {
        *lock(&self.refused) = Some(fp);
    }

    /// The refused fingerprint to carry into a new record: this process's, else `previous`'s.
    pub(crate) fn refused_for_record(&self, previous: Option<&TokenRecord>) -> Option<String> {
        lock(&self.refused)
            .clone()
            .or_else(|| previous.and_then(|p| p.refused_refresh_token.clone()))
    }
}
