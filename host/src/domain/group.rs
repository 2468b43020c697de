//! Groups of people in the registry, and the jobs that provision them.

use registry_plugin_runtime::latest::types;
use serde::{Deserialize, Serialize};

use super::person::{FieldProblem, MAX_VALUE, valid_id};

/// Most groups one person may belong to.
pub const MAX_GROUPS_PER_PERSON: usize = 200;
/// Longest group description.
pub const MAX_DESCRIPTION: usize = 1024;

/// A group: an id, a name, a description. Its members are the people whose
/// `groups` name it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Group {
    /// Stable registry id; generated when not given, never reused.
    #[serde(default)]
    pub id: String,
    /// Unique name, e.g. "Physics faculty".
    #[serde(default)]
    pub name: String,
    /// What it is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl Group {
    /// Trims and checks, reporting every problem at once.
    pub fn normalize(&mut self) -> Result<(), Vec<FieldProblem>> {
        let mut problems = Vec::new();
        self.id = self.id.trim().to_string();
        self.name = self.name.trim().to_string();
        self.description = self.description.take().map(|d| d.trim().to_string()).filter(|d| !d.is_empty());
        if !self.id.is_empty() && !valid_id(&self.id) {
            problems.push(FieldProblem { field: "id".into(), message: "use 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit".into() });
        }
        if self.name.is_empty() {
            problems.push(FieldProblem { field: "name".into(), message: "a group needs a name".into() });
        }
        if self.name.chars().count() > MAX_VALUE || self.name.chars().any(char::is_control) {
            problems.push(FieldProblem { field: "name".into(), message: format!("at most {MAX_VALUE} characters, on one line") });
        }
        if self.description.as_ref().is_some_and(|d| d.chars().count() > MAX_DESCRIPTION) {
            problems.push(FieldProblem { field: "description".into(), message: format!("at most {MAX_DESCRIPTION} characters") });
        }
        if problems.is_empty() { Ok(()) } else { Err(problems) }
    }
}

/// Why a group job runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupAction {
    /// New, or new in the target's scope.
    Added,
    /// Renamed or described anew.
    Updated,
    /// Deleted, or out of the target's scope.
    Deleted,
    /// People joined or left, or were provisioned or removed on the target.
    MembersChanged,
    /// Sent again on an administrator's request.
    Reprovision,
}

impl GroupAction {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupAction::Added => "group_added",
            GroupAction::Updated => "group_updated",
            GroupAction::Deleted => "group_deleted",
            GroupAction::MembersChanged => "members_changed",
            GroupAction::Reprovision => "group_reprovision",
        }
    }

    /// From the stored form.
    pub fn parse(s: &str) -> Option<GroupAction> {
        [GroupAction::Added, GroupAction::Updated, GroupAction::Deleted, GroupAction::MembersChanged, GroupAction::Reprovision].into_iter().find(|a| a.as_str() == s)
    }

    /// Whether a job already queued for the same group and target (its
    /// action `queued`) covers this one: a job reads the group as it is
    /// when it runs, so it covers later updates and membership changes; a
    /// queued deletion stands unless the group comes back; an addition, a
    /// deletion or a reprovision replaces what is queued.
    pub fn covered_by(self, queued: Option<GroupAction>) -> bool {
        match queued {
            None => false,
            Some(GroupAction::Deleted) => !matches!(self, GroupAction::Added | GroupAction::Reprovision),
            Some(_) => !matches!(self, GroupAction::Added | GroupAction::Deleted | GroupAction::Reprovision),
        }
    }

    /// The WIT action.
    pub fn to_wit(self) -> types::GroupAction {
        match self {
            GroupAction::Added => types::GroupAction::GroupAdded,
            GroupAction::Updated => types::GroupAction::GroupUpdated,
            GroupAction::Deleted => types::GroupAction::GroupDeleted,
            GroupAction::MembersChanged => types::GroupAction::MembersChanged,
            GroupAction::Reprovision => types::GroupAction::ReprovisionRequested,
        }
    }
}

/// A queued or claimed group job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupJob {
    /// Row id (also the order).
    pub id: i64,
    /// The group.
    pub group_id: String,
    /// The target.
    pub target_id: i64,
    /// Why.
    pub action: GroupAction,
    /// Failed attempts so far.
    pub attempts: u32,
    /// The claim it was taken with (see `Job::claim`); 0 on SQLite.
    pub claim: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_needs_a_plain_id_and_a_name_on_one_line() {
        let mut g = Group { id: " physics ".into(), name: "  Physics faculty ".into(), description: Some("  ".into()) };
        g.normalize().unwrap();
        assert_eq!(g, Group { id: "physics".into(), name: "Physics faculty".into(), description: None });
        let mut bad = Group { id: "no spaces".into(), name: "a\nb".into(), description: Some("x".repeat(2000)) };
        let problems = bad.normalize().unwrap_err();
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["id", "name", "description"]);
        for a in ["group_added", "group_updated", "group_deleted", "members_changed", "group_reprovision"] {
            assert_eq!(GroupAction::parse(a).unwrap().as_str(), a);
        }
    }
}
