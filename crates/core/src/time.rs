//! Time conventions. Instants are epoch milliseconds (UTC); calendar dates are local to the company's
//! time zone, a fixed UTC offset (China has no daylight saving: +08:00).

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, TimeZone, Utc};

/// The default company offset: Asia/Shanghai, UTC+8.
pub const CHINA_OFFSET_MINUTES: i32 = 8 * 60;

pub fn offset(minutes: i32) -> FixedOffset {
    FixedOffset::east_opt(minutes * 60).unwrap_or_else(|| FixedOffset::east_opt(0).expect("zero offset"))
}

/// Local wall-clock time in the company's zone → epoch milliseconds.
pub fn local_to_epoch_ms(local: NaiveDateTime, offset_minutes: i32) -> i64 {
    match offset(offset_minutes).from_local_datetime(&local).single() {
        Some(t) => t.timestamp_millis(),
        None => local.and_utc().timestamp_millis(),
    }
}

/// Epoch milliseconds → local wall-clock time in the company's zone.
pub fn epoch_ms_to_local(ms: i64, offset_minutes: i32) -> NaiveDateTime {
    let utc = DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default();
    utc.with_timezone(&offset(offset_minutes)).naive_local()
}

/// The local calendar date of an instant.
pub fn local_date(ms: i64, offset_minutes: i32) -> NaiveDate {
    epoch_ms_to_local(ms, offset_minutes).date()
}

pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_round_trip_uses_offset() {
        let local = NaiveDate::from_ymd_opt(2024, 1, 2).unwrap().and_hms_opt(0, 30, 0).unwrap();
        let ms = local_to_epoch_ms(local, CHINA_OFFSET_MINUTES);
        // 00:30 in Shanghai is 16:30 the previous day in UTC.
        let utc = DateTime::<Utc>::from_timestamp_millis(ms).unwrap();
        assert_eq!(utc.to_rfc3339(), "2024-01-01T16:30:00+00:00");
        assert_eq!(local_date(ms, CHINA_OFFSET_MINUTES), local.date());
        assert_eq!(epoch_ms_to_local(ms, CHINA_OFFSET_MINUTES), local);
    }
}
