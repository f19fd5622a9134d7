//! Reading event timestamps.
//!
//! Accepted forms (every ISO 8601 shape that producers written against the NestJS backend's
//! validation send and JavaScript can read, plus epoch milliseconds):
//! - a JSON number: milliseconds since the Unix epoch (fractions allowed);
//! - ISO 8601 / RFC 3339 strings, extended (`2025-11-10T07:17:00.583Z`) or basic
//!   (`20251110T071700Z`) format, `T`, `t` or a space between date and time, seconds and any
//!   number of fraction digits optional, offset `Z`, `±HH:MM`, `±HHMM` or `±HH`;
//! - a date alone (`2025-11-10`), read as midnight.
//!
//! A string without an offset is read as UTC, never as the server's local time.

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, Utc};

/// Parses an ISO 8601 timestamp string (see the module docs for the accepted forms).
pub fn parse_timestamp(s: &str) -> Result<DateTime<Utc>, String> {
    parse_iso(s.trim()).ok_or_else(|| {
        format!("{s:?} is not an ISO 8601 timestamp (e.g. 2025-11-10T07:17:00.583Z)")
    })
}

/// Milliseconds since the epoch to a UTC instant.
pub(crate) fn from_epoch_millis(ms: f64) -> Result<DateTime<Utc>, String> {
    if !ms.is_finite() || ms < 0.0 {
        return Err(format!(
            "epoch milliseconds must be a non-negative number, got {ms}"
        ));
    }
    // Sub-millisecond precision is kept down to the nanosecond the f64 can carry.
    let whole = ms.trunc();
    let nanos = ((ms - whole) * 1_000_000.0).round() as u32;
    DateTime::from_timestamp_millis(whole as i64)
        .and_then(|t| t.checked_add_signed(TimeDelta::nanoseconds(i64::from(nanos))))
        .filter(|t| t.timestamp() < 253_402_300_800) // year 10000
        .ok_or_else(|| format!("epoch milliseconds {ms} are out of range"))
}

/// The stored form: RFC 3339 in UTC with millisecond precision, as JavaScript's
/// `toISOString()` wrote it (`2025-11-10T07:17:00.583Z`).
pub fn format_timestamp(t: &DateTime<Utc>) -> String {
    use chrono::{Datelike as _, Timelike as _};
    // Written by hand: chrono's strftime parses its format string on every call, which showed
    // up in ingest's profile (two timestamps per event).
    let (year, millis) = (t.year(), t.timestamp_subsec_millis().min(999));
    if !(0..=9999).contains(&year) {
        return t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
    }
    let mut out = [0u8; 24];
    let fields: [(u32, usize, u8); 7] = [
        (year as u32, 4, b'-'),
        (t.month(), 2, b'-'),
        (t.day(), 2, b'T'),
        (t.hour(), 2, b':'),
        (t.minute(), 2, b':'),
        (t.second().min(59), 2, b'.'),
        (millis, 3, b'Z'),
    ];
    let mut at = 0;
    for (value, width, separator) in fields {
        out[at..at + width].copy_from_slice(&format_digits(value, width)[..width]);
        out[at + width] = separator;
        at += width + 1;
    }
    String::from_utf8_lossy(&out[..at]).into_owned()
}

/// `value` as `width` zero-padded ASCII digits (width <= 4).
fn format_digits(mut value: u32, width: usize) -> [u8; 4] {
    let mut buf = [b'0'; 4];
    for i in (0..width).rev() {
        buf[i] = b'0' + (value % 10) as u8;
        value /= 10;
    }
    buf
}

fn parse_iso(s: &str) -> Option<DateTime<Utc>> {
    let b = s.as_bytes();
    let (date, rest) = parse_date(b)?;
    if rest.is_empty() {
        return Some(date.and_time(NaiveTime::MIN).and_utc());
    }
    let rest = match rest.first()? {
        b'T' | b't' | b' ' => &rest[1..],
        _ => return None,
    };
    let (time, rest) = parse_time(rest)?;
    let local = NaiveDateTime::new(date, time);
    let offset_secs = parse_offset(rest)?;
    local
        .checked_sub_signed(TimeDelta::seconds(i64::from(offset_secs)))
        .map(|t| t.and_utc())
}

