//! Task tokens: which attempt of which execution (or which workflow task of
//! which run), authenticated.
//!
//! A token is `[version = 1][key: i64 BE][attempt: u32 BE][HMAC-SHA256]`
//! (45 bytes). The MAC covers a domain label and the 13 bytes before it, with a
//! random 256-bit key the engine generates when it first opens a store and keeps
//! in that store (`meta.task_token_key`), so tokens survive restarts, every engine
//! node sharing the database accepts them, and nobody without the key can forge
//! one or change its attempt. Checking happens before anything is read.
//!
//! Two kinds of tokens share the layout and differ by the MAC's domain label:
//! activity task tokens (key = execution, attempt = attempt number) and workflow
//! task tokens (key = workflow run, attempt = the run's workflow task number). A
//! token of one kind never verifies as the other ([`TokenError::WrongKind`]).

use activity_core::context::TaskToken;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::store::StoreError;

const VERSION: u8 = 1;
const BODY_LEN: usize = 1 + 8 + 4;
const MAC_LEN: usize = 32;
/// Length of every token this engine issues.
pub const TOKEN_LEN: usize = BODY_LEN + MAC_LEN;
const ACTIVITY_DOMAIN: &[u8] = b"activity-task-token/v1";
const WORKFLOW_DOMAIN: &[u8] = b"workflow-task-token/v1";
/// Length of the signing key in bytes.
pub const KEY_LEN: usize = 32;

/// Signs and checks task tokens with the engine's key.
#[derive(Clone)]
pub struct TokenSigner {
    key: [u8; KEY_LEN],
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenSigner(..)")
    }
}

/// Why a token was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a token of this format.
    #[error("malformed: expected {TOKEN_LEN} bytes of version {VERSION}, got {len} bytes")]
    Malformed {
        /// The length received.
        len: usize,
    },
    /// The MAC does not match: forged, altered, or issued by another engine.
    #[error("not issued by this engine, or altered")]
    BadSignature,
    /// A valid token of the other kind (an activity task token given where a
    /// workflow task token is expected, or the reverse).
    #[error("this is {found} token, not {expected} token")]
    WrongKind {
        /// The kind expected, e.g. "a workflow task".
        expected: &'static str,
        /// The kind received.
        found: &'static str,
    },
}

/// Which kind of task a token stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Activity,
    Workflow,
}

impl Kind {
    fn domain(self) -> &'static [u8] {
        match self {
            Kind::Activity => ACTIVITY_DOMAIN,
            Kind::Workflow => WORKFLOW_DOMAIN,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Kind::Activity => "an activity task",
            Kind::Workflow => "a workflow task",
        }
    }

    fn other(self) -> Self {
        match self {
            Kind::Activity => Kind::Workflow,
            Kind::Workflow => Kind::Activity,
        }
    }
}

impl TokenSigner {
    /// A signer with this key.
    pub fn new(key: [u8; KEY_LEN]) -> Self {
        Self { key }
    }

    /// A fresh random key.
    pub fn generate_key() -> Result<[u8; KEY_LEN], StoreError> {
        let mut key = [0_u8; KEY_LEN];
        getrandom::fill(&mut key).map_err(|e| {
            StoreError::Unavailable(format!("no randomness for the task-token key: {e}"))
        })?;
        Ok(key)
    }

    fn mac(&self, kind: Kind, body: &[u8]) -> Hmac<Sha256> {
        // HMAC takes keys of any length: this cannot fail.
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        mac.update(kind.domain());
        mac.update(body);
        mac
    }

    fn sign_kind(&self, kind: Kind, key: i64, attempt: u32) -> TaskToken {
        let mut bytes = Vec::with_capacity(TOKEN_LEN);
        bytes.push(VERSION);
        bytes.extend_from_slice(&key.to_be_bytes());
        bytes.extend_from_slice(&attempt.to_be_bytes());
        let tag = self.mac(kind, &bytes).finalize().into_bytes();
        bytes.extend_from_slice(&tag);
        TaskToken::from_bytes(bytes)
    }

    fn verify_kind(&self, kind: Kind, token: &TaskToken) -> Result<(i64, u32), TokenError> {
        let bytes = token.as_bytes();
        if bytes.len() != TOKEN_LEN || bytes[0] != VERSION {
            return Err(TokenError::Malformed { len: bytes.len() });
        }
        let (body, tag) = bytes.split_at(BODY_LEN);
        if self.mac(kind, body).verify_slice(tag).is_err() {
            if self.mac(kind.other(), body).verify_slice(tag).is_ok() {
                return Err(TokenError::WrongKind {
                    expected: kind.label(),
                    found: kind.other().label(),
                });
            }
            return Err(TokenError::BadSignature);
        }
        let mut key = [0_u8; 8];
        key.copy_from_slice(&body[1..9]);
        let mut attempt = [0_u8; 4];
        attempt.copy_from_slice(&body[9..13]);
        Ok((i64::from_be_bytes(key), u32::from_be_bytes(attempt)))
    }

    /// The token of `attempt` of execution `key`.
    pub fn sign(&self, key: i64, attempt: u32) -> TaskToken {
        self.sign_kind(Kind::Activity, key, attempt)
    }

    /// The (execution key, attempt) of an activity task token this engine issued.
    pub fn verify(&self, token: &TaskToken) -> Result<(i64, u32), TokenError> {
        self.verify_kind(Kind::Activity, token)
    }

    /// The token of workflow task number `task` of the run with store key `run`.
    pub fn sign_workflow_task(&self, run: i64, task: u32) -> TaskToken {
        self.sign_kind(Kind::Workflow, run, task)
    }

    /// The (run key, task number) of a workflow task token this engine issued.
    pub fn verify_workflow_task(&self, token: &TaskToken) -> Result<(i64, u32), TokenError> {
        self.verify_kind(Kind::Workflow, token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_any_change_is_refused() {
        let signer = TokenSigner::new([7; KEY_LEN]);
        let token = signer.sign(42, 3);
        assert_eq!(signer.verify(&token), Ok((42, 3)));
        for i in 0..TOKEN_LEN {
            let mut bytes = token.as_bytes().to_vec();
            bytes[i] ^= 1;
            assert!(
                signer.verify(&TaskToken::from_bytes(bytes)).is_err(),
                "byte {i}"
            );
        }
        let other = TokenSigner::new([8; KEY_LEN]);
        assert_eq!(other.verify(&token), Err(TokenError::BadSignature));
        assert_eq!(
            signer.verify(&TaskToken::from_bytes(vec![1, 2])),
            Err(TokenError::Malformed { len: 2 })
        );
    }

    #[test]
    fn workflow_and_activity_tokens_never_stand_for_each_other() {
        let signer = TokenSigner::new([7; KEY_LEN]);
        let workflow = signer.sign_workflow_task(42, 3);
        let activity = signer.sign(42, 3);
        assert_ne!(workflow, activity);
        assert_eq!(signer.verify_workflow_task(&workflow), Ok((42, 3)));
        assert!(matches!(
            signer.verify(&workflow),
            Err(TokenError::WrongKind { .. })
        ));
        assert!(matches!(
            signer.verify_workflow_task(&activity),
            Err(TokenError::WrongKind { .. })
        ));
        let other = TokenSigner::new([8; KEY_LEN]);
        assert_eq!(
            other.verify_workflow_task(&workflow),
            Err(TokenError::BadSignature)
        );
    }
}
