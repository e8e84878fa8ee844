//! Budget windows: the stretch of the UTC calendar a budget counts over. A day runs from 00:00
//! UTC, a week from Monday 00:00 UTC (ISO 8601 weeks, so the week of 2026-12-31 is 2026-W53 and
//! the week of 2027-01-01 too), a month from the first at 00:00 UTC; a lifetime never ends.
//!
//! A window is named by a compact code (daily `yyyymmdd`, weekly ISO `yyyyww`, monthly `yyyymm`,
//! lifetime 0) used in stores and in memory, and by a label for people and events
//! (`2026-11-30`, `2026-W49`, `2026-11`, `lifetime`).

use time::{Date, Month, Weekday};

use crate::events::Period;

const DAY_MS: u64 = 86_400_000;
/// Julian day number of 1970-01-01.
const UNIX_EPOCH_JULIAN: i32 = 2_440_588;

/// One window of one period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Window {
    pub period: Period,
    code: u32,
}

/// The date of a Unix millisecond timestamp, in UTC.
fn date_of(at_ms: u64) -> Date {
    let days = (at_ms / DAY_MS).min(i32::MAX as u64 / 2) as i32;
    // invariant: a day count this small is inside time's supported range (±9999 years);
    // falling back to the epoch keeps a clock far out of range from panicking.
    Date::from_julian_day(UNIX_EPOCH_JULIAN + days).unwrap_or(Date::MIN)
}

/// Milliseconds since the Unix epoch at 00:00 UTC of `date`.
fn midnight_ms(date: Date) -> u64 {
    u64::try_from(date.to_julian_day() - UNIX_EPOCH_JULIAN).map_or(0, |d| d * DAY_MS)
}

fn ymd(date: Date) -> u32 {
    date.year().max(0) as u32 * 10_000
        + u32::from(u8::from(date.month())) * 100
        + u32::from(date.day())
}

fn first_of_next_month(date: Date) -> Option<Date> {
    let (year, month) = match date.month() {
        Month::December => (date.year() + 1, Month::January),
        m => (date.year(), m.next()),
    };
    Date::from_calendar_date(year, month, 1).ok()
}

impl Window {
    /// The window of `period` that contains `at_ms`.
    pub fn at(period: Period, at_ms: u64) -> Self {
        let date = date_of(at_ms);
        let code = match period {
            Period::Daily => ymd(date),
            Period::Weekly => {
                let (year, week, _) = date.to_iso_week_date();
                year.max(0) as u32 * 100 + u32::from(week)
            }
            Period::Monthly => date.year().max(0) as u32 * 100 + u32::from(u8::from(date.month())),
            Period::Lifetime => 0,
        };
        Self { period, code }
    }

    /// Every period's window at `at_ms`, indexed like [`Period::ALL`].
    pub fn all_at(at_ms: u64) -> [Window; 4] {
        Period::ALL.map(|p| Window::at(p, at_ms))
    }

    /// [`all_at`](Self::all_at), worked out once per UTC day and thread: every window of a
    /// day is the same, and admission asks for them on every request.
    pub fn all_at_cached(at_ms: u64) -> [Window; 4] {
        use std::cell::Cell;
        thread_local! {
            static TODAY: Cell<Option<(u64, [Window; 4])>> = const { Cell::new(None) };
        }
        let day = at_ms / DAY_MS;
        TODAY.with(|t| match t.get() {
            Some((d, w)) if d == day => w,
            _ => {
                let w = Window::all_at(at_ms);
                t.set(Some((day, w)));
                w
            }
        })
    }

    /// A window from its code, as stored (`None` for a code no window has).
    pub fn from_code(period: Period, code: u32) -> Option<Self> {
        let w = Self { period, code };
        match period {
            Period::Lifetime => (code == 0).then_some(w),
            _ => w.first_day().map(|_| w),
        }
    }

    /// `yyyymmdd`, ISO `yyyyww`, `yyyymm` or 0.
    pub fn code(self) -> u32 {
        self.code
    }

    fn first_day(self) -> Option<Date> {
        let (year, rest) = ((self.code / 10_000) as i32, self.code % 10_000);
        match self.period {
            Period::Daily => Date::from_calendar_date(
                year,
                Month::try_from((rest / 100) as u8).ok()?,
                (rest % 100) as u8,
            )
            .ok(),
            Period::Weekly => Date::from_iso_week_date(
                (self.code / 100) as i32,
                (self.code % 100) as u8,
                Weekday::Monday,
            )
            .ok(),
            Period::Monthly => Date::from_calendar_date(
                (self.code / 100) as i32,
                Month::try_from((self.code % 100) as u8).ok()?,
                1,
            )
            .ok(),
            Period::Lifetime => None,
        }
    }

    /// When the window began (milliseconds since the Unix epoch); 0 for a lifetime.
    pub fn starts_ms(self) -> u64 {
        self.first_day().map_or(0, midnight_ms)
    }

    /// When the window ends and the next one begins; `None` for a lifetime, which never resets.
    pub fn resets_ms(self) -> Option<u64> {
        let first = self.first_day()?;
        let next = match self.period {
            Period::Daily => first.next_day(),
            Period::Weekly => first.checked_add(time::Duration::days(7)),
            Period::Monthly => first_of_next_month(first),
            Period::Lifetime => None,
        }?;
        Some(midnight_ms(next))
    }

    /// When the window resets, as RFC 3339 (`2026-12-01T00:00:00Z`); `None` for a lifetime.
    pub fn resets_at(self) -> Option<String> {
        let ms = self.resets_ms()?;
        let t = time::OffsetDateTime::from_unix_timestamp((ms / 1000) as i64).ok()?;
        t.format(&time::format_description::well_known::Rfc3339)
            .ok()
    }

