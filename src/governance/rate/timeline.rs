//! One limit's GCRA (generic cell rate algorithm) over a timeline shared by instances.
//!
//! A limit of `L` units per minute spends `T = 60 s / L` of the timeline per unit. GCRA keeps a
//! theoretical arrival time (TAT): a request of `n` units moves it to `max(TAT, now) + n·T`, and
//! is admitted when the new TAT is at most `tolerance` ahead of now (`tolerance` is the burst,
//! `b·T`, or `n·T` for a request larger than the burst). Any window of `W` then admits at most
//! `W/T + b` units, with no fixed window edges to game.
//!
//! Across instances the TAT is global: an instance leases a stretch `[start, end)` of the
//! timeline (`start = max(TAT, now)`, and TAT becomes `end`, written only if nobody wrote in
//! between) and spends it from memory. The stretches of all instances never overlap, so the
//! requests of all instances together keep the single-TAT bound. Time that passes unspent is
//! lost, as an idle GCRA's is. Times are nanoseconds since the Unix epoch, so instances compare
//! them through their clocks (keep them in NTP sync; a skew of `d` shifts a limit by `d`).
//!
//! Pure and synchronous: [`super::Rates`] holds one per limit behind a mutex.

use std::collections::VecDeque;

pub const MINUTE_NS: u64 = 60_000_000_000;

/// Timeline spent per unit by a limit of `per_minute` units (at least 1 ns).
pub fn unit_ns(per_minute: u64) -> u64 {
    (MINUTE_NS / per_minute.max(1)).max(1)
}

/// What [`Timeline::take`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Take {
    /// Admitted: the request's units end at `end` on the timeline.
    Admitted { end: u64 },
    /// Over the limit: admissible in `retry_ns` at the earliest.
    TooEarly { retry_ns: u64 },
    /// This instance holds `shortfall_ns` too little of the timeline to tell; a lease decides
    /// (the request may end at most `tolerance` ahead of now).
    Short { shortfall_ns: u64, tolerance: u64 },
}

/// What a limit looks like from here, for the `x-ratelimit-*` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct View {
    pub limit: u64,
    /// Units admissible within the next minute at the limit's pace, as far as this instance
    /// knows.
    pub remaining: u64,
    /// Time until the limit is back to full, in nanoseconds.
    pub reset_ns: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeline {
    /// Units per minute.
    pub limit: u64,
    /// Units a burst may take beyond the steady pace.
    pub burst: u64,
    /// Stretches leased by this instance and not yet past, in order, `[start, end)`.
    leases: VecDeque<(u64, u64)>,
    /// Spent up to here.
    cursor: u64,
    /// The global TAT as last read from the ledger (before this instance's own lease, if it
    /// took one then): time that belongs to other instances.
    others: u64,
}

impl Timeline {
    pub fn new(limit: u64, burst: u64) -> Self {
        Self {
            limit,
            burst: burst.max(1),
            leases: VecDeque::new(),
            cursor: 0,
            others: 0,
        }
    }

    /// Set the limit (the admin changed it): spending goes on from the same timeline.
    pub fn set_limit(&mut self, limit: u64, burst: u64) {
        self.limit = limit;
        self.burst = burst.max(1);
    }

    pub fn unit_ns(&self) -> u64 {
        unit_ns(self.limit)
    }

    /// How far ahead of now a request of `need_ns` may end.
    pub fn tolerance(&self, need_ns: u64) -> u64 {
        self.burst.saturating_mul(self.unit_ns()).max(need_ns)
    }

    fn prune(&mut self, now: u64) {
        while self.leases.front().is_some_and(|&(_, end)| end <= now) {
            self.leases.pop_front();
        }
    }

    /// The end of the last stretch held, or 0.
    fn held_end(&self) -> u64 {
        self.leases.back().map_or(0, |&(_, end)| end)
    }

    /// Leased time not spent yet, from `now` on.
    pub fn ahead(&mut self, now: u64) -> u64 {
        self.prune(now);
        let from = self.cursor.max(now);
        self.leases
            .iter()
            .map(|&(s, e)| e.saturating_sub(s.max(from)))
            .sum()
    }

