//! Who belongs to which conversation: the one place the core asks.
//!
//! The roles come from each repository's tree (`admins/`, `members/`, `invited/`,
//! `banned/`); the shell reads them at start and after every change of a repository, and
//! the core keeps them here. Every rule that depends on a role reads it through these
//! methods, each named after the question it answers.

use std::collections::BTreeMap;

use pamoja_swarm::Role;

/// The conversations held, with their members' roles.
#[derive(Debug, Default, Clone)]
pub struct Members {
    by_conversation: BTreeMap<String, Vec<(String, Role)>>,
}

impl Members {
    /// Records the roles of a conversation (replacing what was known).
    pub fn set(&mut self, conversation: &str, members: Vec<(String, Role)>) {
        self.by_conversation
            .insert(conversation.to_owned(), members);
    }

    /// Forgets a conversation (left or removed).
    pub fn remove(&mut self, conversation: &str) {
        self.by_conversation.remove(conversation);
    }

    /// The members of a conversation with their roles.
    pub fn of(&self, conversation: &str) -> Vec<(String, Role)> {
        self.by_conversation
            .get(conversation)
            .cloned()
            .unwrap_or_default()
    }

    /// Whether we hold this conversation.
    pub fn holds(&self, conversation: &str) -> bool {
        self.by_conversation.contains_key(conversation)
    }

    /// The conversations held, sorted.
    pub fn conversations(&self) -> impl Iterator<Item = &String> {
        self.by_conversation.keys()
    }

    /// An account's role in a conversation, if it has one.
    pub fn role(&self, conversation: &str, account: &str) -> Option<Role> {
        self.by_conversation
            .get(conversation)?
            .iter()
            .find(|(u, _)| u == account)
            .map(|(_, r)| *r)
    }

    /// Whether `account` takes part (admin or member): its notices are heeded, it gets
    /// ours.
    pub fn takes_part(&self, conversation: &str, account: &str) -> bool {
        matches!(
            self.role(conversation, account),
            Some(Role::Admin | Role::Member)
        )
    }

    /// Whether `account` may read the conversation: admin, member or invited (an invited
    /// account clones before it joins). Banned accounts and strangers may not.
    pub fn may_read(&self, conversation: &str, account: &str) -> bool {
        matches!(
            self.role(conversation, account),
            Some(Role::Admin | Role::Member | Role::Invited)
        )
    }

    /// Whether `account` is named and not banned (typing and read receipts reach it).
    pub fn not_banned(&self, conversation: &str, account: &str) -> bool {
        matches!(self.role(conversation, account), Some(r) if r != Role::Banned)
    }

    /// The accounts that get notices of new commits: admins and members but `me` and
    /// `except`.
    pub fn to_notify(&self, conversation: &str, me: &str, except: Option<&str>) -> Vec<String> {
        self.by_conversation
            .get(conversation)
            .map(|ms| {
                ms.iter()
                    .filter(|(u, r)| {
                        matches!(r, Role::Admin | Role::Member)
                            && u != me
                            && Some(u.as_str()) != except
                    })
                    .map(|(u, _)| u.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every account named in any conversation and not banned there.
    pub fn everyone(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .by_conversation
            .values()
            .flatten()
            .filter(|(_, r)| *r != Role::Banned)
            .map(|(u, _)| u.clone())
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// The conversations `account` may read.
    pub fn shared_with(&self, account: &str) -> Vec<String> {
        self.by_conversation
            .keys()
            .filter(|c| self.not_banned(c, account))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_answer_each_question() {
        let mut m = Members::default();
        m.set(
            "c",
            vec![
                ("me".into(), Role::Admin),
                ("bob".into(), Role::Member),
                ("carol".into(), Role::Invited),
                ("mallory".into(), Role::Banned),
            ],
        );
        assert!(m.takes_part("c", "bob"));
        assert!(!m.takes_part("c", "carol"));
        assert!(m.may_read("c", "carol"));
        assert!(!m.may_read("c", "mallory"));
        assert!(!m.may_read("c", "stranger"));
        assert!(!m.may_read("other", "bob"));
        assert_eq!(m.to_notify("c", "me", None), vec!["bob".to_string()]);
        assert!(m.to_notify("c", "me", Some("bob")).is_empty());
        assert_eq!(m.everyone(), vec!["bob", "carol", "me"]);
        assert_eq!(m.shared_with("mallory"), Vec::<String>::new());
        assert_eq!(m.shared_with("carol"), vec!["c".to_string()]);
    }
}
