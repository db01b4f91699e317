//! What the operator process costs (from /proc) and what it reports about itself (/metrics).

use std::collections::BTreeMap;
use std::io;
use std::sync::OnceLock;

/// Memory and CPU of a process at one moment.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcessSample {
    /// VmRSS: resident memory now.
    pub rss_kib: u64,
    /// VmHWM: the most resident memory the process ever had.
    pub peak_rss_kib: u64,
    /// utime + stime: CPU used since it started, user and kernel.
    pub cpu_seconds: f64,
}

impl ProcessSample {
    pub fn read(pid: u32) -> io::Result<ProcessSample> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let kib = |field: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(field))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0)
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
        // The command name may contain spaces: fields are counted after its closing ')'.
        // There, field 1 is the state (3rd of the line), so utime (14th) and stime (15th) are
        // at 11 and 12.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0)
        };
        Ok(ProcessSample {
            rss_kib: kib("VmRSS:"),
            peak_rss_kib: kib("VmHWM:"),
            cpu_seconds: (ticks(11) + ticks(12)) as f64 / clock_ticks_per_second(),
        })
    }
}

/// The kernel's clock tick (USER_HZ), the unit of utime and stime; 100 on Linux unless
/// `getconf` says otherwise.
fn clock_ticks_per_second() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .and_then(|text| text.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// The samples of one /metrics page: (name, labels) -> value.
#[derive(Clone, Debug, Default)]
pub struct MetricsPage {
    samples: Vec<(String, BTreeMap<String, String>, f64)>,
}

impl MetricsPage {
    pub async fn fetch(address: &str) -> Result<MetricsPage, reqwest::Error> {
        let text = reqwest::get(format!("http://{address}/metrics"))
            .await?
            .error_for_status()?
            .text()
            .await?;
        Ok(MetricsPage::parse(&text))
    }

    pub fn parse(text: &str) -> MetricsPage {
        let samples = text
            .lines()
            .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
            .filter_map(parse_sample)
            .collect();
        MetricsPage { samples }
    }

    /// The sum of `name` over the series whose labels include `matching`.
    pub fn sum(&self, name: &str, matching: &[(&str, &str)]) -> f64 {
        self.series(name, matching).map(|(_, value)| value).sum()
    }

    /// The cumulative buckets (upper bound, count) of histogram `name`, summed over the series
    /// whose labels include `matching`.
    pub fn buckets(&self, name: &str, matching: &[(&str, &str)]) -> Vec<(f64, f64)> {
        let mut buckets: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
        for (labels, value) in self.series(&format!("{name}_bucket"), matching) {
            let Some(bound) = labels.get("le").and_then(|le| le.parse::<f64>().ok()) else {
                continue;
            };
            // Bounds are positive, so their bit patterns sort like the numbers.
            buckets.entry(bound.to_bits()).or_insert((bound, 0.0)).1 += value;
        }
        buckets.into_values().collect()
    }

    fn series<'a>(
        &'a self,
        name: &'a str,
        matching: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = (&'a BTreeMap<String, String>, f64)> + 'a {
        self.samples
            .iter()
            .filter(move |(n, labels, _)| {
                n == name
                    && matching
                        .iter()
                        .all(|(k, v)| labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|(_, labels, value)| (labels, *value))
    }
}

/// `name{a="x",b="y"} value [timestamp]`.
fn parse_sample(line: &str) -> Option<(String, BTreeMap<String, String>, f64)> {
    let (name, labels, rest) = match line.find('{') {
        Some(open) => {
            let close = line.rfind('}')?;
            (
                &line[..open],
                parse_labels(&line[open + 1..close]),
                &line[close + 1..],
            )
        }
        None => {
            let (name, rest) = line.split_once(' ')?;
            (name, BTreeMap::new(), rest)
        }
    };
    let value = rest.split_whitespace().next()?.parse().ok()?;
    Some((name.to_string(), labels, value))
}

fn parse_labels(text: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut rest = text;
    while let Some((key, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => value.extend(chars.next().map(|(_, c)| c)),
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        labels.insert(key.trim_start_matches(',').trim().to_string(), value);
        rest = &after[end..];
    }
    labels
}

/// Per-bucket difference of two cumulative histograms taken at two moments: the observations
/// made in between.
pub fn bucket_delta(before: &[(f64, f64)], after: &[(f64, f64)]) -> Vec<(f64, f64)> {
    after
        .iter()
        .map(|&(bound, count)| {
            let earlier = before
                .iter()
                .find(|(b, _)| *b == bound)
                .map_or(0.0, |(_, c)| *c);
            (bound, count - earlier)
        })
        .collect()
}

/// The `q` quantile of cumulative buckets, interpolated linearly within its bucket as
/// Prometheus' `histogram_quantile` does. `None` without observations; `Err(bound)` when it
/// lies above the largest finite bound.
pub fn quantile(buckets: &[(f64, f64)], q: f64) -> Option<Result<f64, f64>> {
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut lower = (0.0, 0.0);
    for &(bound, count) in buckets {
        if count >= rank {
            if bound.is_infinite() {
                return Some(Err(lower.0));
            }
            let share = if count > lower.1 {
                (rank - lower.1) / (count - lower.1)
            } else {
                1.0
            };
            return Some(Ok(lower.0 + (bound - lower.0) * share));
        }
        lower = (bound, count);
    }
    Some(Err(lower.0))
}
