//! Live health of one deployment: decaying latency and error averages (for latency routing and
//! hedging), a circuit breaker, and a retry budget. Pure state machines driven by the attempt
//! loop, with time passed in so tests control it; the loop publishes the breaker transitions.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::config::{BreakerConfig, RetryBudgetConfig};
use crate::events::BreakerState;

/// A breaker state change, for the event stream and the metric.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub from: BreakerState,
    pub to: BreakerState,
    pub reason: String,
}

/// May a request go to this deployment now?
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Yes (closed breaker).
    Allowed,
    /// Yes, as one of the half-open probes; `transition` is set when this admission moved the
    /// breaker from open to half-open.
    Probe { transition: Option<Transition> },
    /// No: the breaker is open (or its probes are all out).
    Rejected,
}

/// Counts per one-second bucket over a sliding window, kept as long as the longest window that
/// reads it (the breaker's or the retry budget's).
#[derive(Debug)]
struct Window {
    /// (second since `origin`, successes, failures, retries)
    buckets: VecDeque<(u64, u32, u32, u32)>,
    keep_secs: u64,
}

impl Window {
    /// The bucket of second `sec`, dropping those no window reads any more.
    fn bucket(&mut self, sec: u64) -> &mut (u64, u32, u32, u32) {
        while self
            .buckets
            .front()
            .is_some_and(|b| b.0 + self.keep_secs <= sec)
        {
            self.buckets.pop_front();
        }
        if self.buckets.back().is_none_or(|b| b.0 != sec) {
            self.buckets.push_back((sec, 0, 0, 0));
        }
        // invariant: a bucket for `sec` was pushed just above if there was none.
        let last = self.buckets.len() - 1;
        &mut self.buckets[last]
    }

    /// (successes, failures, retries) over the last `span` seconds up to `sec`.
    fn totals(&self, sec: u64, span: u64) -> (u32, u32, u32) {
        self.buckets
            .iter()
            .filter(|b| b.0 + span > sec)
            .fold((0, 0, 0), |(s, f, r), b| (s + b.1, f + b.2, r + b.3))
    }
}

#[derive(Debug)]
enum Breaker {
    Closed,
    Open { until: Instant },
    HalfOpen { probes: u32 },
}

#[derive(Debug)]
struct State {
    breaker: Breaker,
    consecutive_failures: u32,
    outcomes: Window,
    /// Decaying averages; `None` until the first observation.
    latency_us: Option<f64>,
    error_rate: f64,
    last_observed: Option<Instant>,
    in_flight: u32,
    /// Recent times to first token, newest last, for the hedging delay (p95).
    ttft_us: VecDeque<u64>,
    /// When latency routing last sent an exploration request here.
    explored: Option<Instant>,
}

/// Everything the router knows about one deployment's live behaviour.
#[derive(Debug)]
pub struct Health {
    state: Mutex<State>,
    origin: Instant,
    breaker: BreakerConfig,
    budget: RetryBudgetConfig,
    half_life: Duration,
}

const TTFT_SAMPLES: usize = 128;
/// The retry budget counts over this window.
const BUDGET_WINDOW_SECS: u64 = 10;

