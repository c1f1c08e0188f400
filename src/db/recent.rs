//! The audits this process wrote last, kept in memory so that a phone's
//! next batch of answers need not read its audit back first.
//!
//! A copy only ever claims "the audit was like this at version V". The
//! answer write that starts from it is conditional on the stored audit
//! still being at version V with the same status, revision and claim, and
//! nothing else about an audit changes without a new version (its answers
//! and photos do not, a claim is held only while the audit is submitted,
//! and where it is, its site and its owner are fixed). A copy gone stale
//! (another replica, the command line, a review step or a photo wrote the
//! audit since) can therefore make a write fail but never let a wrong one
//! through; callers then start again from the stored audit. On PostgreSQL
//! the write also checks the time of the last write, so that even a
//! version number made twice (a failover that lost commits, a restore)
//! cannot pass for the copy's.
//!
//! Bounded: two generations of at most half the capacity each. A copy goes
//! into the young generation; when that is full, the old generation is
//! dropped and the young one becomes old. An audit written again moves to
//! the young generation, so the audits phones are working on stay.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use uuid::Uuid;

use super::entity::{audit, photo};

/// An audit as this process last wrote it.
#[derive(Debug)]
pub struct Recent {
    pub audit: audit::Model,
    /// Its photos at that version, when they were at hand.
    pub photos: Option<Arc<[photo::Model]>>,
}

/// Recently written audits, by id (see the module documentation).
#[derive(Debug)]
pub struct RecentAudits {
    /// Most copies per generation; 0 keeps nothing.
    half: usize,
    generations: Mutex<Generations>,
}

#[derive(Debug, Default)]
struct Generations {
    young: HashMap<Uuid, Arc<Recent>>,
    old: HashMap<Uuid, Arc<Recent>>,
}

impl Generations {
    fn find(&self, id: Uuid) -> Option<&Arc<Recent>> {
        self.young.get(&id).or_else(|| self.old.get(&id))
    }
}

impl RecentAudits {
    /// Room for about `capacity` audits; 0 keeps none.
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        Self {
            half: capacity.div_ceil(2),
            generations: Mutex::new(Generations::default()),
        }
    }

    /// The copy of audit `id`, if it is at `version`.
    #[must_use]
    pub fn get(&self, id: Uuid, version: i64) -> Option<Arc<Recent>> {
        if self.half == 0 {
            return None;
        }
        let generations = self.lock();
        generations
            .find(id)
            .filter(|recent| recent.audit.version == version)
            .cloned()
    }

    /// Keeps `audit` (and its photos, if at hand) as just written. A copy
    /// of a later version is not replaced: two writes of the same audit can
    /// finish in either order.
    pub fn keep(&self, audit: audit::Model, photos: Option<Arc<[photo::Model]>>) {
        if self.half == 0 {
            return;
        }
        let id = audit.id;
        let recent = Arc::new(Recent { audit, photos });
        let mut generations = self.lock();
        if generations
            .find(id)
            .is_some_and(|kept| kept.audit.version > recent.audit.version)
        {
            return;
        }
        generations.old.remove(&id);
        let mut dropped = None;
        if generations.young.len() >= self.half && !generations.young.contains_key(&id) {
            let young = std::mem::take(&mut generations.young);
            dropped = Some(std::mem::replace(&mut generations.old, young));
        }
        generations.young.insert(id, recent);
        drop(generations);
        // The old generation is freed after the lock is released.
        drop(dropped);
    }

    /// Drops the copy of audit `id` if it is still the one at `version`
    /// (a later one, kept meanwhile by another request, stays).
    pub fn forget(&self, id: Uuid, version: i64) {
        let generations = &mut *self.lock();
        for generation in [&mut generations.young, &mut generations.old] {
            if generation
                .get(&id)
                .is_some_and(|kept| kept.audit.version == version)
            {
                generation.remove(&id);
            }
        }
    }

    /// Copies held now.
    #[cfg(test)]
    fn len(&self) -> usize {
        let generations = self.lock();
        generations.young.len() + generations.old.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Generations> {
        // The maps are consistent after every statement: a panic elsewhere
        // while the lock was held cannot leave half a change behind.
        self.generations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn audit_at(id: Uuid, version: i64) -> audit::Model {
        let at = Utc::now();
        audit::Model {
            id,
            site_id: Uuid::nil(),
            institution_id: Uuid::nil(),
            region_code: "77".to_owned(),
            sector: "social".to_owned(),
            created_by: Uuid::nil(),
            organisation_id: None,
            status: "draft".to_owned(),
            methodology_id: "m".to_owned(),
            methodology_version: "1".to_owned(),
            release_hash: "h".to_owned(),
            answers: "{}".to_owned(),
            version,
            create_fingerprint: String::new(),
            started_at: None,
            submitted_at: None,
            revision: 0,
            claimed_by: None,
            claimed_at: None,
            created_at: at,
            updated_at: at,
        }
    }

    #[test]
    fn a_copy_answers_only_for_its_own_version() {
        let recent = RecentAudits::new(8);
        let id = Uuid::new_v4();
        recent.keep(audit_at(id, 3), None);
        assert!(recent.get(id, 3).is_some());
        assert!(
            recent.get(id, 2).is_none(),
            "an older If-Match is not this copy"
        );
        assert!(
            recent.get(id, 4).is_none(),
            "a newer version was written elsewhere"
        );
        assert!(recent.get(Uuid::new_v4(), 3).is_none());
    }

    #[test]
    fn a_later_version_is_not_replaced_by_an_earlier_one() {
        let recent = RecentAudits::new(8);
        let id = Uuid::new_v4();
        recent.keep(audit_at(id, 5), None);
        recent.keep(audit_at(id, 4), None);
        assert!(recent.get(id, 5).is_some());
        assert!(recent.get(id, 4).is_none());
        recent.keep(audit_at(id, 6), None);
        assert!(recent.get(id, 6).is_some());
        assert_eq!(recent.len(), 1, "one copy per audit");
    }

    #[test]
    fn capacity_bounds_the_copies_and_keeps_the_audits_written_again() {
        let recent = RecentAudits::new(4);
        let busy = Uuid::new_v4();
        let mut version = 1;
        recent.keep(audit_at(busy, version), None);
        let others: Vec<Uuid> = (0..20).map(|_| Uuid::new_v4()).collect();
        for other in &others {
            recent.keep(audit_at(*other, 1), None);
            version += 1;
            recent.keep(audit_at(busy, version), None);
            assert!(
                recent.len() <= 4,
                "{} copies for a capacity of 4",
                recent.len()
            );
        }
        assert!(
            recent.get(busy, version).is_some(),
            "the audit written all along stays"
        );
        assert!(recent.get(others[0], 1).is_none(), "the oldest copies go");
        assert!(recent.get(others[19], 1).is_some(), "the newest copy stays");
    }

    #[test]
    fn forget_drops_only_the_copy_it_names_and_zero_capacity_keeps_nothing() {
        let recent = RecentAudits::new(8);
        let id = Uuid::new_v4();
        recent.keep(audit_at(id, 2), None);
        recent.forget(id, 1);
        assert!(recent.get(id, 2).is_some(), "a later copy stays");
        recent.forget(id, 2);
        assert!(recent.get(id, 2).is_none());
        assert_eq!(recent.len(), 0);

        let none = RecentAudits::new(0);
        none.keep(audit_at(id, 1), None);
        assert!(none.get(id, 1).is_none());
        assert_eq!(none.len(), 0);
    }
}
