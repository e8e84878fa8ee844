//! The `x-ratelimit-*` headers, named and formatted as OpenAI sends them: for the tightest
//! requests limit and the tightest tokens limit that applied to the request, the limit per
//! minute, what remains of it, and the time until it is full again (`1s`, `6m0s`, `120ms`).

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use std::time::Duration;

use crate::governance::rate::{RateRefusal, RateView, Unit, View};

static NAMES: [[HeaderName; 3]; 2] = [
    [
        HeaderName::from_static("x-ratelimit-limit-requests"),
        HeaderName::from_static("x-ratelimit-remaining-requests"),
        HeaderName::from_static("x-ratelimit-reset-requests"),
    ],
    [
        HeaderName::from_static("x-ratelimit-limit-tokens"),
        HeaderName::from_static("x-ratelimit-remaining-tokens"),
        HeaderName::from_static("x-ratelimit-reset-tokens"),
    ],
];

/// A duration as OpenAI writes a reset: `120ms` under a second, else `[Nh][Nm]S[.fff]s`.
pub fn duration_text(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{}ms", ms.max(u128::from(!d.is_zero())));
    }
    let (h, m) = (ms / 3_600_000, ms / 60_000 % 60);
    let s = (ms % 60_000) as f64 / 1000.0;
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if h > 0 || m > 0 {
        out.push_str(&format!("{m}m"));
    }
    let secs = format!("{s:.3}");
    out.push_str(secs.trim_end_matches('0').trim_end_matches('.'));
    out.push('s');
    out
}

fn put(h: &mut HeaderMap, names: &[HeaderName; 3], v: &View) {
    h.insert(names[0].clone(), HeaderValue::from(v.limit));
    h.insert(names[1].clone(), HeaderValue::from(v.remaining));
    if let Ok(reset) = HeaderValue::from_str(&duration_text(Duration::from_nanos(v.reset_ns))) {
        h.insert(names[2].clone(), reset);
    }
}

/// The headers of an admitted request.
pub fn write(h: &mut HeaderMap, view: &RateView) {
    if let Some(v) = &view.requests {
        put(h, &NAMES[0], v);
    }
    if let Some(v) = &view.tokens {
        put(h, &NAMES[1], v);
    }
}

/// The headers of a refusal: nothing remains of the limit that refused until it resets.
pub fn write_refusal(h: &mut HeaderMap, r: &RateRefusal) {
    if let RateRefusal::Exceeded {
        unit,
        limit,
        retry_after,
        ..
    } = r
    {
        let names = match unit {
            Unit::Requests => &NAMES[0],
            Unit::Tokens => &NAMES[1],
        };
        let reset_ns = u64::try_from(retry_after.as_nanos()).unwrap_or(u64::MAX);
        put(
            h,
            names,
            &View {
                limit: *limit,
                remaining: 0,
                reset_ns,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resets_read_like_openai() {
        let ms = Duration::from_millis;
        assert_eq!(duration_text(ms(0)), "0ms");
        assert_eq!(duration_text(Duration::from_nanos(10)), "1ms");
        assert_eq!(duration_text(ms(120)), "120ms");
        assert_eq!(duration_text(ms(1000)), "1s");
        assert_eq!(duration_text(ms(1500)), "1.5s");
        assert_eq!(duration_text(ms(360_000)), "6m0s");
        assert_eq!(duration_text(ms(3_723_250)), "1h2m3.25s");
    }

    #[test]
    fn an_admitted_request_gets_both_sets() {
        let mut h = HeaderMap::new();
        let v = View {
            limit: 600,
            remaining: 598,
            reset_ns: 200_000_000,
        };
        write(
            &mut h,
            &RateView {
                requests: Some(v),
                tokens: Some(View { limit: 1000, ..v }),
            },
        );
        assert_eq!(h["x-ratelimit-limit-requests"], "600");
        assert_eq!(h["x-ratelimit-remaining-requests"], "598");
        assert_eq!(h["x-ratelimit-reset-requests"], "200ms");
        assert_eq!(h["x-ratelimit-limit-tokens"], "1000");
    }
}
