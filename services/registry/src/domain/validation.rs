//! Validated clinical values: NRS-11 and PGIC scores and the follow-up window.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// An NRS-11 pain score: an integer from 0 (no pain) to 10 (worst imaginable); nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "i64", try_from = "i64")]
pub struct Nrs(u8);

impl From<Nrs> for i64 {
    fn from(score: Nrs) -> i64 {
        i64::from(score.0)
    }
}

impl TryFrom<i64> for Nrs {
    type Error = Error;
    fn try_from(value: i64) -> Result<Self> {
        Nrs::new("nrs", value)
    }
}

impl Nrs {
    /// Validates `value` as an NRS-11 score; `field` names the request field in the error.
    pub fn new(field: &'static str, value: i64) -> Result<Self> {
        match u8::try_from(value) {
            Ok(score) if score <= 10 => Ok(Nrs(score)),
            _ => Err(Error::invalid(field, format!("NRS-11 must be an integer from 0 to 10, got {value}"))),
        }
    }

    /// The score as an integer.
    pub fn get(self) -> u8 {
        self.0
    }
}

/// Patient Global Impression of Change: 1 (very much improved) to 7 (very much worse).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "i64", try_from = "i64")]
pub struct Pgic(u8);

impl From<Pgic> for i64 {
    fn from(rating: Pgic) -> i64 {
        i64::from(rating.0)
    }
}

impl TryFrom<i64> for Pgic {
    type Error = Error;
    fn try_from(value: i64) -> Result<Self> {
        Pgic::new("pgic", value)
    }
}

impl Pgic {
    /// Validates `value` as a PGIC rating.
    pub fn new(field: &'static str, value: i64) -> Result<Self> {
        match u8::try_from(value) {
            Ok(rating) if (1..=7).contains(&rating) => Ok(Pgic(rating)),
            _ => Err(Error::invalid(field, format!("PGIC must be an integer from 1 to 7, got {value}"))),
        }
    }

    /// The rating as an integer.
    pub fn get(self) -> u8 {
        self.0
    }
}

/// When a follow-up is due and accepted, in days after the injection (CLINICAL.md: due on day
/// 60, accepted from day 46 to day 74 by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FollowUpWindow {
    pub start_day: u32,
    pub due_day: u32,
    pub end_day: u32,
}

impl Default for FollowUpWindow {
    fn default() -> Self {
        FollowUpWindow { start_day: 46, due_day: 60, end_day: 74 }
    }
}

/// Where a follow-up date falls relative to the injection and the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowPlacement {
    pub days_since_injection: u32,
    pub in_window: bool,
}

impl FollowUpWindow {
    /// Checks that the window is ordered (start <= due <= end).
    pub fn validate(self) -> Result<Self> {
        if self.start_day <= self.due_day && self.due_day <= self.end_day {
            Ok(self)
        } else {
            Err(Error::invalid("follow_up_window", "start_day <= due_day <= end_day is required"))
        }
    }

    /// Places a follow-up date: before the injection is refused; outside the window is refused
    /// unless `accept_out_of_window` is set.
    pub fn place(
        self,
        injection_date: NaiveDate,
        follow_up_date: NaiveDate,
        accept_out_of_window: bool,
    ) -> Result<WindowPlacement> {
        let days = (follow_up_date - injection_date).num_days();
        let Ok(days_since_injection) = u32::try_from(days) else {
            return Err(Error::FollowUpBeforeInjection { follow_up_date, injection_date });
        };
        let in_window = (self.start_day..=self.end_day).contains(&days_since_injection);
        if !in_window && !accept_out_of_window {
            return Err(Error::OutsideWindow {
                days,
                window_start: self.start_day,
                window_end: self.end_day,
            });
        }
        Ok(WindowPlacement { days_since_injection, in_window })
    }

    /// The date on which the window opens, the due date and the date on which it closes.
    pub fn dates(self, injection_date: NaiveDate) -> (NaiveDate, NaiveDate, NaiveDate) {
        let day = |offset: u32| injection_date + chrono::Days::new(u64::from(offset));
        (day(self.start_day), day(self.due_day), day(self.end_day))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap_or_default()
    }

    #[test]
    fn nrs_accepts_exactly_the_integers_zero_to_ten() {
        for value in 0..=10 {
            assert_eq!(Nrs::new("leg_nrs", value).map(Nrs::get).ok(), u8::try_from(value).ok());
        }
        for value in [-1, 11, 255, 256, i64::MIN, i64::MAX] {
            let error = Nrs::new("leg_nrs", value).err();
            assert!(matches!(error, Some(Error::InvalidArgument { field: "leg_nrs", .. })), "{value}");
        }
    }

    #[test]
    fn deserialising_cannot_bypass_the_range() {
        assert!(serde_json::from_str::<Nrs>("11").is_err());
        assert!(serde_json::from_str::<Nrs>("10.5").is_err());
        assert_eq!(serde_json::from_str::<Nrs>("7").ok().map(Nrs::get), Some(7));
        assert!(serde_json::from_str::<Pgic>("0").is_err());
    }

    #[test]
    fn pgic_accepts_one_to_seven() {
        assert!(Pgic::new("pgic", 0).is_err());
        assert!(Pgic::new("pgic", 1).is_ok());
        assert!(Pgic::new("pgic", 7).is_ok());
        assert!(Pgic::new("pgic", 8).is_err());
    }

    #[test]
    fn window_edges_are_inclusive_and_outside_needs_the_flag() {
        let window = FollowUpWindow::default();
        let injected = date("2026-01-01");
        let day = |n: u64| injected + chrono::Days::new(n);
        assert!(window.place(injected, day(46), false).is_ok_and(|p| p.in_window));
        assert!(window.place(injected, day(74), false).is_ok_and(|p| p.in_window));
        assert!(matches!(window.place(injected, day(45), false), Err(Error::OutsideWindow { days: 45, .. })));
        assert!(matches!(window.place(injected, day(75), false), Err(Error::OutsideWindow { .. })));
        let flagged = window.place(injected, day(90), true);
        assert!(flagged.is_ok_and(|p| !p.in_window && p.days_since_injection == 90));
    }

    #[test]
    fn follow_up_before_injection_is_refused_even_when_flagged() {
        let window = FollowUpWindow::default();
        let result = window.place(date("2026-03-01"), date("2026-02-28"), true);
        assert!(matches!(result, Err(Error::FollowUpBeforeInjection { .. })));
    }

    #[test]
    fn window_dates_follow_the_injection() {
        let (open, due, close) = FollowUpWindow::default().dates(date("2026-01-01"));
        assert_eq!((open, due, close), (date("2026-02-16"), date("2026-03-02"), date("2026-03-16")));
        let unordered = FollowUpWindow { start_day: 70, due_day: 60, end_day: 74 };
        assert!(unordered.validate().is_err());
    }
}