    /// Spend `units` at `now`, from the stretches held.
    pub fn take(&mut self, units: u64, now: u64) -> Take {
        self.prune(now);
        let need = units.saturating_mul(self.unit_ns());
        let tolerance = self.tolerance(need);
        let mut left = need;
        let mut pos = self.cursor.max(now);
        for &(s, e) in &self.leases {
            if left == 0 {
                break;
            }
            if e <= pos {
                continue;
            }
            let from = s.max(pos);
            let step = (e - from).min(left);
            left -= step;
            pos = from + step;
        }
        if left > 0 {
            // The earliest the rest could end: after what is held, and after every other
            // instance's time as last read.
            let end = self.held_end().max(pos).max(self.others).max(now) + left;
            let ahead = end - now;
            if ahead > tolerance {
                return Take::TooEarly {
                    retry_ns: ahead - tolerance,
                };
            }
            return Take::Short {
                shortfall_ns: left,
                tolerance,
            };
        }
        let ahead = pos - now;
        if ahead > tolerance {
            return Take::TooEarly {
                retry_ns: ahead - tolerance,
            };
        }
        self.cursor = pos;
        Take::Admitted { end: pos }
    }

    /// Undo a [`take`](Self::take) that ended at `end` (another limit refused the request),
    /// when nothing was spent after it.
    pub fn untake(&mut self, units: u64, end: u64) {
        if self.cursor == end {
            self.cursor = end.saturating_sub(units.saturating_mul(self.unit_ns()));
        }
    }

    /// The ledger granted `[start, end)`; the global TAT was `before` when it was read.
    pub fn grant(&mut self, before: u64, start: u64, end: u64) {
        self.others = self.others.max(before);
        if end > start {
            match self.leases.back_mut() {
                Some(last) if last.1 == start => last.1 = end,
                _ => self.leases.push_back((start, end)),
            }
        }
    }

    /// The ledger was read and nothing leased: the global TAT was `tat`.
    pub fn saw(&mut self, tat: u64) {
        self.others = self.others.max(tat);
    }

    /// Where a local stretch (no ledger) starts: after everything known.
    pub fn local_start(&self, now: u64) -> u64 {
        self.held_end().max(self.others).max(self.cursor).max(now)
    }

    pub fn view(&self, now: u64) -> View {
        let busy_until = self.cursor.max(self.others);
        let reset_ns = busy_until.saturating_sub(now);
        let used = reset_ns.div_ceil(self.unit_ns());
        View {
            limit: self.limit,
            remaining: self.limit.saturating_sub(used),
            reset_ns,
        }
    }
}

