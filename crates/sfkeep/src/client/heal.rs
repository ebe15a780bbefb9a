//! The heal step: one request's "token → send → session verdict → invalidate → replay once",
//! written once for every transport sfkeep has ([`Client`](super::Client), the tower
//! [`SessionLayer`](super::SessionLayer) and the proxy's hand-written forwarding path).
//!
//! [`HealStep`] does not send anything: the caller owns the transport and asks the step what
//! an answer means. That keeps it free of any HTTP stack, and cheap enough for a hot path: it
//! is three words on the stack, and deciding allocates nothing (a SOAP fault is read in place).
//!
//! # Contract
//!
//! For one request, make one `HealStep` and loop:
//!
//! 1. take a token from the manager ([`TokenManager::token`]) and send the request with it;
//! 2. if [`HealStep::inspects`] says no for the answer's status, the answer says nothing about
//!    the session: deliver it (it may stream);
//! 3. otherwise read the body (a bounded prefix is enough: an answer that means a dead session
//!    is small) and call [`HealStep::decide`]:
//!    - [`Heal::Replay`]: the session was dead; the token's generation has been invalidated, so
//!      the next [`TokenManager::token`] call takes the one shared refresh. Send again.
//!    - anything else: deliver the answer as it is (or as the caller's error).
//!
//! A step replays at most once: a session that is dead again after the replay is
//! [`Heal::DeadAgain`], never a loop. One exception, bounded: a user-wide death (a logout, a
//! password change) kills every session issued before it, so a replay whose token was issued
//! no later than the first dead answer (a newer token adopted from the store, not yet known
//! dead) may die of the same death; that replay is followed by one more refresh and replay.
//! A token minted after the death that dies too is [`Heal::DeadAgain`]. A dead answer always invalidates the token's generation,
//! even when the request cannot be replayed (its body was streamed away), so the next request
//! gets a new token. An answer a refresh cannot fix ([`Heal::Unfixable`]) invalidates nothing
//! and costs no token request.
//!
//! # Example
//!
//! A transport of your own (here a closure standing in for it):
//!
//! ```
//! use sfkeep::client::{Heal, HealStep};
//! use sfkeep::diagnose::api_error::Api;
//! use sfkeep::TokenManager;
//!
//! # async fn send(_token: &sfkeep::Token) -> (u16, Vec<u8>) { (200, Vec::new()) }
//! async fn call(manager: &TokenManager) -> sfkeep::Result<(u16, Vec<u8>)> {
//!     let mut step = HealStep::new(Api::Rest);
//!     loop {
//!         let token = manager.token().await?;
//!         let (status, body) = send(&token).await;
//!         if !step.inspects(status) {
//!             return Ok((status, body));
//!         }
//!         match step.decide(manager, &token, status, Some(&body), true) {
//!             Heal::Replay => continue,
//!             _ => return Ok((status, body)),
//!         }
//!     }
//! }
//! ```

use crate::clock::UnixMillis;
use crate::diagnose::Cause;
use crate::diagnose::api_error::{Api, SessionVerdict, session_verdict};
use crate::manager::{Token, TokenManager};

/// One request's heal step. See the module docs for the contract.
#[derive(Clone, Copy, Debug)]
pub struct HealStep {
    api: Api,
    replays: u8,
    /// When the first dead answer was seen (server clock).
    first_death: Option<UnixMillis>,
}

/// What [`HealStep::decide`] says to do with an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Heal {
    /// The answer says nothing against the session: deliver it.
    Deliver,
    /// The session was dead and the token's generation is invalidated: take a token again and
    /// send the same request once more.
    Replay,
    /// The session is dead, and this request cannot heal it: it was replayed already, or the
    /// caller said it cannot be replayed. The token's generation is invalidated (the next
    /// request refreshes); deliver the answer.
    DeadAgain,
    /// An authentication failure a refresh cannot fix ("This session is not valid for use with
    /// the REST API"): deliver the answer; nothing was invalidated.
    Unfixable(Cause),
}

impl HealStep {
    /// A step for a request to `api`.
    pub const fn new(api: Api) -> Self {
        Self {
            api,
            replays: 0,
            first_death: None,
        }
    }

    /// The API the request goes to.
    pub fn api(&self) -> Api {
        self.api
    }

    /// The request was replayed already (once, or twice after a user-wide death).
    pub fn replayed(&self) -> bool {
        self.replays > 0
    }

    /// An answer with `status` may mean a dead session, so its body must be read and given to
    /// [`HealStep::decide`]: a REST / Bulk 2.0 401 or 403, a SOAP 500 (a fault), a Bulk 1.0
    /// 400. Any other answer is [`Heal::Deliver`] without reading it.
    pub fn inspects(&self, status: u16) -> bool {
        match self.api {
            Api::Rest => status == 401 || status == 403,
            Api::Soap => status == 500,
            Api::Bulk1 => status == 400,
        }
    }

    /// Decides what to do with an answer to a request sent with `token`. `body` is the
    /// answer's body (or its first 64 KiB), or `None` when it cannot be read (compressed): a
    /// REST 401 then still counts as a dead session, anything else as alive. `replayable`: the
    /// request can be sent again (its body was kept).
    pub fn decide(
        &mut self,
        manager: &TokenManager,
        token: &Token,
        status: u16,
        body: Option<&[u8]>,
        replayable: bool,
    ) -> Heal {
        if !self.inspects(status) {
            return Heal::Deliver;
        }
        let verdict = match body {
            Some(body) => session_verdict(self.api, status, body),
            None if self.api == Api::Rest && status == 401 => SessionVerdict::Dead,
            None => SessionVerdict::Alive,
        };
        match verdict {
            SessionVerdict::Alive => Heal::Deliver,
            SessionVerdict::Unfixable(cause) => Heal::Unfixable(cause),
            SessionVerdict::Dead => {
                manager.invalidate_if_current(token.generation(), self.api);
                let first_death = *self
                    .first_death
                    .get_or_insert_with(|| manager.server_clock().now());
                // The replay's token predates the death the first answer reported: it may
                // have died of it too (see the module docs).
                let died_of_the_same_death =
                    self.replays == 1 && token.record().issued_at <= first_death;
                if !replayable || (self.replays > 0 && !died_of_the_same_death) {
                    Heal::DeadAgain
                } else {
                    self.replays += 1;
                    Heal::Replay
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_answers_that_can_mean_a_dead_session_are_inspected() {
        let rest = HealStep::new(Api::Rest);
        assert!(rest.inspects(401) && rest.inspects(403));
        assert!(!rest.inspects(200) && !rest.inspects(500) && !rest.inspects(400));
        assert!(HealStep::new(Api::Soap).inspects(500));
        assert!(!HealStep::new(Api::Soap).inspects(401));
        assert!(HealStep::new(Api::Bulk1).inspects(400));
        assert!(std::mem::size_of::<HealStep>() <= 3 * std::mem::size_of::<usize>());
    }
}
