//! The attempt loop: walk a model's deployments in the order its strategy gives, skipping those
//! whose breaker is open; retry a deployment with backoff (or its `Retry-After`) within its
//! retry budget; fall back to the next deployment, then to fallback models; hedge the first
//! attempt when the model asks for it. Every attempt and every breaker change is returned for
//! the events; nothing here publishes or logs.

use futures::future::BoxFuture;
use rand::Rng;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::health::{Admission, Transition};
use super::{Deployment, ModelRoute, RouteTable};
use crate::config::RawHedge;
use crate::events::{Attempt, AttemptKind, BreakerChanged, ErrorInfo};
use crate::providers::{Fault, Provider, ProviderError};

/// One call of one deployment through one of its provider keys.
pub type Call<'r, T> = dyn Fn(&'r Deployment, &'r Arc<dyn Provider>) -> BoxFuture<'r, Result<T, ProviderError>>
    + Send
    + Sync
    + 'r;

/// What the attempt loop produced: the answer and the deployment that gave it, or the last
/// error; every attempt made on the way; every breaker that changed state.
pub struct Outcome<T> {
    pub result: Result<(T, Arc<Deployment>), ProviderError>,
    pub attempts: Vec<Attempt>,
    pub breaker_changes: Vec<BreakerChanged>,
}

/// How one deployment ended.
enum Step<T> {
    Answered(T),
    /// A failure another deployment may not have.
    Failed(ProviderError),
    /// A failure of the request itself: no other deployment of this model is tried.
    Refused(ProviderError),
    /// Not tried: its breaker is open.
    Skipped,
}

/// A started attempt, for recording it however it ends (even when cancelled). Until its end is
/// recorded it holds the admission its breaker granted: dropped unrecorded (the client went
/// away and the request future was dropped mid-call), it gives the admission back, so an
/// abandoned half-open probe cannot leave the breaker waiting for it forever.
struct Started<'r> {
    deployment: &'r Deployment,
    kind: AttemptKind,
    backoff: Duration,
    key: Option<u32>,
    at: Instant,
    settled: std::cell::Cell<bool>,
}

impl Started<'_> {
    /// The event record of this attempt.
    fn attempt(&self, status: u16, elapsed: Duration, error: Option<ErrorInfo>) -> Attempt {
        Attempt {
            provider: self.deployment.provider_name.clone(),
            model: self.deployment.model.clone(),
            status,
            latency_us: u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
            error,
            kind: self.kind,
            backoff_ms: u64::try_from(self.backoff.as_millis()).unwrap_or(u64::MAX),
            key_index: self.key,
        }
    }
}

impl Drop for Started<'_> {
    fn drop(&mut self) {
        if !self.settled.get() {
            self.deployment.health.release();
        }
    }
}

struct Loop<'r, 'c, T> {
    table: &'r RouteTable,
    call: &'c Call<'r, T>,
    attempts: Vec<Attempt>,
    changes: Vec<BreakerChanged>,
    /// The kind of the next deployment's first attempt.
    next_kind: AttemptKind,
}

impl<'r, T: Send + 'r> Loop<'r, '_, T> {
    fn transition(&mut self, d: &Deployment, t: Option<Transition>) {
        let Some(t) = t else { return };
        let to = t.to;
        metrics::gauge!("switchyard_breaker_state", "provider" => d.provider_name.clone(), "model" => d.model.clone())
            .set(to.level());
        metrics::counter!("switchyard_breaker_transitions_total", "provider" => d.provider_name.clone(), "to" => to.label()).increment(1);
        self.changes.push(BreakerChanged {
            provider: d.provider_name.clone(),
            model: d.model.clone(),
            from: t.from,
            to,
            reason: t.reason,
        });
    }

    /// Ask the breaker; `None` when it refuses.
    fn admit(&mut self, d: &'r Deployment) -> Option<()> {
        match d.health.admit(Instant::now()) {
            Admission::Rejected => {
                metrics::counter!("switchyard_breaker_rejections_total", "provider" => d.provider_name.clone()).increment(1);
                None
            }
            Admission::Probe { transition } => {
                self.transition(d, transition);
                Some(())
            }
            Admission::Allowed => Some(()),
        }
    }

    fn start(
        &self,
        d: &'r Deployment,
        kind: AttemptKind,
        backoff: Duration,
    ) -> (Started<'r>, &'r Arc<dyn Provider>) {
        let (key, provider) = d.key(Instant::now());
        let started = Started {
            deployment: d,
            kind,
            backoff,
            key,
            at: Instant::now(),
            settled: std::cell::Cell::new(false),
        };
        (started, provider)
    }

