//! What happened to each row written through the store: the material of import reports.

use rxmember_core::clean::CleanError;
use serde::Serialize;

/// A problem with one field of one row: the column, the value found, a stable code, a Chinese reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Issue {
    pub field: String,
    pub value: String,
    pub code: &'static str,
    pub message: String,
}

impl Issue {
    pub fn new(field: &str, value: &str, code: &'static str, message: impl Into<String>) -> Issue {
        Issue { field: field.into(), value: value.into(), code, message: message.into() }
    }

    pub fn from_clean(field: &str, value: &str, e: CleanError) -> Issue {
        Issue { field: field.into(), value: value.into(), code: e.code, message: e.message }
    }
}

/// The fate of one row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum RowOutcome {
    Inserted,
    Updated,
    /// Already stored exactly so: re-imports change nothing.
    Unchanged,
    /// A duplicate person (same phone): the card became an alias of `into_card`.
    Merged {
        into_card: String,
    },
    Rejected {
        issue: Issue,
    },
}

/// The outcome of one row plus the warnings raised on the way (the row was kept).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowResult {
    pub outcome: RowOutcome,
    pub warnings: Vec<Issue>,
}

impl RowResult {
    pub fn of(outcome: RowOutcome) -> RowResult {
        RowResult { outcome, warnings: Vec::new() }
    }
    pub fn rejected(issue: Issue) -> RowResult {
        RowResult::of(RowOutcome::Rejected { issue })
    }
}
