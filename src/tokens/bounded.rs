//! Bounds on what a sender can make the validator hold: every map here is capped, and names a
//! sender chose are cut short before they are kept or repeated in an error.

use std::collections::HashMap;

/// Removes the entries with the least `order` until at most `keep` remain: how every bounded map
/// here (verified tokens, held keys, unknown kids) makes room.
pub(super) fn evict_least<K, V, O>(map: &mut HashMap<K, V>, keep: usize, order: impl Fn(&V) -> O)
where
    K: Clone + Eq + std::hash::Hash,
    O: Ord,
{
    while map.len() > keep {
        let least = map
            .iter()
            .min_by_key(|(_, v)| order(v))
            .map(|(k, _)| k.clone());
        let Some(least) = least else { break };
        map.remove(&least);
    }
}

/// At most the first 64 characters of `s`.
pub(super) fn truncated(s: &str) -> String {
    s.chars().take(64).collect()
}
