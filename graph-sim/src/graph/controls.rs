//! The controls and the truth of `/_sim/`: every message as held, ids, delivery counts, faults
//! and throttling.

use rand::{Rng as _, SeedableRng as _};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

use super::store::Graph;
use crate::types::{Deliveries, Faults};
use crate::util::{now_ms, ApiError, ApiResult};

impl Graph {
    /// Answers 429 when the `throttle` fault says so.
    pub fn throttled(&self) -> bool {
        let mut store = self.lock();
        let p = store.faults.throttle;
        p > 0.0 && store.api_rng.gen::<f64>() < p
    }

    /// Whether the answer of a call that was just carried out is to be lost (the
    /// `loseAnswers` fault: one of its count is used).
    pub fn lose_answer(&self) -> bool {
        let mut store = self.lock();
        if store.faults.lose_answers == 0 {
            return false;
        }
        store.faults.lose_answers -= 1;
        true
    }

    pub fn truth(&self, chat: &str) -> ApiResult<Vec<Value>> {
        let store = self.lock();
        let c = Self::chat_ref(&store, chat)?;
        Ok(c.messages.iter().map(|m| m.json.clone()).collect())
    }

    pub fn chat_ids(&self) -> Vec<String> {
        self.lock()
            .state
            .chats
            .iter()
            .map(|c| c.id.clone())
            .collect()
    }

    pub fn subscription_ids(&self) -> Vec<String> {
        let now = now_ms();
        self.lock()
            .state
            .subscriptions
            .iter()
            .filter(|s| s.is_live(now))
            .map(|s| s.id.clone())
            .collect()
    }

    pub fn deliveries(&self) -> Deliveries {
        self.courier.deliveries()
    }

    pub fn set_faults(&self, faults: Faults) -> ApiResult<()> {
        for (name, p) in [
            ("drop", faults.drop),
            ("duplicate", faults.duplicate),
            ("reorder", faults.reorder),
            ("throttle", faults.throttle),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(ApiError::bad(format!(
                    "{name} is a probability, 0 to 1; got {p}"
                )));
            }
        }
        if let Some([lo, hi]) = faults.delay_ms {
            if lo > hi || hi > 600_000 {
                return Err(ApiError::bad(
                    "delayMs is [min, max] with min <= max <= 600000",
                ));
            }
        }
        let mut store = self.lock();
        store.seed = faults.seed.unwrap_or(self.config.seed);
        store.seq = 0;
        store.api_rng = ChaCha8Rng::seed_from_u64(store.seed);
        store.api_rng.set_stream(u64::MAX);
        self.courier.fail_next(faults.fail_first);
        store.faults = faults;
        Ok(())
    }

    pub fn faults(&self) -> Faults {
        self.lock().faults.clone()
    }
}