/// The ledger's side of a lease: with the global TAT at `tat`, how much to take at `now` for a
/// request short of `min_ns` that may end at most `tolerance` ahead (`min_ns` 0: a prefetch,
/// which takes time only if it is usable within the tolerance). `None`: nothing worth taking.
/// Else `(start, end)`, and TAT becomes `end`.
pub fn lease_span(
    tat: u64,
    now: u64,
    min_ns: u64,
    size_ns: u64,
    tolerance: u64,
) -> Option<(u64, u64)> {
    let start = tat.max(now);
    if start + min_ns > now + tolerance {
        return None;
    }
    Some((start, start + min_ns.max(size_ns)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MS: u64 = 1_000_000;

    /// A limit of 600 per minute (100 ms a request) with a burst of `burst`, holding `[0, 10 s)`.
    fn held(burst: u64) -> Timeline {
        let mut t = Timeline::new(600, burst);
        t.grant(0, 0, 10_000 * MS);
        t
    }

    #[test]
    fn a_burst_is_admitted_then_the_pace() {
        let mut t = held(3);
        for _ in 0..3 {
            assert!(matches!(t.take(1, 0), Take::Admitted { .. }));
        }
        assert_eq!(t.take(1, 0), Take::TooEarly { retry_ns: 100 * MS });
        assert!(matches!(t.take(1, 100 * MS), Take::Admitted { .. }));
        // idle time is not saved up beyond the burst
        for _ in 0..3 {
            assert!(matches!(t.take(1, 5_000 * MS), Take::Admitted { .. }));
        }
        assert!(matches!(t.take(1, 5_000 * MS), Take::TooEarly { .. }));
    }

    #[test]
    fn nothing_held_is_short_and_others_time_is_too_early() {
        let mut t = Timeline::new(600, 1);
        assert_eq!(
            t.take(1, 0),
            Take::Short {
                shortfall_ns: 100 * MS,
                tolerance: 100 * MS
            }
        );
        // another instance holds the next 2 s
        t.saw(2_000 * MS);
        assert_eq!(
            t.take(1, 0),
            Take::TooEarly {
                retry_ns: 2_000 * MS
            }
        );
    }

    #[test]
    fn a_request_above_the_burst_waits_for_an_idle_limit() {
        let mut t = Timeline::new(60, 1); // 1 s a unit
        t.grant(0, 0, 60_000 * MS);
        assert_eq!(t.take(5, 0), Take::Admitted { end: 5_000 * MS });
        assert_eq!(
            t.take(5, 0),
            Take::TooEarly {
                retry_ns: 5_000 * MS
            }
        );
        assert!(matches!(t.take(5, 5_000 * MS), Take::Admitted { .. }));
    }

    #[test]
    fn untake_gives_back_the_last_take_only() {
        let mut t = held(5);
        let Take::Admitted { end: first } = t.take(1, 0) else {
            panic!()
        };
        let Take::Admitted { end: second } = t.take(1, 0) else {
            panic!()
        };
        t.untake(1, first); // not the last: kept
        assert_eq!(t.take(1, 0), Take::Admitted { end: 300 * MS });
        t.untake(1, 300 * MS);
        assert_eq!(t.take(1, 0), Take::Admitted { end: 300 * MS });
        assert!(second < 300 * MS);
    }

    #[test]
    fn spending_crosses_a_gap_between_stretches() {
        let mut t = Timeline::new(600, 10);
        t.grant(0, 0, 100 * MS);
        t.grant(100 * MS, 300 * MS, 400 * MS); // another instance took [100, 300)
        assert!(matches!(t.take(1, 0), Take::Admitted { end } if end == 100 * MS));
        assert_eq!(t.take(1, 0), Take::Admitted { end: 400 * MS });
        assert!(matches!(t.take(1, 0), Take::Short { .. }));
    }

    #[test]
    fn the_view_counts_what_is_spent_and_what_others_hold() {
        let mut t = held(6);
        assert_eq!(
            t.view(0),
            View {
                limit: 600,
                remaining: 600,
                reset_ns: 0
            }
        );
        for _ in 0..4 {
            t.take(1, 0);
        }
        assert_eq!(
            t.view(0),
            View {
                limit: 600,
                remaining: 596,
                reset_ns: 400 * MS
            }
        );
        t.saw(30_000 * MS);
        assert_eq!(t.view(0).remaining, 300);
    }

    #[test]
    fn a_lease_starts_at_the_global_tat_and_only_when_usable() {
        assert_eq!(lease_span(0, 50, 10, 100, 20), Some((50, 150)));
        assert_eq!(lease_span(70, 50, 10, 100, 20), None);
        assert_eq!(lease_span(60, 50, 10, 100, 20), Some((60, 160)));
        assert_eq!(lease_span(60, 50, 300, 100, 400), Some((60, 360)));
    }

    proptest! {
        /// Instances leasing from one TAT and admitting at random times never admit more than
        /// `W/T + burst` units in any window `W`.
        #[test]
        fn instances_sharing_a_tat_keep_the_bound(
            burst in 1u64..8,
            lease_units in 1u64..20,
            arrivals in proptest::collection::vec((0usize..3, 0u64..30_000), 1..600),
        ) {
            let unit = 100 * MS;
            let mut arrivals = arrivals;
            arrivals.sort_by_key(|a| a.1);
            let mut tat = 0u64;
            let mut inst: Vec<Timeline> = (0..3).map(|_| Timeline::new(600, burst)).collect();
            let mut admitted = Vec::new();
            for (i, at_ms) in arrivals {
                let now = at_ms * MS;
                let t = &mut inst[i];
                let mut taken = t.take(1, now);
                if let Take::Short { shortfall_ns, tolerance: tol } = taken {
                    match lease_span(tat, now, shortfall_ns, lease_units * unit, tol) {
                        Some((s, e)) => { t.grant(tat, s, e); tat = e; }
                        None => t.saw(tat),
                    }
                    taken = t.take(1, now);
                }
                if matches!(taken, Take::Admitted { .. }) {
                    admitted.push(now);
                }
            }
            let window = 10_000 * MS;
            let most = window / unit + burst;
            for (i, &from) in admitted.iter().enumerate() {
                let n = admitted[i..].iter().take_while(|&&a| a < from + window).count() as u64;
                prop_assert!(n <= most, "{n} admitted in a window from {from}, most {most}");
            }
        }
    }
}