    /// Record how an attempt ended, in the health of its deployment and the attempt list.
    fn end(&mut self, s: &Started<'r>, res: &Result<T, ProviderError>) {
        s.settled.set(true);
        let d = s.deployment;
        let elapsed = s.at.elapsed();
        let now = Instant::now();
        let (failed, latency) = match res {
            Ok(_) => (None, Some(elapsed)),
            Err(e) if e.fault() == Fault::Client => (None, None),
            Err(e @ ProviderError::Timeout { .. }) => (Some(e.label()), Some(elapsed)),
            Err(e) => (Some(e.label()), None),
        };
        let trips = !matches!(res, Err(ProviderError::Status { status: 429, .. }));
        let t = d.health.record(now, failed, trips, latency);
        self.transition(d, t);
        if let Err(e) = res {
            metrics::counter!("switchyard_upstream_errors_total", "provider" => d.provider_name.clone(), "class" => e.label()).increment(1);
            if let ProviderError::Status {
                status: 429,
                retry_after,
                ..
            } = e
            {
                d.cool_key(s.key, *retry_after, now);
            }
        }
        let error = res.as_ref().err().map(|e| ErrorInfo {
            class: e.label().to_owned(),
            message: e.to_string(),
        });
        let status = res.as_ref().map_or_else(ProviderError::status, |_| 200);
        self.attempts.push(s.attempt(status, elapsed, error));
    }

    /// An attempt abandoned because another answered first.
    fn cancelled(&mut self, s: &Started<'r>) {
        s.settled.set(true);
        s.deployment.health.release();
        let error = ErrorInfo {
            class: "cancelled".into(),
            message: "another attempt answered first".into(),
        };
        self.attempts
            .push(s.attempt(0, s.at.elapsed(), Some(error)));
    }

    /// Try one deployment, with retries.
    async fn deployment(&mut self, d: &'r Deployment) -> Step<T> {
        let cfg = &self.table.retry;
        let mut kind = self.next_kind;
        let mut backoff = Duration::ZERO;
        let mut retries = 0u32;
        let mut admitted = false;
        loop {
            // A retry was admitted after its wait, below.
            if !admitted && self.admit(d).is_none() {
                return Step::Skipped;
            }
            self.next_kind = AttemptKind::Fallback;
            let (started, provider) = self.start(d, kind, backoff);
            let res = (self.call)(d, provider).await;
            self.end(&started, &res);
            let e = match res {
                Ok(v) => return Step::Answered(v),
                Err(e) if e.fault() == Fault::Client => return Step::Refused(e),
                Err(e) => e,
            };
            let class = e.class().routing();
            if retries >= cfg.max_retries || !class.is_some_and(|c| cfg.on.contains(&c)) {
                return Step::Failed(e);
            }
            let wait = match e.retry_after() {
                // Too long to hold the client: another deployment answers sooner.
                Some(ra) if ra > cfg.max_retry_after => return Step::Failed(e),
                // A pool key not cooling down needs no wait.
                Some(_) if d.has_fresh_key(Instant::now()) => Duration::ZERO,
                Some(ra) => ra,
                None => {
                    let cap = cfg
                        .base_delay
                        .saturating_mul(1 << retries.min(16))
                        .min(cfg.max_delay);
                    cap.mul_f64(rand::rng().random::<f64>())
                }
            };
            // Not worth waiting for a deployment whose breaker will refuse the retry.
            if d.health.is_open(Instant::now() + wait) {
                return Step::Failed(e);
            }
            if !d.health.try_retry(Instant::now()) {
                metrics::counter!("switchyard_retry_budget_exhausted_total", "provider" => d.provider_name.clone()).increment(1);
                return Step::Failed(e);
            }
            tokio::time::sleep(wait).await;
            // The breaker may have opened meanwhile: fall back, keeping this error.
            if self.admit(d).is_none() {
                return Step::Failed(e);
            }
            metrics::counter!("switchyard_retries_total", "provider" => d.provider_name.clone(), "class" => e.label()).increment(1);
            retries += 1;
            kind = AttemptKind::Retry;
            backoff = wait;
            admitted = true;
        }
    }

