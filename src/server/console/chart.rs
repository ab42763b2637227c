//! Usage charts as inline SVG, drawn on the server: no JavaScript, no
//! build step, readable without styles (each bar has a title, and the
//! figure a text summary for screen readers).

use std::fmt::Write as _;

use super::escape::esc;
use crate::service::UsageSeries;

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 160.0;
const AXIS: f64 = 24.0;
/// Room above the bars for the peak's label.
const HEADROOM: f64 = 16.0;

/// Stacked bars per bucket: valid verifications below, refused above.
pub fn usage_svg(series: &UsageSeries, caption: &str, bucket: &str) -> String {
    let totals: Vec<(i64, i64, i64)> = series
        .iter()
        .map(|(start, counts)| {
            let valid = counts.get("VALID").copied().unwrap_or(0);
            let all: i64 = counts.values().sum();
            (*start, valid, all - valid)
        })
        .collect();
    let peak = totals.iter().map(|(_, v, r)| v + r).max().unwrap_or(0).max(1);
    let (valid_sum, refused_sum): (i64, i64) = totals.iter().fold((0, 0), |(a, b), (_, v, r)| (a + v, b + r));
    let slot = WIDTH / totals.len().max(1) as f64;
    let mut bars = String::new();
    for (i, (start, valid, refused)) in totals.iter().enumerate() {
        let x = i as f64 * slot + slot * 0.1;
        let w = (slot * 0.8).max(1.0);
        let h_valid = *valid as f64 / peak as f64 * (HEIGHT - AXIS - HEADROOM);
        let h_refused = *refused as f64 / peak as f64 * (HEIGHT - AXIS - HEADROOM);
        let stamp = crate::time::rfc3339(*start).replace('T', " ");
        let when = esc(stamp.get(..16).unwrap_or(&stamp));
        let _ = write!(
            bars,
            r#"<g><title>{when}: {valid} valid, {refused} refused</title><rect class="valid" x="{x:.1}" y="{:.1}" width="{w:.1}" height="{h_valid:.1}"/><rect class="refused" x="{x:.1}" y="{:.1}" width="{w:.1}" height="{h_refused:.1}"/></g>"#,
            HEIGHT - AXIS - h_valid,
            HEIGHT - AXIS - h_valid - h_refused,
        );
    }
    let first = series.first().map(|(s, _)| crate::time::rfc3339(*s)).unwrap_or_default();
    let last = series.last().map(|(s, _)| crate::time::rfc3339(*s)).unwrap_or_default();
    format!(
        r##"<figure class="usage-chart"><svg role="img" aria-labelledby="usage-summary" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" height="{HEIGHT}" xmlns="http://www.w3.org/2000/svg">
<style>.valid{{fill:#2e7d32}}.refused{{fill:#c62828}}text{{font:11px sans-serif;fill:#555}}</style>
<line x1="0" y1="{:.1}" x2="{WIDTH}" y2="{:.1}" stroke="#999"/>{bars}
<text x="0" y="{:.1}">{}</text><text x="{WIDTH}" y="{:.1}" text-anchor="end">{}</text><text x="0" y="10">peak {peak} per {bucket}</text></svg>
<figcaption id="usage-summary">{}: {valid_sum} valid and {refused_sum} refused verifications, per {bucket}.</figcaption></figure>"##,
        HEIGHT - AXIS,
        HEIGHT - AXIS,
        HEIGHT - 6.0,
        esc(first.get(..10).unwrap_or_default()),
        HEIGHT - 6.0,
        esc(last.get(..10).unwrap_or_default()),
        esc(caption),
    )
}

/// "3 minutes ago", "in 60 days": how far `then` is from `now`, to the
/// nearest unit. Rounded, not cut: a key made to expire in 60 days reads
/// "in 60 days" when the page shows it a few seconds later, not 59.
pub fn relative(then: i64, now: i64) -> String {
    let delta = (then - now).unsigned_abs();
    let nearest = |unit: u64| (delta + unit / 2) / unit;
    let (n, unit) = if nearest(1000) < 60 {
        (nearest(1000), "second")
    } else if nearest(60_000) < 60 {
        (nearest(60_000), "minute")
    } else if nearest(3_600_000) < 24 {
        (nearest(3_600_000), "hour")
    } else {
        (nearest(86_400_000), "day")
    };
    let plural = if n == 1 { "" } else { "s" };
    if then <= now {
        format!("{n} {unit}{plural} ago")
    } else {
        format!("in {n} {unit}{plural}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! t {
        ($name:ident, $then:expr, $expected:expr) => {
            #[test]
            fn $name() {
                assert_eq!(relative($then, 1_000_000_000_000), $expected);
            }
        };
    }

    t!(seconds_ago, 1_000_000_000_000 - 5_000, "5 seconds ago");
    t!(three_minutes_ago, 1_000_000_000_000 - 180_000, "3 minutes ago");
    t!(one_hour_ago, 1_000_000_000_000 - 3_600_000, "1 hour ago");
    t!(in_sixty_days, 1_000_000_000_000 + 60 * 86_400_000, "in 60 days");
    t!(
        in_sixty_days_seen_seconds_later,
        1_000_000_000_000 + 60 * 86_400_000 - 5_000,
        "in 60 days"
    );
    t!(almost_a_minute_ago, 1_000_000_000_000 - 59_600, "1 minute ago");
    t!(three_and_a_half_hours_ago, 1_000_000_000_000 - 12_600_000, "4 hours ago");
    t!(twenty_three_and_a_half_hours_on, 1_000_000_000_000 + 84_600_000, "in 1 day");
    t!(now_is_zero_seconds_ago, 1_000_000_000_000, "0 seconds ago");

    #[test]
    fn the_chart_names_its_totals_and_escapes_its_caption() {
        let mut counts = std::collections::BTreeMap::new();
        counts.insert("VALID".to_string(), 7);
        counts.insert("RATE_LIMITED".to_string(), 2);
        let svg = usage_svg(&vec![(0, counts), (86_400_000, Default::default())], "<b>key</b>", "day");
        assert!(svg.contains("7 valid and 2 refused"), "{svg}");
        assert!(svg.contains("&lt;b&gt;key") && !svg.contains("<b>key"), "{svg}");
        assert_eq!(svg.matches("<rect").count(), 4);
    }
}
