//! Queries that count: a ratio of counters (`sum(rate(errors[1m])) / sum(rate(requests[1m]))`)
//! turned into the two counts behind it over one evaluation interval
//! (`sum(increase(errors[30s]))` and `sum(increase(requests[30s]))`), for the sequential test
//! on counts (`engine::count_test`). Successive evaluations then count disjoint intervals,
//! where the ratio's own windows may overlap.

use std::time::Duration;

use promql_parser::parser::{self, Expr, NumberLiteral};

/// The events and requests queries behind a rendered ratio of counters, counted over
/// `interval`; None when `query` is not a ratio of counters.
///
/// A ratio of counters is `A / B` (parentheses allowed), each side `rate(...)` or
/// `increase(...)` of a range selector, optionally inside one aggregation such as `sum`.
pub fn count_queries(query: &str, interval: Duration) -> Option<(String, String)> {
    let mut expr = parser::parse(query).ok()?;
    while let Expr::Paren(inner) = expr {
        expr = *inner.expr;
    }
    let Expr::Binary(ratio) = expr else {
        return None;
    };
    if ratio.op.to_string() != "/" {
        return None;
    }
    let events = counted(*ratio.lhs, interval)?;
    let requests = counted(*ratio.rhs, interval)?;
    Some((events.to_string(), requests.to_string()))
}

/// `side` with its rate or increase counted over `interval`, if it is one of counters.
fn counted(side: Expr, interval: Duration) -> Option<Expr> {
    match side {
        Expr::Paren(inner) => counted(*inner.expr, interval),
        Expr::Aggregate(mut aggregate) if aggregate.param.is_none() => {
            let name = aggregate.op.to_string();
            if name != "sum" {
                return None;
            }
            let placeholder = Expr::NumberLiteral(NumberLiteral { val: 0.0 });
            let inner = std::mem::replace(&mut *aggregate.expr, placeholder);
            *aggregate.expr = increase_over(inner, interval)?;
            Some(Expr::Aggregate(aggregate))
        }
        other => increase_over(other, interval),
    }
}

fn increase_over(expr: Expr, interval: Duration) -> Option<Expr> {
    let Expr::Call(mut call) = expr else {
        return None;
    };
    if !matches!(call.func.name, "rate" | "increase") {
        return None;
    }
    let [argument] = call.args.args.as_mut_slice() else {
        return None;
    };
    let Expr::MatrixSelector(selector) = argument.as_mut() else {
        return None;
    };
    selector.range = interval;
    call.func.name = "increase";
    Some(Expr::Call(call))
}

#[cfg(test)]
mod tests {
    use super::*;

    const INTERVAL: Duration = Duration::from_secs(30);

    #[test]
    fn a_ratio_of_counter_rates_gives_its_counts_over_the_interval() {
        let (events, requests) = count_queries(
            r#"sum(rate(http_requests_total{track="canary",code=~"5.."}[1m])) / sum(rate(http_requests_total{track="canary"}[1m]))"#,
            INTERVAL,
        )
        .expect("a ratio of counters");
        assert_eq!(
            events,
            r#"sum(increase(http_requests_total{code=~"5..",track="canary"}[30s]))"#
        );
        assert_eq!(
            requests,
            r#"sum(increase(http_requests_total{track="canary"}[30s]))"#
        );
        let (events, requests) = count_queries(
            "(increase(errors_total[5m]) / (rate(requests_total[5m])))",
            INTERVAL,
        )
        .expect("a ratio of counters");
        assert_eq!(events, "increase(errors_total[30s])");
        assert_eq!(requests, "increase(requests_total[30s])");
    }

    #[test]
    fn anything_else_is_not_a_ratio_of_counters() {
        for query in [
            "histogram_quantile(0.99, sum by (le) (rate(latency_bucket[1m])))",
            "sum(rate(errors_total[1m]))",
            "sum(rate(errors_total[1m])) * sum(rate(requests_total[1m]))",
            "avg(rate(errors_total[1m])) / avg(rate(requests_total[1m]))",
            "sum(rate(errors_total[1m])) / 60",
            "sum(irate(errors_total[1m])) / sum(irate(requests_total[1m]))",
            "sum(rate(errors_total[1m])) / sum(rate(requests_total[1m])) > 0.5",
            "not promql (",
        ] {
            assert_eq!(count_queries(query, INTERVAL), None, "{query}");
        }
    }
}