    /// The first attempt of a hedged model: if `first` has not answered after `delay`, start
    /// `second` too and take whichever answers first; the other is cancelled. Returns how each
    /// started deployment ended, the one that answered (if any) first.
    async fn hedged(
        &mut self,
        first: &'r Arc<Deployment>,
        second: &'r Arc<Deployment>,
        delay: Duration,
    ) -> Vec<(Step<T>, &'r Arc<Deployment>)> {
        if self.admit(first).is_none() {
            return vec![(Step::Skipped, first)];
        }
        let (a_started, a_provider) = self.start(first, self.next_kind, Duration::ZERO);
        self.next_kind = AttemptKind::Fallback;
        let mut a = (self.call)(first, a_provider);
        let timer = tokio::time::sleep(delay);
        tokio::pin!(timer);
        tokio::select! {
            res = &mut a => {
                self.end(&a_started, &res);
                return vec![(step(res), first)];
            }
            () = &mut timer => {}
        }
        if self.admit(second).is_none() {
            let res = a.await;
            self.end(&a_started, &res);
            return vec![(step(res), first), (Step::Skipped, second)];
        }
        metrics::counter!("switchyard_hedges_total", "provider" => second.provider_name.clone())
            .increment(1);
        let (b_started, b_provider) = self.start(second, AttemptKind::Hedge, Duration::ZERO);
        let mut b = (self.call)(second, b_provider);
        tokio::select! {
            res = &mut a => {
                self.end(&a_started, &res);
                if res.is_ok() {
                    self.cancelled(&b_started);
                    return vec![(step(res), first)];
                }
                let other = b.await;
                self.end(&b_started, &other);
                vec![(step(other), second), (step(res), first)]
            }
            res = &mut b => {
                self.end(&b_started, &res);
                if res.is_ok() {
                    self.cancelled(&a_started);
                    return vec![(step(res), second)];
                }
                let other = a.await;
                self.end(&a_started, &other);
                vec![(step(other), first), (step(res), second)]
            }
        }
    }
}

fn step<T>(res: Result<T, ProviderError>) -> Step<T> {
    match res {
        Ok(v) => Step::Answered(v),
        Err(e) if e.fault() == Fault::Client => Step::Refused(e),
        Err(e) => Step::Failed(e),
    }
}

/// The hedging delay: the configured one, or the deployment's live p95 time to first token
/// (one second until there are enough samples), never under the floor.
fn hedge_delay(h: &RawHedge, d: &Deployment) -> Duration {
    h.after
        .or_else(|| d.health.p95_ttft())
        .unwrap_or(Duration::from_secs(1))
        .max(h.min_delay)
}

/// Run `call` across `route`'s deployments and fallback models.
pub async fn run<'r, T: Send + 'r>(
    table: &'r RouteTable,
    route: &'r ModelRoute,
    call: &Call<'r, T>,
) -> Outcome<T> {
    let mut lp = Loop {
        table,
        call,
        attempts: Vec::with_capacity(1),
        changes: Vec::new(),
        next_kind: AttemptKind::First,
    };
    let mut last: Option<ProviderError> = None;
    let mut tried: Vec<&str> = vec![route.name.as_str()];
    let mut current = route;
    loop {
        let order = current.order(Instant::now());
        let mut refused = false;
        let mut i = 0;
        if let (Some(h), true) = (
            &current.hedge,
            order.len() >= 2 && std::ptr::eq(current, route),
        ) {
            let (first, second) = (
                &current.deployments[order[0]],
                &current.deployments[order[1]],
            );
            let steps = lp.hedged(first, second, hedge_delay(h, first)).await;
            // The deployments the hedge dealt with; the loop goes on from the next one (the
            // second, when the first failed before the hedge started).
            i = steps.len();
            for (s, d) in steps {
                match s {
                    Step::Answered(v) => {
                        return Outcome {
                            result: Ok((v, Arc::clone(d))),
                            attempts: lp.attempts,
                            breaker_changes: lp.changes,
                        };
                    }
                    Step::Refused(e) => {
                        refused = true;
                        last = Some(e);
                    }
                    Step::Failed(e) => last = Some(e),
                    Step::Skipped => {}
                }
            }
        }
        while !refused && i < order.len() {
            let d = &current.deployments[order[i]];
            i += 1;
            match lp.deployment(d).await {
                Step::Answered(v) => {
                    return Outcome {
                        result: Ok((v, Arc::clone(d))),
                        attempts: lp.attempts,
                        breaker_changes: lp.changes,
                    };
                }
                Step::Refused(e) => {
                    refused = true;
                    last = Some(e);
                }
                Step::Failed(e) => last = Some(e),
                Step::Skipped => {}
            }
        }
        // Next model: one named for this error class, then the configured fallbacks (of the
        // model the client asked for). A refused request only moves on by class.
        let class = last.as_ref().and_then(|e| e.class().routing());
        let by_class = route
            .fallback_on
            .iter()
            .filter(|(c, _)| Some(*c) == class)
            .map(|(_, m)| m.as_str());
        let plain = route
            .fallbacks
            .iter()
            .map(String::as_str)
            .filter(|_| !refused);
        let next = by_class
            .chain(plain)
            .find(|m| !tried.contains(m))
            .and_then(|m| table.get(m));
        match next {
            Some(m) => {
                tried.push(m.name.as_str());
                current = m;
            }
            None => break,
        }
    }
    Outcome {
        result: Err(last.unwrap_or(ProviderError::CircuitOpen)),
        attempts: lp.attempts,
        breaker_changes: lp.changes,
    }
}
