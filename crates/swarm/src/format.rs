//! What every conversation repository is made of: its branch, the signature header and
//! the modes. Shared by [`conversation`](crate::conversation), which writes repositories, and
//! [`validate`](crate::validate), which checks them; both re-export or use it from here.

/// The branch every conversation lives on.
pub const BRANCH: &str = "refs/heads/main";

/// The commit header that carries the signature.
pub const SIGNATURE_FIELD: &str = "signature";

/// Conversation modes (the initial commit's `mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Two accounts; the initial commit names the invited one.
    OneToOne = 0,
    /// Only admins invite (not enforced by jamid 2023).
    AdminInvitesOnly = 1,
    /// Members invite (the default of `startConversation`).
    InvitesOnly = 2,
    /// Anyone may join.
    Public = 3,
}

impl Mode {
    /// The mode of a number, if it is one jamid 2023 loads.
    pub fn from_i64(n: i64) -> Option<Self> {
        Some(match n {
            0 => Self::OneToOne,
            1 => Self::AdminInvitesOnly,
            2 => Self::InvitesOnly,
            3 => Self::Public,
            _ => return None,
        })
    }
}
