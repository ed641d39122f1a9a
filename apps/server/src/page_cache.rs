//! Rendered listing pages, kept while the media store's change token stays put.
//!
//! A 50-row page costs about 1.7 µs of CPU per row to step, read, check and render, far
//! more than the HTTP stack around it; the same page asked again between two commits is
//! the same bytes. Whatever commits to the database (this process, another server on the
//! same file, `filegate-admin`) moves the token, and a token that moved empties the
//! cache before anything in it is served. Entries are keyed by the store's whole question
//! ([`PageRequest`]: organization, status, limit, cursor), asked only after the caller
//! passed every check, so a page never reaches a caller who would not be given the same
//! rows by the database.

use bytes::Bytes;
use filegate_core::media::PageRequest;
use lru::LruCache;
use std::sync::Mutex;

/// At most this many bytes of pages are kept (a 50-row page is about 20 KiB).
pub const BUDGET: usize = 8 * 1024 * 1024;

/// Rendered pages by request, all read under one change token.
#[derive(Debug)]
pub struct PageCache {
    inner: Mutex<Inner>,
    budget: usize,
}

#[derive(Debug)]
struct Inner {
    /// The token every kept page was read under.
    token: u64,
    pages: LruCache<PageRequest, Bytes>,
    bytes: usize,
}

impl Default for PageCache {
    fn default() -> Self {
        Self::new(BUDGET)
    }
}

impl PageCache {
    /// A cache holding at most `budget` bytes of pages; a page over an eighth of it is
    /// never kept.
    #[must_use]
    pub fn new(budget: usize) -> Self {
        Self {
            inner: Mutex::new(Inner {
                token: 0,
                pages: LruCache::unbounded(),
                bytes: 0,
            }),
            budget,
        }
    }

    /// The page kept for `request`, if it was read under `token`.
    pub fn get(&self, request: &PageRequest, token: u64) -> Option<Bytes> {
        let mut inner = self.inner.lock().ok()?;
        if inner.token != token {
            return None;
        }
        inner.pages.get(request).cloned()
    }

