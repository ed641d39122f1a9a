use super::api_key_rules::*;
use super::layout::*;
use super::rows::*;
use super::values::*;
use deadpool_sqlite::rusqlite::types::Value;
use time::OffsetDateTime;
use time::macros::datetime;

const NOW: OffsetDateTime = datetime!(2025-06-01 12:00 UTC);

fn key() -> ApiKeyRow {
    ApiKeyRow {
        id: "k1".into(),
        key_hash: "h".into(),
        owner_id: "u1".into(),
        enabled: Some(true),
        expires_at: Stamp::Absent,
        remaining: None,
        refill_interval: None,
        refill_amount: None,
        last_refill_at: Stamp::Absent,
        rate_limit_enabled: Some(true),
        rate_limit_time_window: Some(1000),
        rate_limit_max: Some(2),
        request_count: Some(0),
        last_request: Stamp::Absent,
        created_at: Stamp::At(NOW - time::Duration::days(1)),
        date_format: DateFormat::IsoText,
        metadata: None,
    }
}

#[test]
fn parses_every_date_form_better_auth_writers_use() {
    let expected = datetime!(2025-06-01 12:00:00.123 UTC);
    for v in [
        Value::Text("2025-06-01T12:00:00.123Z".into()),
        Value::Text("2025-06-01T14:00:00.123+02:00".into()),
        Value::Text("2025-06-01 12:00:00.123".into()),
        Value::Integer(1_748_779_200_123),
        Value::Real(1_748_779_200_123.0),
        Value::Text("1748779200123".into()),
    ] {
        assert_eq!(parse_time(&v), Some(expected), "{v:?}");
    }
    assert_eq!(
        parse_time(&Value::Integer(1_748_779_200)),
        Some(datetime!(2025-06-01 12:00 UTC))
    );
    assert_eq!(
        parse_time(&Value::Text("2025-06-01 12:00:00".into())),
        Some(datetime!(2025-06-01 12:00 UTC))
    );
    for bad in [
        Value::Text("yesterday".into()),
        Value::Real(f64::NAN),
        Value::Blob(vec![1]),
        Value::Null,
    ] {
        assert_eq!(parse_time(&bad), None, "{bad:?}");
    }
}

#[test]
fn writes_dates_the_way_the_row_stores_them() {
    let t = datetime!(2025-06-01 12:00:00.5 UTC);
    assert_eq!(
        DateFormat::IsoText.encode(t),
        Value::Text("2025-06-01T12:00:00.500Z".into())
    );
    assert_eq!(
        DateFormat::Millis.encode(t),
        Value::Integer(1_748_779_200_500)
    );
    assert_eq!(DateFormat::Seconds.encode(t), Value::Integer(1_748_779_200));
    assert_eq!(
        DateFormat::of(&Value::Integer(1_748_779_200_500), ""),
        DateFormat::Millis
    );
    assert_eq!(
        DateFormat::of(&Value::Integer(1_748_779_200), ""),
        DateFormat::Seconds
    );
    assert_eq!(
        DateFormat::of(&Value::Text("x".into()), ""),
        DateFormat::IsoText
    );
    assert_eq!(DateFormat::of(&Value::Null, "integer"), DateFormat::Millis);
    assert_eq!(DateFormat::of(&Value::Null, "date"), DateFormat::IsoText);
}

#[test]
fn booleans_read_as_better_auth_writes_them() {
    assert_eq!(truthy(&Value::Integer(0)), Some(false));
    assert_eq!(truthy(&Value::Integer(1)), Some(true));
    assert_eq!(truthy(&Value::Text("false".into())), Some(false));
    assert_eq!(truthy(&Value::Null), None);
}

#[test]
fn snake_case_matches_drizzle_names() {
    assert_eq!(snake_case("activeOrganizationId"), "active_organization_id");
    assert_eq!(snake_case("rateLimitTimeWindow"), "rate_limit_time_window");
    assert_eq!(snake_case("id"), "id");
    assert_eq!(quote("we\"ird"), "\"we\"\"ird\"");
}

