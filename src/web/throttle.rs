//! Sign-in throttling: a sliding window of failures per (client address,
//! account), in memory. Time is passed in so the window is tested without
//! waiting; handlers pass `Instant::now()`.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Past this many tracked keys, empty windows are swept on the next failure.
const SWEEP_ABOVE: usize = 10_000;

pub struct Throttle {
    max_failures: usize,
    window: Duration,
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl Throttle {
    /// The sign-in policy: 5 failures per minute.
    pub fn sign_in() -> Throttle {
        Throttle::new(5, Duration::from_secs(60))
    }

    pub fn new(max_failures: usize, window: Duration) -> Throttle {
        Throttle {
            max_failures,
            window,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// The key for one client address and account.
    pub fn key(addr: &str, account: &str) -> String {
        format!("{addr}|{}", account.trim().to_lowercase())
    }

    /// Whether another attempt is allowed now.
    pub fn allowed(&self, key: &str, now: Instant) -> bool {
        let mut map = self.lock();
        match map.get_mut(key) {
            None => true,
            Some(q) => {
                prune(q, now, self.window);
                q.len() < self.max_failures
            }
        }
    }

    pub fn record_failure(&self, key: &str, now: Instant) {
        let mut map = self.lock();
        if map.len() > SWEEP_ABOVE {
            let window = self.window;
            map.retain(|_, q| {
                prune(q, now, window);
                !q.is_empty()
            });
        }
        let q = map.entry(key.to_string()).or_default();
        prune(q, now, self.window);
        q.push_back(now);
    }

    /// A successful sign-in forgets earlier failures.
    pub fn clear(&self, key: &str) {
        self.lock().remove(key);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, VecDeque<Instant>>> {
        // A poisoned map only holds counters: keep using it.
        self.failures.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn prune(q: &mut VecDeque<Instant>, now: Instant, window: Duration) {
    while q
        .front()
        .is_some_and(|t| now.saturating_duration_since(*t) >= window)
    {
        q.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_failures_block_until_the_window_slides() {
        let t = Throttle::sign_in();
        let k = Throttle::key("10.0.0.1", "A@x.org");
        let t0 = Instant::now();
        for i in 0..5 {
            assert!(t.allowed(&k, t0 + Duration::from_secs(i)));
            t.record_failure(&k, t0 + Duration::from_secs(i));
        }
        assert!(!t.allowed(&k, t0 + Duration::from_secs(30)));
        // Other accounts and other addresses are not affected.
        assert!(t.allowed(&Throttle::key("10.0.0.1", "b@x.org"), t0));
        assert!(t.allowed(&Throttle::key("10.0.0.2", "a@x.org"), t0));
        // The first failure leaves the window at t0+60s.
        assert!(t.allowed(&k, t0 + Duration::from_secs(60)));
    }

    #[test]
    fn key_ignores_case_and_success_clears() {
        let t = Throttle::new(1, Duration::from_secs(60));
        let now = Instant::now();
        t.record_failure(&Throttle::key("a", " Admin "), now);
        assert!(!t.allowed(&Throttle::key("a", "admin"), now));
        t.clear(&Throttle::key("a", "admin"));
        assert!(t.allowed(&Throttle::key("a", "admin"), now));
    }
}
