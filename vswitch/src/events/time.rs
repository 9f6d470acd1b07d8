//! Wall-clock timestamps for event lines, without a date crate.

/// `time_ns` (nanoseconds since the Unix epoch) as RFC 3339 in UTC with
/// microseconds: `2024-05-01T12:34:56.789012Z`.
pub fn rfc3339(time_ns: u64) -> String {
    let secs = time_ns / 1_000_000_000;
    let micros = (time_ns % 1_000_000_000) / 1_000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Year, month, day of the day `z` days after 1970-01-01 (Howard
/// Hinnant's algorithm for the proleptic Gregorian calendar).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000Z");
        // 2000-02-29 (a leap day in a century leap year) 12:00:00.5
        assert_eq!(
            rfc3339(951_825_600_500_000_000),
            "2000-02-29T12:00:00.500000Z"
        );
        // 2024-12-31T23:59:59.999999Z
        assert_eq!(
            rfc3339(1_735_689_599_999_999_999),
            "2024-12-31T23:59:59.999999Z"
        );
        assert_eq!(
            rfc3339(1_735_689_600_000_000_000),
            "2025-01-01T00:00:00.000000Z"
        );
    }
}
