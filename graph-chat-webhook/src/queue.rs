//! Which stored batch goes to which worker, and when: the scheduling both inboxes share. Only
//! ids live here; the records stay in the storage.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

#[derive(Default)]
struct State {
    /// Stored, not handed out, due now: oldest first.
    ready: BTreeSet<u64>,
    /// Given back, due later: (when, id).
    delayed: BTreeSet<(Instant, u64)>,
    /// Handed out, not yet done or given back.
    in_hand: BTreeSet<u64>,
    /// How many times each id was given back.
    attempts: HashMap<u64, u32>,
    /// Bytes of each id, for the inbox's accounting.
    sizes: BTreeMap<u64, u64>,
    bytes: u64,
    closed: bool,
}

/// The ids of stored batches and their state.
#[derive(Default)]
pub(crate) struct Queue {
    state: Mutex<State>,
    wake: Condvar,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A batch was committed (or found at start-up).
    pub(crate) fn stored(&self, id: u64, bytes: u64) {
        let mut s = self.lock();
        s.ready.insert(id);
        s.sizes.insert(id, bytes);
        s.bytes += bytes;
        drop(s);
        self.wake.notify_one();
    }

    /// The oldest id due, with its attempts, marked in hand; waits up to `wait`.
    pub(crate) fn take(&self, wait: Duration) -> Option<(u64, u32)> {
        let far = Duration::from_secs(365 * 24 * 3600);
        let deadline = Instant::now() + wait.min(far);
        let mut s = self.lock();
        loop {
            if s.closed {
                return None;
            }
            let now = Instant::now();
            while let Some(&(due, id)) = s.delayed.first() {
                if due > now {
                    break;
                }
                s.delayed.pop_first();
                s.ready.insert(id);
            }
            if let Some(id) = s.ready.pop_first() {
                s.in_hand.insert(id);
                let attempts = s.attempts.get(&id).copied().unwrap_or(0);
                return Some((id, attempts));
            }
            if now >= deadline {
                return None;
            }
            let until = s
                .delayed
                .first()
                .map_or(deadline, |&(due, _)| due.min(deadline));
            s = self
                .wake
                .wait_timeout(s, until.saturating_duration_since(now))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// A batch in hand is given back, due again after `retry_in`.
    pub(crate) fn release(&self, id: u64, retry_in: Duration) {
        let mut s = self.lock();
        if s.in_hand.remove(&id) {
            *s.attempts.entry(id).or_default() += 1;
            let retry_in = retry_in.min(Duration::from_secs(365 * 24 * 3600));
            s.delayed.insert((Instant::now() + retry_in, id));
        }
        drop(s);
        self.wake.notify_one();
    }

    /// A batch is gone for good (done): its bytes no longer count.
    pub(crate) fn forget(&self, id: u64) {
        let mut s = self.lock();
        s.in_hand.remove(&id);
        s.ready.remove(&id);
        s.delayed.retain(|&(_, delayed)| delayed != id);
        s.attempts.remove(&id);
        if let Some(bytes) = s.sizes.remove(&id) {
            s.bytes -= bytes;
        }
    }

    /// Batches and bytes held.
    pub(crate) fn held(&self) -> (usize, u64) {
        let s = self.lock();
        (s.sizes.len(), s.bytes)
    }

    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.wake.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_given_back_batch_comes_again_after_its_delay_whatever_else_arrives() {
        let q = Queue::default();
        q.stored(1, 10);
        assert_eq!(q.take(Duration::ZERO), Some((1, 0)));
        q.release(1, Duration::from_millis(50));
        // Newer batches keep arriving and are taken meanwhile.
        for id in 2..20 {
            q.stored(id, 10);
            assert_eq!(q.take(Duration::ZERO), Some((id, 0)));
        }
        // Once due, the old batch comes back first, with its attempt counted.
        q.stored(20, 10);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(q.take(Duration::ZERO), Some((1, 1)));
        assert_eq!(q.take(Duration::ZERO), Some((20, 0)));
        assert_eq!(q.held(), (20, 200));
        q.forget(1);
        assert_eq!(q.held(), (19, 190));
    }

    #[test]
    fn a_batch_done_while_waiting_to_be_retried_does_not_come_back() {
        let q = Queue::default();
        q.stored(1, 10);
        assert_eq!(q.take(Duration::ZERO), Some((1, 0)));
        q.release(1, Duration::from_millis(10));
        q.forget(1);
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(q.take(Duration::ZERO), None);
        assert_eq!(q.held(), (0, 0));
    }

    #[test]
    fn a_batch_in_hand_is_not_handed_out_twice_and_close_wakes_waiters() {
        let q = std::sync::Arc::new(Queue::default());
        q.stored(7, 1);
        assert_eq!(q.take(Duration::ZERO), Some((7, 0)));
        assert_eq!(q.take(Duration::from_millis(10)), None);
        let waiter = {
            let q = std::sync::Arc::clone(&q);
            std::thread::spawn(move || q.take(Duration::from_secs(30)))
        };
        std::thread::sleep(Duration::from_millis(20));
        q.close();
        assert_eq!(waiter.join().unwrap(), None);
    }
}
