//! The rows filegate reads from Better Auth's tables.

use super::values::{DateFormat, parse_time};
use deadpool_sqlite::rusqlite::types::Value;
use filegate_core::domain::{AuthMethod, Principal};
use time::OffsetDateTime;

#[derive(Debug, Clone)]
pub(crate) struct SessionRow {
    pub user_id: String,
    pub expires_at: Stamp,
    pub active_org_id: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct UserRow {
    /// The admin plugin's platform role.
    pub role: Option<String>,
    pub banned: bool,
    pub ban_expires: Stamp,
}

impl UserRow {
    /// Banned now: the admin plugin's `banned` with no `banExpires`, or one still ahead.
    pub(crate) fn is_banned(&self, now: OffsetDateTime) -> bool {
        self.banned
            && match self.ban_expires {
                Stamp::Absent | Stamp::Unreadable => true,
                Stamp::At(t) => t > now,
            }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct UserFacts {
    pub user: UserRow,
    /// The `member.role` in the organization asked about; `None` when not a member.
    pub member_role: Option<String>,
}

impl UserFacts {
    /// The principal: `org_id` becomes the active organization only with a membership.
    pub(crate) fn principal(
        &self,
        user_id: String,
        org_id: Option<String>,
        method: AuthMethod,
    ) -> Principal {
        let (active_org_id, roles) = match (&self.member_role, org_id) {
            (Some(role), Some(org)) => (Some(org), split_roles(role)),
            _ => (None, Vec::new()),
        };
        Principal {
            user_id,
            active_org_id,
            roles,
            platform_role: self.user.role.clone(),
            method,
        }
    }
}

/// `member.role` may hold several comma-separated roles (the organization plugin's
/// multi-role form).
pub(crate) fn split_roles(role: &str) -> Vec<String> {
    role.split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A stored date: absent (NULL), readable, or present but unreadable (fail closed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stamp {
    Absent,
    At(OffsetDateTime),
    Unreadable,
}

impl Stamp {
    pub(super) fn read(v: Value) -> Self {
        match v {
            Value::Null => Self::Absent,
            other => parse_time(&other).map_or(Self::Unreadable, Self::At),
        }
    }

    pub(super) fn at(self) -> Option<OffsetDateTime> {
        match self {
            Self::At(t) => Some(t),
            Self::Absent | Self::Unreadable => None,
        }
    }
}

/// An API key row, with the columns Better Auth's verification reads.
#[derive(Debug, Clone)]
pub(crate) struct ApiKeyRow {
    pub id: String,
    pub key_hash: String,
    /// `userId`, or `referenceId` in `@better-auth/api-key`.
    pub owner_id: String,
    pub enabled: Option<bool>,
    pub expires_at: Stamp,
    pub remaining: Option<i64>,
    pub refill_interval: Option<i64>,
    pub refill_amount: Option<i64>,
    pub last_refill_at: Stamp,
    pub rate_limit_enabled: Option<bool>,
    pub rate_limit_time_window: Option<i64>,
    pub rate_limit_max: Option<i64>,
    pub request_count: Option<i64>,
    pub last_request: Stamp,
    pub created_at: Stamp,
    /// How this row stores dates, so what filegate writes reads back the same way.
    pub date_format: DateFormat,
    pub metadata: Option<String>,
}
