//! Better Auth's API-key verification rules, as a pure function.

use super::rows::{ApiKeyRow, Stamp};
use time::OffsetDateTime;

/// Why a key was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    Disabled,
    Expired,
    UnreadableExpiry,
    UsageExceeded,
    RateLimited,
}

#[derive(Debug, Clone)]
pub(crate) enum KeyUse {
    Accepted(Box<ApiKeyRow>),
    Refused(Refusal),
}

/// The counters an accepted request changes; `None` fields are left as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct KeyUpdate {
    pub last_request: Option<OffsetDateTime>,
    pub request_count: Option<i64>,
    pub remaining: Option<i64>,
    pub last_refill_at: Option<OffsetDateTime>,
}

/// Better Auth's `validateApiKey` (checks and counter updates) as a pure function.
///
/// Order and rules follow better-auth's `verify-api-key.ts` and `rate-limit.ts`:
/// `enabled === false` → disabled; `now > expiresAt` → expired; `remaining === 0` with
/// no refill → usage exceeded; a refill when `refillInterval` ms have passed since
/// `lastRefillAt ?? createdAt`; `remaining === 0` → usage exceeded, else decremented;
/// then the rate limit: off when disabled by the plugin or the key (`lastRequest` still
/// stamped) or when the window or max is NULL (nothing written), first request or more
/// than `rateLimitTimeWindow` ms since `lastRequest` → count 1, `requestCount >=
/// rateLimitMax` → limited, else count + 1. A limited request changes nothing
/// (as in `@better-auth/api-key` 1.5).
pub(crate) fn evaluate(
    row: &ApiKeyRow,
    now: OffsetDateTime,
    plugin_rate_limit: bool,
) -> Result<KeyUpdate, Refusal> {
    if row.enabled == Some(false) {
        return Err(Refusal::Disabled);
    }
    match row.expires_at {
        Stamp::At(t) if now > t => return Err(Refusal::Expired),
        Stamp::Unreadable => return Err(Refusal::UnreadableExpiry),
        _ => {}
    }

    let mut update = KeyUpdate::default();
    if let Some(mut remaining) = row.remaining {
        let interval = row.refill_interval.filter(|i| *i != 0);
        let amount = row.refill_amount.filter(|a| *a != 0);
        if remaining == 0 && row.refill_amount.is_none() {
            return Err(Refusal::UsageExceeded);
        }
        if let (Some(interval), Some(amount)) = (interval, amount) {
            // With neither date readable JavaScript compares NaN: no refill.
            let since = row.last_refill_at.at().or(row.created_at.at());
            if since.is_some_and(|t| (now - t).whole_milliseconds() > i128::from(interval)) {
                remaining = amount;
                update.last_refill_at = Some(now);
            }
        }
        if remaining <= 0 {
            return Err(Refusal::UsageExceeded);
        }
        update.remaining = Some(remaining - 1);
    }

    if !plugin_rate_limit || row.rate_limit_enabled == Some(false) {
        update.last_request = Some(now);
        return Ok(update);
    }
    let (Some(window), Some(max)) = (row.rate_limit_time_window, row.rate_limit_max) else {
        return Ok(update);
    };
    let count = match row.last_request.at() {
        None => 1,
        Some(last) if (now - last).whole_milliseconds() > i128::from(window) => 1,
        Some(_) => {
            let count = row.request_count.unwrap_or(0);
            if count >= max {
                return Err(Refusal::RateLimited);
            }
            count.saturating_add(1)
        }
    };
    update.last_request = Some(now);
    update.request_count = Some(count);
    Ok(update)
}