fn digits(b: &[u8], n: usize) -> Option<u32> {
    if b.len() < n || !b[..n].iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        b[..n]
            .iter()
            .fold(0, |acc, d| acc * 10 + u32::from(d - b'0')),
    )
}

/// `YYYY-MM-DD` or `YYYYMMDD`.
fn parse_date(b: &[u8]) -> Option<(NaiveDate, &[u8])> {
    let year = digits(b, 4)?;
    let (month, day, rest) = if b.get(4) == Some(&b'-') {
        if b.get(7) != Some(&b'-') {
            return None;
        }
        (digits(&b[5..], 2)?, digits(&b[8..], 2)?, &b[10..])
    } else {
        (digits(&b[4..], 2)?, digits(&b[6..], 2)?, &b[8..])
    };
    let date = NaiveDate::from_ymd_opt(year as i32, month, day)?;
    Some((date, rest))
}

/// `HH:MM[:SS[.f+]]` or `HHMM[SS[.f+]]`; `,` is accepted as the decimal sign.
fn parse_time(b: &[u8]) -> Option<(NaiveTime, &[u8])> {
    let hour = digits(b, 2)?;
    let extended = b.get(2) == Some(&b':');
    let mut rest = if extended { &b[3..] } else { &b[2..] };
    let minute = digits(rest, 2)?;
    rest = &rest[2..];
    let mut second = 0;
    let seconds_follow = if extended {
        rest.first() == Some(&b':')
    } else {
        rest.first().is_some_and(u8::is_ascii_digit)
    };
    if seconds_follow {
        if extended {
            rest = &rest[1..];
        }
        second = digits(rest, 2)?;
        rest = &rest[2..];
    }
    let mut nanos = 0u32;
    if matches!(rest.first(), Some(b'.' | b',')) {
        let frac: Vec<u8> = rest[1..]
            .iter()
            .copied()
            .take_while(u8::is_ascii_digit)
            .collect();
        if frac.is_empty() {
            return None;
        }
        rest = &rest[1 + frac.len()..];
        // Keep nanosecond precision; further digits cannot be represented and are ignored.
        for i in 0..9 {
            nanos = nanos * 10 + frac.get(i).map_or(0, |d| u32::from(d - b'0'));
        }
    }
    // A leap second (:60) is read as the last nanosecond-precise instant chrono allows.
    let time = if second == 60 {
        NaiveTime::from_hms_nano_opt(hour, minute, 59, 1_000_000_000 + nanos.min(999_999_999))?
    } else {
        NaiveTime::from_hms_nano_opt(hour, minute, second, nanos)?
    };
    Some((time, rest))
}