#[test]
fn rate_limit_counts_then_refuses_then_resets() {
    let mut row = key();
    let first = evaluate(&row, NOW, true).unwrap();
    assert_eq!(first.request_count, Some(1));
    assert_eq!(first.last_request, Some(NOW));

    row.last_request = Stamp::At(NOW);
    row.request_count = Some(1);
    assert_eq!(evaluate(&row, NOW, true).unwrap().request_count, Some(2));

    row.request_count = Some(2);
    assert_eq!(evaluate(&row, NOW, true), Err(Refusal::RateLimited));
    // Exactly the window is still inside it (Better Auth: `> window` resets).
    let edge = NOW + time::Duration::milliseconds(1000);
    assert_eq!(evaluate(&row, edge, true), Err(Refusal::RateLimited));
    let after = NOW + time::Duration::milliseconds(1001);
    assert_eq!(evaluate(&row, after, true).unwrap().request_count, Some(1));
}

#[test]
fn rate_limit_off_only_stamps_last_request() {
    let mut row = key();
    row.request_count = Some(99);
    row.last_request = Stamp::At(NOW);
    for (plugin, key_flag) in [(false, Some(true)), (true, Some(false))] {
        row.rate_limit_enabled = key_flag;
        let update = evaluate(&row, NOW, plugin).unwrap();
        assert_eq!(update.request_count, None);
        assert_eq!(update.last_request, Some(NOW));
    }
    row.rate_limit_enabled = None; // NULL is not `false`: still limited
    assert_eq!(evaluate(&row, NOW, true), Err(Refusal::RateLimited));
    row.rate_limit_max = None;
    assert_eq!(evaluate(&row, NOW, true), Ok(KeyUpdate::default()));
}

#[test]
fn remaining_is_used_up_and_refilled() {
    let mut row = key();
    row.rate_limit_enabled = Some(false);
    row.remaining = Some(1);
    assert_eq!(evaluate(&row, NOW, true).unwrap().remaining, Some(0));

    row.remaining = Some(0);
    assert_eq!(evaluate(&row, NOW, true), Err(Refusal::UsageExceeded));

    row.refill_interval = Some(60_000);
    row.refill_amount = Some(5);
    row.last_refill_at = Stamp::At(NOW - time::Duration::seconds(30));
    assert_eq!(evaluate(&row, NOW, true), Err(Refusal::UsageExceeded));
    row.last_refill_at = Stamp::At(NOW - time::Duration::seconds(61));
    let update = evaluate(&row, NOW, true).unwrap();
    assert_eq!(update.remaining, Some(4));
    assert_eq!(update.last_refill_at, Some(NOW));
}

#[test]
fn disabled_and_expired_keys_are_refused_first() {
    let mut row = key();
    row.expires_at = Stamp::At(NOW - time::Duration::seconds(1));
    assert_eq!(evaluate(&row, NOW, true), Err(Refusal::Expired));
    row.expires_at = Stamp::At(NOW);
    assert!(
        evaluate(&row, NOW, true).is_ok(),
        "now == expiresAt is not expired"
    );
    row.expires_at = Stamp::Unreadable;
    assert_eq!(evaluate(&row, NOW, true), Err(Refusal::UnreadableExpiry));
    row.enabled = Some(false);
    assert_eq!(evaluate(&row, NOW, true), Err(Refusal::Disabled));
}

#[test]
fn bans_end_at_ban_expires() {
    let mut user = UserRow {
        role: None,
        banned: true,
        ban_expires: Stamp::Absent,
    };
    assert!(user.is_banned(NOW));
    user.ban_expires = Stamp::At(NOW + time::Duration::hours(1));
    assert!(user.is_banned(NOW));
    user.ban_expires = Stamp::At(NOW - time::Duration::hours(1));
    assert!(!user.is_banned(NOW));
    user.banned = false;
    user.ban_expires = Stamp::Absent;
    assert!(!user.is_banned(NOW));
}
