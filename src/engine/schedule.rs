//! Cron schedules (UTC) for standalone evaluations, e.g. the daily parity report.

use std::str::FromStr;

use croner::Cron;
use jiff::Timestamp;
use jiff::tz::TimeZone;

/// Parses a cron expression ("0 6,18 * * *"), with a message naming what is wrong.
pub fn parse(expression: &str) -> Result<Cron, String> {
    Cron::from_str(expression).map_err(|e| format!("invalid cron expression {expression:?}: {e}"))
}

/// The first time strictly after `after` that the schedule fires, in UTC.
pub fn next_after(cron: &Cron, after: Timestamp) -> Option<Timestamp> {
    let zoned = after.to_zoned(TimeZone::UTC);
    cron.find_next_occurrence(&zoned, false)
        .ok()
        .map(|z| z.timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twice_a_day_in_utc() {
        let cron = parse("0 6,18 * * *").unwrap();
        let at: Timestamp = "2026-11-21T07:30:00Z".parse().unwrap();
        assert_eq!(
            next_after(&cron, at).unwrap().to_string(),
            "2026-11-21T18:00:00Z"
        );
        let evening: Timestamp = "2026-11-21T18:00:00Z".parse().unwrap();
        assert_eq!(
            next_after(&cron, evening).unwrap().to_string(),
            "2026-11-22T06:00:00Z"
        );
    }

    #[test]
    fn every_minute() {
        let cron = parse("* * * * *").unwrap();
        let at: Timestamp = "2026-11-21T07:30:10Z".parse().unwrap();
        assert_eq!(
            next_after(&cron, at).unwrap().to_string(),
            "2026-11-21T07:31:00Z"
        );
    }

    #[test]
    fn nonsense_is_rejected_with_the_expression() {
        let error = parse("every day at six").unwrap_err();
        assert!(error.contains("every day at six"), "{error}");
        assert!(parse("61 * * * *").is_err());
    }
}
