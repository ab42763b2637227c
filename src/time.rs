//! Wall-clock times as text. Every stored time is Unix milliseconds; this
//! formats any of them, so no value in the database can make a page or a
//! response fail. It sits below the server and the leak response, which
//! both print times.

/// RFC 3339 in UTC with milliseconds (`2026-12-01T21:22:55.123Z`), for any
/// value: years past 9999 or before 0 are written with a sign and as many
/// digits as they need (ISO 8601's expanded years), never a panic.
pub fn rfc3339(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000);
    let (year, month, day) = civil_from_days(days);
    let year = if (0..=9999).contains(&year) {
        format!("{year:04}")
    } else {
        format!("{year:+05}")
    };
    format!(
        "{year}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000
    )
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

    #[test]
    fn the_extremes_do_not_panic() {
        assert!(rfc3339(i64::MAX).starts_with('+'));
        assert!(rfc3339(i64::MIN).starts_with('-'));
    }
}