impl Health {
    pub fn new(breaker: BreakerConfig, budget: RetryBudgetConfig, half_life: Duration) -> Self {
        Self {
            state: Mutex::new(State {
                breaker: Breaker::Closed,
                consecutive_failures: 0,
                outcomes: Window {
                    buckets: VecDeque::new(),
                    keep_secs: breaker.window.as_secs().max(1).max(BUDGET_WINDOW_SECS),
                },
                latency_us: None,
                error_rate: 0.0,
                last_observed: None,
                in_flight: 0,
                ttft_us: VecDeque::with_capacity(TTFT_SAMPLES),
                explored: None,
            }),
            origin: Instant::now(),
            breaker,
            budget,
            half_life,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock leaves plain counters behind; they stay usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn sec(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.origin).as_secs()
    }

    fn window_secs(&self) -> u64 {
        self.breaker.window.as_secs().max(1)
    }

    /// Ask the breaker; counts the request as in flight when admitted (pair with `record`).
    pub fn admit(&self, now: Instant) -> Admission {
        let mut s = self.lock();
        let admission = if !self.breaker.enabled {
            Admission::Allowed
        } else {
            match s.breaker {
                Breaker::Closed => Admission::Allowed,
                Breaker::Open { until } if now < until => Admission::Rejected,
                Breaker::Open { .. } => {
                    s.breaker = Breaker::HalfOpen { probes: 1 };
                    Admission::Probe {
                        transition: Some(Transition {
                            from: BreakerState::Open,
                            to: BreakerState::HalfOpen,
                            reason: format!("open for {:?}; probing", self.breaker.open_for),
                        }),
                    }
                }
                Breaker::HalfOpen { probes } if probes < self.breaker.half_open_probes => {
                    s.breaker = Breaker::HalfOpen { probes: probes + 1 };
                    Admission::Probe { transition: None }
                }
                Breaker::HalfOpen { .. } => Admission::Rejected,
            }
        };
        if admission != Admission::Rejected {
            s.in_flight += 1;
        }
        admission
    }

    /// Whether the breaker would reject a request now, without admitting one.
    pub fn is_open(&self, now: Instant) -> bool {
        let s = self.lock();
        match s.breaker {
            Breaker::Open { until } => now < until,
            Breaker::HalfOpen { probes } => probes >= self.breaker.half_open_probes,
            Breaker::Closed => false,
        }
    }

    /// An admitted request ended. `failed` is a provider-side failure (the request's own 4xx is
    /// neither); it counts against the breaker unless `trips` is false (a 429: the deployment is
    /// busy, not broken, and its `Retry-After` says when to come back). `latency` is to the first
    /// token for streams, to the whole answer otherwise.
    pub fn record(
        &self,
        now: Instant,
        failed: Option<&str>,
        trips: bool,
        latency: Option<Duration>,
    ) -> Option<Transition> {
        let mut s = self.lock();
        s.in_flight = s.in_flight.saturating_sub(1);
        self.observe(&mut s, now, failed.is_some(), latency);
        if !self.breaker.enabled {
            return None;
        }
        match failed.filter(|_| trips) {
            None => Self::succeeded(&mut s),
            Some(class) => self.failed(&mut s, now, class),
        }
    }

    /// The routing half of an observation: decaying error rate and latency averages, the TTFT
    /// samples behind the hedge delay, and the per-second outcome buckets.
    fn observe(&self, s: &mut State, now: Instant, failed: bool, latency: Option<Duration>) {
        let alpha = match s.last_observed {
            Some(prev) => {
                let dt = now.saturating_duration_since(prev).as_secs_f64();
                1.0 - (-dt / self.half_life.as_secs_f64() * std::f64::consts::LN_2).exp()
            }
            None => 1.0,
        }
        // Observations close together still move the average, so a deployment that recovered
        // is seen to within a few dozen requests.
        .max(0.2);
        s.last_observed = Some(now);
        let err = if failed { 1.0 } else { 0.0 };
        s.error_rate += alpha * (err - s.error_rate);
        if let Some(l) = latency {
            let us = l.as_secs_f64() * 1e6;
            s.latency_us = Some(match s.latency_us {
                // Far faster than its average: it probably recovered; believe it quickly, so
                // the few exploration requests it gets bring its traffic back within seconds.
                Some(avg) if us < avg / 2.0 => avg + alpha.max(0.5) * (us - avg),
                Some(avg) => avg + alpha * (us - avg),
                None => us,
            });
            if !failed {
                if s.ttft_us.len() == TTFT_SAMPLES {
                    s.ttft_us.pop_front();
                }
                s.ttft_us
                    .push_back(l.as_micros().try_into().unwrap_or(u64::MAX));
            }
        }
        let bucket = s.outcomes.bucket(self.sec(now));
        if failed {
            bucket.2 += 1;
        } else {
            bucket.1 += 1;
        }
    }

    /// The breaker after a success: a probe that answered closes it; a closed breaker forgets
    /// its run of failures.
    fn succeeded(s: &mut State) -> Option<Transition> {
        s.consecutive_failures = 0;
        if !matches!(s.breaker, Breaker::HalfOpen { .. }) {
            return None;
        }
        s.breaker = Breaker::Closed;
        Some(Transition {
            from: BreakerState::HalfOpen,
            to: BreakerState::Closed,
            reason: "probe succeeded".into(),
        })
    }

    /// The breaker after a failure that counts against it (`class` names it): a failed probe
    /// opens it again; a closed one opens on a run of failures or on the window's failure
    /// ratio over a minimum volume; late results of requests admitted before it opened change
    /// nothing.
    fn failed(&self, s: &mut State, now: Instant, class: &str) -> Option<Transition> {
        let from = match s.breaker {
            Breaker::Open { .. } => return None,
            Breaker::HalfOpen { .. } => BreakerState::HalfOpen,
            Breaker::Closed => BreakerState::Closed,
        };
        let reason = if from == BreakerState::HalfOpen {
            format!("probe failed ({class})")
        } else {
            s.consecutive_failures += 1;
            let span = self.window_secs();
            let (ok, failed, _) = s.outcomes.totals(self.sec(now), span);
            let total = ok + failed;
            let ratio = f64::from(failed) / f64::from(total.max(1));
            if s.consecutive_failures >= self.breaker.consecutive_failures {
                format!(
                    "{} consecutive failures, last {class}",
                    s.consecutive_failures
                )
            } else if total >= self.breaker.min_requests && ratio >= self.breaker.failure_ratio {
                format!("{failed} of {total} requests failed in {span}s, last {class}")
            } else {
                return None;
            }
        };
        s.breaker = Breaker::Open {
            until: now + self.breaker.open_for,
        };
        Some(Transition {
            from,
            to: BreakerState::Open,
            reason,
        })
    }

    /// A request that was admitted but never sent (e.g. cancelled): release it without an
    /// observation.
    pub fn release(&self) {
        let mut s = self.lock();
        s.in_flight = s.in_flight.saturating_sub(1);
        if let Breaker::HalfOpen { probes } = s.breaker {
            s.breaker = Breaker::HalfOpen {
                probes: probes.saturating_sub(1),
            };
        }
    }

    /// May this deployment be retried now? Retries are limited to `ratio` of the window's
    /// requests plus `min_per_second`; a granted retry is counted.
    pub fn try_retry(&self, now: Instant) -> bool {
        let mut s = self.lock();
        let sec = self.sec(now);
        let (ok, failed, retries) = s.outcomes.totals(sec, BUDGET_WINDOW_SECS);
        let requests = f64::from(ok + failed);
        let allowed = self.budget.min_per_second * BUDGET_WINDOW_SECS as f64
            + self.budget.ratio * (requests - f64::from(retries)).max(0.0);
        if f64::from(retries) + 1.0 > allowed {
            return false;
        }
        s.outcomes.bucket(sec).3 += 1;
        true
    }

    /// The routing cost: decaying latency, times the requests in flight, inflated by the error
    /// rate. An unobserved deployment costs nothing, so it gets tried; a penalty fades with
    /// the time since the last observation, so a deployment that was slow is tried again.
    pub fn cost(&self, now: Instant) -> f64 {
        let s = self.lock();
        let Some(latency) = s.latency_us else {
            return 0.0;
        };
        let idle = s
            .last_observed
            .map_or(0.0, |t| now.saturating_duration_since(t).as_secs_f64());
        let fade = (-idle / self.half_life.as_secs_f64() * std::f64::consts::LN_2).exp();
        latency * fade * f64::from(s.in_flight + 1) * (1.0 + 10.0 * s.error_rate * fade)
    }

    /// Claim an exploration request for this deployment unless one was claimed within `every`.
    pub fn claim_exploration(&self, now: Instant, every: Duration) -> bool {
        let mut s = self.lock();
        if s.explored
            .is_some_and(|t| now.saturating_duration_since(t) < every)
        {
            return false;
        }
        s.explored = Some(now);
        true
    }

    /// The 95th percentile of recent times to first token, once there are enough samples.
    pub fn p95_ttft(&self) -> Option<Duration> {
        let s = self.lock();
        if s.ttft_us.len() < 20 {
            return None;
        }
        let mut v: Vec<u64> = s.ttft_us.iter().copied().collect();
        v.sort_unstable();
        let at = (v.len() * 95 / 100).min(v.len() - 1);
        Some(Duration::from_micros(v[at]))
    }

    /// For metrics and tests: the decaying error rate.
    pub fn error_rate(&self) -> f64 {
        self.lock().error_rate
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn health(consecutive: u32) -> Health {
        Health::new(
            BreakerConfig {
                consecutive_failures: consecutive,
                min_requests: 10,
                failure_ratio: 0.5,
                window: Duration::from_secs(10),
                open_for: Duration::from_secs(5),
                half_open_probes: 1,
                enabled: true,
            },
            RetryBudgetConfig {
                ratio: 0.2,
                min_per_second: 0.0,
            },
            Duration::from_secs(5),
        )
    }

    #[test]
    fn opens_on_consecutive_failures_probes_and_closes() {
        let h = health(3);
        let t0 = Instant::now();
        for i in 0..3 {
            assert_eq!(h.admit(t0), Admission::Allowed);
            let tr = h.record(t0, Some("upstream_5xx"), true, None);
            assert_eq!(tr.is_some(), i == 2, "opens on the third failure");
        }
        assert_eq!(h.admit(t0 + Duration::from_secs(1)), Admission::Rejected);
        assert!(h.is_open(t0 + Duration::from_secs(1)));
        // After open_for: one probe, the next is refused while it is out.
        let t1 = t0 + Duration::from_secs(6);
        let Admission::Probe {
            transition: Some(tr),
        } = h.admit(t1)
        else {
            panic!("expected a probe")
        };
        assert_eq!(
            (tr.from, tr.to),
            (BreakerState::Open, BreakerState::HalfOpen)
        );
        assert_eq!(h.admit(t1), Admission::Rejected);
        // A failed probe reopens it.
        let tr = h.record(t1, Some("timeout"), true, None).unwrap();
        assert_eq!(
            (tr.from, tr.to),
            (BreakerState::HalfOpen, BreakerState::Open)
        );
        let t2 = t1 + Duration::from_secs(6);
        assert!(matches!(h.admit(t2), Admission::Probe { .. }));
        let tr = h
            .record(t2, None, true, Some(Duration::from_millis(5)))
            .unwrap();
        assert_eq!(
            (tr.from, tr.to),
            (BreakerState::HalfOpen, BreakerState::Closed)
        );
        assert_eq!(h.admit(t2), Admission::Allowed);
    }

    #[test]
    fn opens_on_failure_ratio_only_with_enough_volume() {
        let h = health(100);
        let t0 = Instant::now();
        // 4 of 8 failed: below min_requests, stays closed.
        for i in 0..8 {
            h.admit(t0);
            let fail = (i % 2 == 0).then_some("upstream_5xx");
            assert!(h.record(t0, fail, true, None).is_none());
        }
        // Two more, one failing: 5 of 10 → opens.
        h.admit(t0);
        assert!(h.record(t0, None, true, None).is_none());
        h.admit(t0);
        let tr = h.record(t0, Some("upstream_5xx"), true, None).unwrap();
        assert!(tr.reason.contains("5 of 10"), "{}", tr.reason);
    }

    #[test]
    fn rate_limits_do_not_trip_the_breaker() {
        let h = health(2);
        let t0 = Instant::now();
        for _ in 0..10 {
            h.admit(t0);
            assert!(h.record(t0, Some("rate_limited"), false, None).is_none());
        }
        assert_eq!(h.admit(t0), Admission::Allowed);
        assert!(h.error_rate() > 0.5, "still seen by latency routing");
    }

    #[test]
    fn retry_budget_is_a_share_of_traffic() {
        let h = health(1000);
        let t0 = Instant::now();
        for _ in 0..100 {
            h.admit(t0);
            h.record(t0, Some("rate_limited"), true, None);
        }
        let granted = (0..100).filter(|_| h.try_retry(t0)).count();
        assert!((15..=20).contains(&granted), "granted {granted}");
        // The window slides: later, with no traffic, nothing is left.
        assert!(!h.try_retry(t0 + Duration::from_secs(30)));
    }

    #[test]
    fn a_short_breaker_window_does_not_shorten_the_retry_budget_window() {
        let h = Health::new(
            BreakerConfig {
                consecutive_failures: 1000,
                min_requests: 1000,
                window: Duration::from_secs(2),
                ..BreakerConfig::default()
            },
            RetryBudgetConfig {
                ratio: 0.2,
                min_per_second: 0.0,
            },
            Duration::from_secs(5),
        );
        let t0 = Instant::now();
        for _ in 0..100 {
            h.admit(t0);
            h.record(t0, Some("upstream_5xx"), true, None);
        }
        // A failure 5 s later reads the breaker's 2 s window; the budget still sees all 101.
        let t1 = t0 + Duration::from_secs(5);
        h.admit(t1);
        h.record(t1, Some("upstream_5xx"), true, None);
        let granted = (0..100).filter(|_| h.try_retry(t1)).count();
        assert!((15..=21).contains(&granted), "granted {granted}");
    }

    #[test]
    fn cost_follows_latency_and_fades() {
        let fast = health(5);
        let slow = health(5);
        let t0 = Instant::now();
        for i in 0..20 {
            let t = t0 + Duration::from_millis(i * 100);
            fast.admit(t);
            fast.record(t, None, true, Some(Duration::from_millis(10)));
            slow.admit(t);
            slow.record(t, None, true, Some(Duration::from_millis(500)));
        }
        let t = t0 + Duration::from_secs(2);
        assert!(slow.cost(t) > 10.0 * fast.cost(t));
        // Unused for a minute, the slow one's penalty has faded enough to be tried again.
        assert!(slow.cost(t + Duration::from_secs(60)) < fast.cost(t));
        assert_eq!(health(5).cost(t), 0.0, "unobserved deployments are tried");
        assert!(fast.p95_ttft().unwrap() >= Duration::from_millis(10));
    }
}
