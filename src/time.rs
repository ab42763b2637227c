//! Wall-clock times as text. Every stored time is Unix milliseconds; this
//! formats any of them, so no value in the database can make a page or a
//! response fail, and reads RFC 3339 as clients write it (with `Z` or an
//! offset). It sits below the server and the leak response, which both
//! print times.

/// RFC 3339 in UTC with milliseconds (`2026-12-01T21:22:55.123Z`), for any
/// value: years past 9999 or before 0 are written with a sign and as many
/// digits as they need (ISO 8601's expanded years), never a panic.
pub fn rfc3339(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000);
    let (year, month, day) = civil_from_days(days);
    let (hour, minute, second, milli) = (in_day / 3_600_000, in_day / 60_000 % 60, in_day / 1000 % 60, in_day % 1000);
    if !(0..=9999).contains(&year) {
        return format!("{year:+05}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{milli:03}Z");
    }
    // Written digit by digit: verify answers carry these, and the
    // formatting machinery cost more than the rest of the answer.
    let fields = [
        (year as i64, 4, '-'),
        (i64::from(month), 2, '-'),
        (i64::from(day), 2, 'T'),
        (hour, 2, ':'),
        (minute, 2, ':'),
        (second, 2, '.'),
        (milli, 3, 'Z'),
    ];
    let mut out = String::with_capacity(24);
    for (value, width, then) in fields {
        for place in (0..width).rev() {
            out.push(char::from(b'0' + (value / 10_i64.pow(place) % 10) as u8));
        }
        out.push(then);
    }
    out
}

/// Reads RFC 3339 (`2026-12-01T21:22:55Z`, `…55.5+02:00`, a space for
/// the `T`) into Unix milliseconds, for years 0000 to 9999.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let digits = |from: usize, len: usize| -> Option<i64> {
        let part = text.get(from..from + len)?;
        part.bytes().all(|c| c.is_ascii_digit()).then(|| part.parse().ok())?
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (year, month, day) = (digits(0, 4)?, digits(5, 2)?, digits(8, 2)?);
    let (hour, minute, second) = (digits(11, 2)?, digits(14, 2)?, digits(17, 2)?);
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    let in_range =
        (1..=12).contains(&month) && day >= 1 && day <= month_days[(month - 1).max(0) as usize] && hour < 24 && minute < 60 && second <= 60;
    if !in_range {
        return None;
    }
    let mut at = 19;
    let mut millis = 0;
    if b.get(at) == Some(&b'.') {
        let start = at + 1;
        at = start;
        while b.get(at).is_some_and(u8::is_ascii_digit) {
            at += 1;
        }
        let fraction = text.get(start..at).filter(|f| !f.is_empty())?;
        millis = format!("{fraction:0<3}").get(..3)?.parse().ok()?;
    }
    let offset_minutes = match text.get(at..)? {
        "Z" | "z" => 0,
        zone if zone.len() == 6 && matches!(zone.as_bytes()[0], b'+' | b'-') && zone.as_bytes()[3] == b':' => {
            let (h, m) = (digits(at + 1, 2)?, digits(at + 4, 2)?);
            if h > 23 || m > 59 {
                return None;
            }
            let sign = if zone.starts_with('-') { -1 } else { 1 };
            sign * (h * 60 + m)
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    Some(((days * 24 + hour) * 60 + minute - offset_minutes) * 60_000 + second.min(59) * 1000 + millis)
}

/// A proleptic Gregorian date to days since 1970-01-01 (Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
/// `civil_from_days`), in i128 so no i64 input overflows.
fn civil_from_days(days: i64) -> (i128, u32, u32) {
    let z = i128::from(days) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i128::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! t {
        ($name:ident, $ms:expr, $expected:expr) => {
            #[test]
            fn $name() {
                assert_eq!(rfc3339($ms), $expected);
            }
        };
    }

    t!(epoch, 0, "1970-01-01T00:00:00.000Z");
    t!(ordinary, 1_764_624_175_123, "2025-12-01T21:22:55.123Z");
    t!(leap_day, 951_782_400_000, "2000-02-29T00:00:00.000Z");
    t!(last_four_digit_ms, 253_402_300_799_999, "9999-12-31T23:59:59.999Z");
    t!(year_ten_thousand, 253_402_300_800_000, "+10000-01-01T00:00:00.000Z");
    t!(before_epoch, -1, "1969-12-31T23:59:59.999Z");
    t!(year_minus_one, -62_198_755_200_000, "-0001-01-01T00:00:00.000Z");

    #[test]
    fn agrees_with_humantime_where_both_work() {
        for ms in [1_i64, 86_399_999, 1_000_000_000_000, 4_102_444_800_000, 253_402_214_399_999] {
            let expected =
                humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms as u64)).to_string();
            assert_eq!(rfc3339(ms), expected);
        }
    }

    macro_rules! p {
        ($name:ident, $text:expr, $expected:expr) => {
            #[test]
            fn $name() {
                assert_eq!(parse_rfc3339($text), $expected);
            }
        };
    }

    p!(parse_utc, "2025-12-01T21:22:55.123Z", Some(1_764_624_175_123));
    p!(parse_offset, "2025-12-01T23:22:55.123+02:00", Some(1_764_624_175_123));
    p!(parse_negative_offset, "2025-12-01T20:22:55.123-01:00", Some(1_764_624_175_123));
    p!(parse_no_fraction, "1970-01-01T00:00:00Z", Some(0));
    p!(parse_long_fraction, "1970-01-01T00:00:00.123456789Z", Some(123));
    p!(parse_leap_day, "2000-02-29T00:00:00Z", Some(951_782_400_000));
    p!(parse_year_zero, "0000-01-01T00:00:00Z", Some(-62_167_219_200_000));
    p!(no_feb_30, "2001-02-29T00:00:00Z", None);
    p!(no_zone, "2025-12-01T21:22:55", None);
    p!(no_month_13, "2025-13-01T00:00:00Z", None);
    p!(not_a_time, "soon", None);
    p!(unicode_does_not_panic, "2025-12-01T21:22:55é", None);

    #[test]
    fn parsing_undoes_formatting() {
        for ms in [0_i64, 1, 1_764_624_175_123, 253_402_300_799_999, -1, -62_167_219_200_000] {
            assert_eq!(parse_rfc3339(&rfc3339(ms)), Some(ms), "{ms}");
        }
    }

    #[test]
    fn the_extremes_do_not_panic() {
        assert!(rfc3339(i64::MAX).starts_with('+'));
        assert!(rfc3339(i64::MIN).starts_with('-'));
    }
}
