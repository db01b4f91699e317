//! Small text helpers shared by the plugin's tables and explanations: ages, numbers, aligned
//! columns. Pure; nothing here reads the cluster or the clock.

use jiff::{SignedDuration, Timestamp};

/// A duration the way kubectl prints ages: "42s", "5m3s", "17m", "3h12m", "2d".
pub fn age(duration: SignedDuration) -> String {
    let seconds = duration.as_secs().max(0);
    let (minutes, hours, days) = (seconds / 60, seconds / 3600, seconds / 86_400);
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 600 => format!("{minutes}m{}s", s % 60),
        s if s < 3 * 3600 => format!("{minutes}m"),
        s if s < 8 * 3600 => format!("{hours}h{}m", minutes % 60),
        s if s < 48 * 3600 => format!("{hours}h"),
        s if s < 8 * 86_400 => format!("{days}d{}h", hours % 24),
        _ => format!("{days}d"),
    }
}

/// Time from `since` to `now`, kubectl-style; "<unknown>" when `since` is missing.
pub fn age_since(since: Option<Timestamp>, now: Timestamp) -> String {
    since.map_or_else(|| "<unknown>".to_string(), |t| age(now.duration_since(t)))
}

/// A point in time to the second, RFC 3339: "2026-11-18T11:05:28Z".
pub fn instant(time: Timestamp) -> String {
    time.round(jiff::Unit::Second).unwrap_or(time).to_string()
}

/// A measured value with at most four significant digits and no trailing zeros: 0.0023, 12.4,
/// 1523. Non-finite values are spelled out.
pub fn number(value: f64) -> String {
    if !value.is_finite() {
        return value.to_string();
    }
    if value == 0.0 {
        return "0".to_string();
    }
    let magnitude = value.abs().log10().floor() as i32;
    let decimals = (3 - magnitude).clamp(0, 12) as usize;
    let text = format!("{value:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

/// A 0-1 fraction as a percentage with one decimal: 0.8213 -> "82.1%".
pub fn percent(fraction: f64) -> String {
    format!("{:.1}%", fraction * 100.0)
}

/// Basis points with one decimal: "12.4 bps".
pub fn bps(value: f64) -> String {
    format!("{value:.1} bps")
}

/// "-" for a missing value, as kubectl shows an empty column.
pub fn or_dash(value: Option<String>) -> String {
    value.unwrap_or_else(|| "-".to_string())
}

/// Columns left-aligned and separated by three spaces, as `kubectl get` prints them; no trailing
/// spaces.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        let mut out = String::new();
        for (i, (cell, width)) in cells.iter().zip(&widths).enumerate() {
            out.push_str(cell);
            if i < last {
                let pad = width - cell.chars().count() + 3;
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.trim_end().to_string() + "\n"
    };
    let mut out = line(headers.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_like_kubectl() {
        let cases = [
            (42, "42s"),
            (119, "119s"),
            (303, "5m3s"),
            (1_020, "17m"),
            (11_520, "3h12m"),
            (36_000, "10h"),
            (2 * 86_400 + 3_600, "2d1h"),
            (30 * 86_400, "30d"),
            (-5, "0s"),
        ];
        for (seconds, expected) in cases {
            assert_eq!(
                age(SignedDuration::from_secs(seconds)),
                expected,
                "{seconds}s"
            );
        }
    }

    #[test]
    fn instants_are_shown_to_the_second() {
        let time: Timestamp = "2026-11-21T08:18:32.843226313Z".parse().unwrap();
        assert_eq!(instant(time), "2026-11-21T08:18:33Z");
    }

    #[test]
    fn numbers_keep_four_significant_digits() {
        let cases = [
            (0.002, "0.002"),
            (0.0023000000001, "0.0023"),
            (12.4, "12.4"),
            (0.23, "0.23"),
            (1523.4, "1523"),
            (100.0, "100"),
            (0.0, "0"),
            (-0.015, "-0.015"),
            (f64::NAN, "NaN"),
        ];
        for (value, expected) in cases {
            assert_eq!(number(value), expected, "{value}");
        }
    }

    #[test]
    fn table_aligns_columns_without_trailing_spaces() {
        let rows = vec![
            vec![
                "checkout".to_string(),
                "Progressing".to_string(),
                "-".to_string(),
            ],
            vec!["web".to_string(), "Idle".to_string(), "5%".to_string()],
        ];
        let text = table(&["NAME", "PHASE", "WEIGHT"], &rows);
        assert_eq!(
            text,
            "NAME       PHASE         WEIGHT\n\
             checkout   Progressing   -\n\
             web        Idle          5%\n"
        );
    }
}