/// Empty (UTC), `Z`, `±HH`, `±HHMM` or `±HH:MM`; returns seconds east of UTC.
fn parse_offset(b: &[u8]) -> Option<i32> {
    match b {
        [] | [b'Z' | b'z'] => Some(0),
        [sign @ (b'+' | b'-'), rest @ ..] => {
            let hours = digits(rest, 2)?;
            let minutes = match &rest[2..] {
                [] => 0,
                [b':', m @ ..] if m.len() == 2 => digits(m, 2)?,
                m if m.len() == 2 => digits(m, 2)?,
                _ => return None,
            };
            if hours > 23 || minutes > 59 {
                return None;
            }
            let secs = (hours * 3600 + minutes * 60) as i32;
            Some(if *sign == b'-' { -secs } else { secs })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32, ms: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap() + TimeDelta::milliseconds(i64::from(ms))
    }

    #[test]
    fn reads_every_iso_form_the_seed_accepted() {
        let t = utc(2025, 11, 10, 7, 17, 0, 583);
        for s in [
            "2025-11-10T07:17:00.583Z",
            "2025-11-10t07:17:00.583z",
            "2025-11-10 07:17:00.583",
            "2025-11-10T07:17:00.583",
            "2025-11-10T16:17:00.583+09:00",
            "2025-11-10T16:17:00.583+0900",
            "2025-11-10T16:17:00.583+09",
            "2025-11-10T02:17:00.583-05:00",
            "20251110T071700.583Z",
            "20251110T161700.583+0900",
            "2025-11-10T07:17:00,583Z",
            "2025-11-10T07:17:00.583000000Z",
            "  2025-11-10T07:17:00.583Z ",
        ] {
            assert_eq!(parse_timestamp(s), Ok(t), "{s}");
        }
        assert_eq!(
            parse_timestamp("2025-11-10"),
            Ok(utc(2025, 11, 10, 0, 0, 0, 0))
        );
        assert_eq!(
            parse_timestamp("2025-11-10T07:17"),
            Ok(utc(2025, 11, 10, 7, 17, 0, 0))
        );
        assert_eq!(
            parse_timestamp("20251110T0717Z"),
            Ok(utc(2025, 11, 10, 7, 17, 0, 0))
        );
    }

    #[test]
    fn naive_time_is_utc_not_local() {
        assert_eq!(
            parse_timestamp("2025-11-10 07:17:00"),
            Ok(utc(2025, 11, 10, 7, 17, 0, 0))
        );
    }

    #[test]
    fn rejects_what_is_not_a_timestamp() {
        for s in [
            "",
            "yesterday",
            "1731222000000",
            "2025-13-01T00:00:00Z",
            "2025-02-30",
            "2025-11-10T25:00:00Z",
            "2025-11-10T07:17:00.Z",
            "2025-11-10T07:17:00+25:00",
            "2025-11-10X07:17:00Z",
            "2025-11-10T07:17:00Zjunk",
        ] {
            assert!(parse_timestamp(s).is_err(), "{s:?} should be rejected");
        }
    }

    #[test]
    fn epoch_millis() {
        assert_eq!(
            from_epoch_millis(1_762_759_020_583.0),
            Ok(utc(2025, 11, 10, 7, 17, 0, 583))
        );
        assert!(from_epoch_millis(-1.0).is_err());
        assert!(from_epoch_millis(f64::NAN).is_err());
        assert!(from_epoch_millis(1e20).is_err());
    }

    #[test]
    fn formats_like_to_iso_string() {
        assert_eq!(
            format_timestamp(&utc(2025, 1, 2, 3, 4, 5, 6)),
            "2025-01-02T03:04:05.006Z"
        );
    }

    proptest! {
        #[test]
        fn any_instant_round_trips_through_every_offset_form(
            secs in 0i64..4_102_444_800, ms in 0u32..1000, off_min in -14 * 60i32..=14 * 60,
        ) {
            let t = DateTime::from_timestamp(secs, ms * 1_000_000).unwrap();
            let off = chrono::FixedOffset::east_opt(off_min * 60).unwrap();
            let local = t.with_timezone(&off);
            for s in [
                local.format("%Y-%m-%dT%H:%M:%S%.3f%:z").to_string(),
                local.format("%Y%m%dT%H%M%S%.3f%z").to_string(),
                t.format("%Y-%m-%d %H:%M:%S%.3f").to_string(),
                t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            ] {
                prop_assert_eq!(parse_timestamp(&s), Ok(t), "{}", s);
            }
        }

        #[test]
        fn hand_formatting_equals_strftime(secs in 0i64..253_402_300_799, nanos in 0u32..1_000_000_000) {
            let t = DateTime::from_timestamp(secs, nanos).unwrap();
            prop_assert_eq!(format_timestamp(&t), t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string());
        }

        #[test]
        fn never_panics_on_arbitrary_text(s in "\\PC{0,40}") {
            let _outcome = parse_timestamp(&s);
        }

        #[test]
        fn never_panics_on_near_iso_text(s in "[0-9]{4}-?[0-9]{2}-?[0-9]{2}[T ][0-9:.,]{0,14}[-+Z0-9:]{0,6}") {
            let _outcome = parse_timestamp(&s);
        }
    }
}