    /// `2026-11-30`, `2026-W49`, `2026-11` or `lifetime`.
    pub fn label(self) -> String {
        let c = self.code;
        match self.period {
            Period::Daily => format!("{:04}-{:02}-{:02}", c / 10_000, c / 100 % 100, c % 100),
            Period::Weekly => format!("{:04}-W{:02}", c / 100, c % 100),
            Period::Monthly => format!("{:04}-{:02}", c / 100, c % 100),
            Period::Lifetime => "lifetime".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Milliseconds of a UTC date and time.
    fn ms(y: i32, m: u8, d: u8, h: u8, min: u8, s: u8) -> u64 {
        let date = Date::from_calendar_date(y, Month::try_from(m).unwrap(), d).unwrap();
        midnight_ms(date) + (u64::from(h) * 3600 + u64::from(min) * 60 + u64::from(s)) * 1000
    }

    #[test]
    fn days_reset_at_utc_midnight() {
        let w = Window::at(Period::Daily, ms(2026, 11, 30, 23, 59, 59));
        assert_eq!(w.code(), 20_261_130);
        assert_eq!(w.label(), "2026-11-30");
        assert_eq!(w.starts_ms(), ms(2026, 11, 30, 0, 0, 0));
        assert_eq!(w.resets_at().as_deref(), Some("2026-12-01T00:00:00Z"));
        let next = Window::at(Period::Daily, ms(2026, 12, 1, 0, 0, 0));
        assert_eq!(next.code(), 20_261_201);
        assert_eq!(Some(next.starts_ms()), w.resets_ms());
        // a leap day, and the last day of a year
        assert_eq!(
            Window::at(Period::Daily, ms(2028, 2, 29, 12, 0, 0))
                .resets_at()
                .as_deref(),
            Some("2028-03-01T00:00:00Z")
        );
        assert_eq!(
            Window::at(Period::Daily, ms(2026, 12, 31, 12, 0, 0))
                .resets_at()
                .as_deref(),
            Some("2027-01-01T00:00:00Z")
        );
    }

    #[test]
    fn weeks_are_iso_weeks_from_monday() {
        // 2026-11-30 is a Monday, in ISO week 49
        let w = Window::at(Period::Weekly, ms(2026, 11, 30, 0, 0, 0));
        assert_eq!(w.label(), "2026-W49");
        assert_eq!(w.starts_ms(), ms(2026, 11, 30, 0, 0, 0));
        assert_eq!(w.resets_at().as_deref(), Some("2026-12-07T00:00:00Z"));
        // the Sunday before belongs to week 48
        let sunday = Window::at(Period::Weekly, ms(2026, 11, 29, 23, 59, 59));
        assert_eq!(sunday.label(), "2026-W48");
        assert_eq!(sunday.resets_ms(), Some(ms(2026, 11, 30, 0, 0, 0)));
        // days at a year's end belong to the ISO year of their week: 2026-12-31 (Thursday) and
        // 2027-01-01 (Friday) are both in 2026-W53, which runs Monday 2026-12-28 to 2027-01-04
        let a = Window::at(Period::Weekly, ms(2026, 12, 31, 8, 0, 0));
        let b = Window::at(Period::Weekly, ms(2027, 1, 1, 8, 0, 0));
        assert_eq!((a, a.label()), (b, "2026-W53".to_owned()));
        assert_eq!(a.starts_ms(), ms(2026, 12, 28, 0, 0, 0));
        assert_eq!(a.resets_at().as_deref(), Some("2027-01-04T00:00:00Z"));
        // and 2024-12-30 (Monday) already starts 2025-W01
        assert_eq!(
            Window::at(Period::Weekly, ms(2024, 12, 30, 0, 0, 0)).label(),
            "2025-W01"
        );
    }

    #[test]
    fn months_end_on_their_last_day() {
        for (y, m, last, next) in [
            (2026, 1, 31, "2026-02-01T00:00:00Z"),
            (2026, 2, 28, "2026-03-01T00:00:00Z"),
            (2028, 2, 29, "2028-03-01T00:00:00Z"),
            (2026, 4, 30, "2026-05-01T00:00:00Z"),
            (2026, 12, 31, "2027-01-01T00:00:00Z"),
        ] {
            let w = Window::at(Period::Monthly, ms(y, m, last, 23, 59, 59));
            assert_eq!(w.label(), format!("{y:04}-{m:02}"));
            assert_eq!(w.starts_ms(), ms(y, m, 1, 0, 0, 0));
            assert_eq!(w.resets_at().as_deref(), Some(next));
            assert_eq!(
                Window::at(Period::Monthly, w.resets_ms().unwrap()).starts_ms(),
                w.resets_ms().unwrap()
            );
        }
    }

    #[test]
    fn a_lifetime_never_resets_and_codes_round_trip() {
        let w = Window::at(Period::Lifetime, ms(2026, 11, 30, 0, 0, 0));
        assert_eq!(
            (w.code(), w.label(), w.resets_ms()),
            (0, "lifetime".to_owned(), None)
        );
        assert_eq!(w, Window::at(Period::Lifetime, 0));
        let at = ms(2026, 2, 14, 10, 0, 0);
        assert_eq!(Window::all_at_cached(at), Window::all_at(at));
        assert_eq!(
            Window::all_at_cached(at + DAY_MS),
            Window::all_at(at + DAY_MS)
        );
        for w in Window::all_at(at) {
            assert_eq!(Window::from_code(w.period, w.code()), Some(w));
        }
        assert_eq!(Window::from_code(Period::Daily, 20_261_301), None);
        assert_eq!(Window::from_code(Period::Weekly, 202_660), None);
    }
}