    /// Keeps `page`, read for `request` after the token read `token`. Another token
    /// than the kept pages' empties the cache first, even when `page` itself is too large
    /// to keep (over an eighth of the budget).
    pub fn put(&self, request: PageRequest, token: u64, page: Bytes) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        if inner.token != token {
            inner.pages.clear();
            inner.bytes = 0;
            inner.token = token;
        }
        if page.len() > self.budget / 8 {
            return;
        }
        inner.bytes += page.len();
        if let Some(old) = inner.pages.put(request, page) {
            inner.bytes -= old.len();
        }
        while inner.bytes > self.budget {
            match inner.pages.pop_lru() {
                Some((_, old)) => inner.bytes -= old.len(),
                None => break,
            }
        }
    }

    /// Bytes of pages kept now.
    #[must_use]
    pub fn bytes(&self) -> usize {
        self.inner.lock().map_or(0, |i| i.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use filegate_core::ports::MediaStatus;

    fn request(org: &str, limit: u32) -> PageRequest {
        PageRequest {
            organization_id: org.to_owned(),
            status: Some(MediaStatus::Confirmed),
            limit,
            after: None,
        }
    }

    #[test]
    fn a_page_is_served_only_under_the_token_it_was_read_under() {
        let cache = PageCache::default();
        let page = Bytes::from_static(b"{\"items\":[]}");
        cache.put(request("a", 50), 7, page.clone());
        assert_eq!(cache.get(&request("a", 50), 7), Some(page));
        assert_eq!(cache.get(&request("a", 50), 8), None);
        assert_eq!(
            cache.get(&request("b", 50), 7),
            None,
            "another organization"
        );
        assert_eq!(cache.get(&request("a", 49), 7), None, "another limit");
        let mut pending = request("a", 50);
        pending.status = Some(MediaStatus::Pending);
        assert_eq!(cache.get(&pending, 7), None, "another status");
    }

    #[test]
    fn a_page_of_another_token_empties_the_cache() {
        let cache = PageCache::default();
        cache.put(request("a", 50), 7, Bytes::from_static(b"old a"));
        cache.put(request("b", 50), 7, Bytes::from_static(b"old b"));
        cache.put(request("a", 50), 8, Bytes::from_static(b"new a"));
        assert_eq!(cache.bytes(), 5);
        assert_eq!(cache.get(&request("b", 50), 8), None);
        assert_eq!(
            cache.get(&request("a", 50), 8),
            Some(Bytes::from_static(b"new a"))
        );
        // A reader that read the token before the last commit puts an older page: it
        // replaces the newer ones, and is served only while the token reads its own.
        cache.put(request("a", 50), 7, Bytes::from_static(b"late"));
        assert_eq!(cache.get(&request("a", 50), 8), None);
    }

    #[test]
    fn the_budget_holds_the_most_recently_used_pages() {
        let cache = PageCache::new(800);
        for limit in 1..=10 {
            cache.put(request("a", limit), 1, Bytes::from(vec![b'x'; 100]));
        }
        assert_eq!(cache.bytes(), 800);
        assert_eq!(cache.get(&request("a", 1), 1), None);
        assert_eq!(cache.get(&request("a", 2), 1), None);
        assert!(cache.get(&request("a", 3), 1).is_some());
        // Used just now, so kept when the next page needs room.
        cache.put(request("a", 11), 1, Bytes::from(vec![b'x'; 100]));
        assert!(cache.get(&request("a", 3), 1).is_some());
        assert_eq!(cache.get(&request("a", 4), 1), None);
        // A page over an eighth of the budget is not kept at all.
        cache.put(request("a", 12), 1, Bytes::from(vec![b'x'; 101]));
        assert_eq!(cache.get(&request("a", 12), 1), None);
        assert_eq!(cache.bytes(), 800);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Put {
            org: u8,
            limit: u32,
            token: u64,
            len: usize,
        },
        Get {
            org: u8,
            limit: u32,
            token: u64,
        },
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            (0u8..3, 1u32..4, 0u64..3, 0usize..150).prop_map(|(org, limit, token, len)| Op::Put {
                org,
                limit,
                token,
                len
            }),
            (0u8..3, 1u32..4, 0u64..3).prop_map(|(org, limit, token)| Op::Get {
                org,
                limit,
                token
            }),
        ]
    }

    proptest::proptest! {
        // Whatever the order of puts and gets: a page is served only for the request and
        // under the token it was put with, only while no put under another token came
        // since, and the kept bytes stay within the budget.
        #[test]
        fn a_kept_page_is_only_ever_its_own_requests_under_its_own_token(
            ops in proptest::collection::vec(op(), 1..200)
        ) {
            let cache = PageCache::new(800);
            let mut current: Option<u64> = None;
            let mut model = std::collections::HashMap::<PageRequest, Bytes>::new();
            for (n, op) in ops.into_iter().enumerate() {
                match op {
                    Op::Put { org, limit, token, len } => {
                        // Each page's bytes name it, so a wrong page cannot pass for another.
                        let page = Bytes::from(format!("{n}:{org}:{limit}:{token}:{}", "x".repeat(len)));
                        if current != Some(token) {
                            model.clear();
                            current = Some(token);
                        }
                        let request = request(&org.to_string(), limit);
                        if page.len() <= 100 {
                            model.insert(request.clone(), page.clone());
                        }
                        cache.put(request, token, page);
                    }
                    Op::Get { org, limit, token } => {
                        let request = request(&org.to_string(), limit);
                        if let Some(page) = cache.get(&request, token) {
                            proptest::prop_assert_eq!(Some(token), current);
                            proptest::prop_assert_eq!(Some(&page), model.get(&request));
                        }
                    }
                }
                proptest::prop_assert!(cache.bytes() <= 800);
            }
        }
    }

    #[test]
    fn no_budget_keeps_nothing() {
        let cache = PageCache::new(0);
        cache.put(request("a", 1), 1, Bytes::from_static(b"x"));
        assert_eq!(cache.get(&request("a", 1), 1), None);
    }
}
