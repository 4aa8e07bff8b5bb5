//! Event timestamps: when a feature pipeline computed a row of values. Printed and parsed
//! as RFC 3339 (UTC), with no date library: the civil-date conversions are the well-known
//! era-based ones.

/// An event timestamp: seconds and nanoseconds since the Unix epoch (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct EventTime {
    pub seconds: i64,
    pub nanos: i32,
}

impl EventTime {
    /// Microseconds since the epoch.
    pub fn micros(self) -> i64 {
        self.seconds.saturating_mul(1_000_000).saturating_add(i64::from(self.nanos / 1000))
    }

    /// RFC 3339 in UTC with microseconds, e.g. `2026-11-30T03:10:24.123456Z`.
    pub fn rfc3339(self) -> String {
        let days = self.seconds.div_euclid(86_400);
        let secs = self.seconds.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:06}Z",
            secs / 3600,
            secs / 60 % 60,
            secs % 60,
            self.nanos / 1000
        )
    }
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (the well-known
/// era-based conversion).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
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

/// The day count since 1970-01-01 of a proleptic Gregorian date (the inverse).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses a timestamp as feature files and pandas write them: `2026-11-30T03:10:24Z`,
/// `2026-11-30 03:10:24.123456+00:00`, with or without a fraction (up to nanoseconds) and
/// an offset (`Z`, `+HH:MM`, `-HH:MM`; none means UTC).
pub fn parse_time(text: &str) -> Result<EventTime, String> {
    let bad = || format!("expected a timestamp such as 2026-11-30T03:10:24.123456Z, got {text:?}");
    let t = text.trim();
    let num = |s: &str| -> Result<i64, String> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        s.parse().map_err(|_| bad())
    };
    let (date, rest) = t.split_at_checked(10).ok_or_else(bad)?;
    let mut parts = date.split('-');
    let (y, m, d) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(y), Some(m), Some(d), None) if y.len() == 4 => (num(y)?, num(m)?, num(d)?),
        _ => return Err(bad()),
    };
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return Err(bad());
    }
    let rest = rest.strip_prefix(['T', 't', ' ']).ok_or_else(bad)?;
    let (hms, rest) = rest.split_at_checked(8).ok_or_else(bad)?;
    let mut parts = hms.split(':');
    let (hh, mm, ss) = match (parts.next(), parts.next(), parts.next()) {
        (Some(h), Some(m), Some(s)) => (num(h)?, num(m)?, num(s)?),
        _ => return Err(bad()),
    };
    if hh > 23 || mm > 59 || ss > 60 {
        return Err(bad());
    }
    let (mut nanos, rest) = match rest.strip_prefix('.') {
        Some(fraction) => {
            let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 || digits > 9 {
                return Err(bad());
            }
            let n = num(&fraction[..digits])? * 10i64.pow(9 - digits as u32);
            (n, &fraction[digits..])
        }
        None => (0, rest),
    };
    let offset = match rest.trim_start() {
        "" | "Z" | "z" => 0,
        zone => {
            let sign = match zone.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return Err(bad()),
            };
            let (h, m) =
                zone[1..].split_once(':').filter(|(h, m)| h.len() == 2 && m.len() == 2).ok_or_else(bad)?;
            sign * (num(h)? * 3600 + num(m)? * 60)
        }
    };
    let seconds = days_from_civil(y, m as u32, d as u32) * 86_400 + hh * 3600 + mm * 60 + ss - offset;
    if nanos >= 1_000_000_000 {
        nanos = 999_999_999;
    }
    Ok(EventTime { seconds, nanos: nanos as i32 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_and_parses_rfc_3339() {
        let t = EventTime { seconds: 1_796_008_224, nanos: 123_456_000 };
        assert_eq!(t.rfc3339(), "2026-11-30T03:10:24.123456Z");
        assert_eq!(parse_time("2026-11-30T03:10:24.123456Z"), Ok(t));
        assert_eq!(parse_time("2026-11-30 03:10:24.123456+00:00"), Ok(t));
        assert_eq!(parse_time("2026-11-30 05:10:24.123456 +02:00"), Ok(t));
        assert_eq!(parse_time("2026-11-30T03:10:24.123456"), Ok(t));
        assert_eq!(parse_time("2026-11-30T03:10:24").map(|t| t.nanos), Ok(0));
        assert_eq!(EventTime { seconds: 0, nanos: 0 }.rfc3339(), "1970-01-01T00:00:00.000000Z");
        assert_eq!(EventTime { seconds: 951_782_400, nanos: 0 }.rfc3339(), "2000-02-29T00:00:00.000000Z");
        assert_eq!(parse_time("2000-02-29T00:00:00Z").map(|t| t.seconds), Ok(951_782_400));
        for bad in [
            "",
            "yesterday",
            "2026-13-01T00:00:00Z",
            "2026-11-30T25:00:00Z",
            "2026-11-30T03:10:24.Z",
            "2026-11-30T03:10:24+0200",
            "２０２６-11-30T03:10:24Z",
        ] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
        for days in [-800_000, -1, 0, 59, 11_016, 20_000, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
