//! Upstream pages kept for a while: the directory (services, roles, practitioners,
//! organizations, locations, schedules) changes rarely and may be cached, as the IG allows;
//! free slots (Slot searches and `$findHSP`, which names free slots) only for seconds if at all.
//! Both are off by default, so every answer is as fresh as the upstreams'.

use crate::merge::SourcePage;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Entries kept at most; a full cache drops what expired, then everything.
const MAX_ENTRIES: usize = 10_000;

/// The longest free slots may be cached: the IG discourages keeping them beyond a short time.
pub const MAX_SLOT_TTL: Duration = Duration::from_secs(60);

pub struct PageCache {
    entries: Mutex<HashMap<String, (Instant, SourcePage)>>,
}

impl PageCache {
    pub fn new() -> Self {
        PageCache { entries: Mutex::new(HashMap::new()) }
    }

    /// The page under `key` if it was stored less than `ttl` ago.
    pub fn get(&self, key: &str, ttl: Duration) -> Option<SourcePage> {
        if ttl.is_zero() {
            return None;
        }
        let entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        entries.get(key).filter(|(stored, _)| stored.elapsed() < ttl).map(|(_, page)| page.clone())
    }

    pub fn put(&self, key: String, page: &SourcePage, ttl: Duration) {
        if ttl.is_zero() {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, (stored, _)| stored.elapsed() < ttl);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(key, (Instant::now(), page.clone()));
    }
}

impl Default for PageCache {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_kept_for_their_ttl_only() {
        let cache = PageCache::new();
        let page = SourcePage { total: Some(3), ..SourcePage::default() };
        cache.put("k".into(), &page, Duration::ZERO);
        assert!(cache.get("k", Duration::from_secs(60)).is_none(), "a zero TTL stores nothing");
        cache.put("k".into(), &page, Duration::from_secs(60));
        assert_eq!(cache.get("k", Duration::from_secs(60)).unwrap().total, Some(3));
        assert!(cache.get("k", Duration::ZERO).is_none());
        assert!(cache.get("other", Duration::from_secs(60)).is_none());
    }
}
