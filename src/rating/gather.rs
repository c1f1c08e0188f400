//! Gathers what a rating is computed from — the institutions of a region and
//! sector, the latest approved audit of each of their sites in the year (scored
//! against its own pinned checklists, reviewers' verdicts applied) and the
//! imported values — and computes it with [`super::compute`]. The result names
//! every version and id it used, so it can be recomputed and explained.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{Imported, InstitutionInput, InstitutionScore, Scheme, SiteResult, Summary, compute};
use crate::catalogs::Catalogs;
use crate::checklist::methodology::{MethodologyKind, Tri};
use crate::checklist::{AnswerSet, Catalog, ENGINE_VERSION, Overrides, evaluate};
use crate::db::entity::audit;
use crate::db::{DbError, rating as repo, review};

/// Which rating to compute.
#[derive(Debug, Clone)]
pub struct RatingQuery {
    pub region: String,
    pub sector: String,
    pub year: i32,
    /// A scoring methodology id; the catalog's default when `None`.
    pub methodology: Option<String>,
}

/// The methodology a rating was computed with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MethodologyUsed {
    pub id: String,
    pub version: String,
    pub sha256: String,
    /// `nok` (0..100, Sn) or `points`.
    pub kind: String,
    /// The most points (points schemes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maximum: Option<f64>,
    /// How the sites of an institution combine.
    pub sites: String,
}

/// A computed rating.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RatingReport {
    pub region: String,
    pub region_name: String,
    pub sector: String,
    pub year: i32,
    pub methodology: MethodologyUsed,
    pub engine_version: String,
    pub computed_at: DateTime<Utc>,
    /// Checklist release → the checklists and versions in it (`entrance@1.0.0`).
    pub releases: BTreeMap<String, Vec<String>>,
    /// SHA-256 over every input: the audits (id and version) and imported values.
    pub inputs_digest: String,
    pub institutions: Vec<InstitutionScore>,
    pub summary: Summary,
}

impl RatingReport {
    /// Whether scores are points rather than 0..100.
    #[must_use]
    pub fn in_points(&self) -> bool {
        self.methodology.kind == "points"
    }

    /// A title for exports.
    #[must_use]
    pub fn title(&self) -> String {
        format!(
            "{} ({}), {}, {}: {} {}",
            self.region_name,
            self.region,
            self.sector,
            self.year,
            self.methodology.id,
            self.methodology.version
        )
    }
}

/// Why a rating cannot be computed.
#[derive(Debug, thiserror::Error)]
pub enum GatherError {
    #[error("no methodology `{0}` in the current checklists")]
    UnknownMethodology(String),
    #[error("`{0}` is a passport mapping, not a scoring methodology")]
    NotScoring(String),
    #[error("`{0}` has no `rating:` weights of the five criteria")]
    NoRatingWeights(String),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("checklist release: {0}")]
    Catalog(#[source] crate::catalogs::CatalogError),
}

/// Computes the rating `q` asks for from what is stored now.
///
/// # Errors
/// [`GatherError`]: a methodology that cannot rate, or a storage failure.
pub async fn gather(
    db: &sea_orm::DatabaseConnection,
    catalogs: &Catalogs,
    q: &RatingQuery,
) -> Result<RatingReport, GatherError> {
    let current = Arc::clone(catalogs.current());
    let m = match &q.methodology {
        Some(id) => current
            .methodology(id)
            .ok_or_else(|| GatherError::UnknownMethodology(id.clone()))?,
        None => current.default_methodology(),
    };
    let (scheme, kind, maximum) = match m.kind() {
        MethodologyKind::Nok(nok) => (
            Scheme::Nok {
                nok,
                rating: m
                    .rating()
                    .ok_or_else(|| GatherError::NoRatingWeights(m.id().to_owned()))?,
                sites: m.sites(),
            },
            "nok",
            None,
        ),
        MethodologyKind::Points(points) => (
            Scheme::Points {
                points,
                sites: m.sites(),
            },
            "points",
            Some(points.maximum()),
        ),
        MethodologyKind::Passport(_) => return Err(GatherError::NotScoring(m.id().to_owned())),
    };

    let ids = scheme.condition_ids();
    let institutions = repo::institutions_in(db, &q.region, &q.sector).await?;
    let mut audits: HashMap<Uuid, Vec<audit::Model>> = HashMap::new();
    for a in repo::latest_approved(db, &q.region, &q.sector, q.year)
        .await?
        .into_values()
    {
        audits.entry(a.institution_id).or_default().push(a);
    }
    // Every verdict of every audit in one pass, not one query per audit.
    let audit_ids: Vec<Uuid> = audits.values().flatten().map(|a| a.id).collect();
    let mut overrides = review::overrides_of_audits(db, &audit_ids).await?;
    let mut imports = repo::inputs_of_year(db, q.year).await?;
    let mut releases: HashMap<String, Arc<Catalog>> = HashMap::new();
    let mut digest = Sha256::new();
    let mut inputs = Vec::with_capacity(institutions.len());
    for institution in institutions {
        let mut sites = Vec::new();
        let mut mine = audits.remove(&institution.id).unwrap_or_default();
        mine.sort_by_key(|a| a.site_id);
        for a in mine {
            let catalog = match releases.get(&a.release_hash) {
                Some(c) => Arc::clone(c),
                None => {
                    let c = catalogs
                        .for_release(&a.release_hash)
                        .await
                        .map_err(GatherError::Catalog)?;
                    releases.insert(a.release_hash.clone(), Arc::clone(&c));
                    c
                }
            };
            digest.update(format!("audit:{}:{};", a.id, a.version));
            let verdicts = overrides.remove(&a.id).unwrap_or_default();
            sites.push(site_result(&catalog, m.id(), &ids, &verdicts, &a));
        }
        let stored = imports.remove(&institution.id);
        let imported: Option<Imported> = stored
            .as_ref()
            .and_then(|s| serde_json::from_str(&s.values).ok());
        if let Some(s) = &stored {
            digest.update(format!(
                "import:{}:{}:{};",
                institution.id, s.import_ids, s.values
            ));
        }
        inputs.push(InstitutionInput {
            id: institution.id,
            name: institution.name,
            sites,
            imported,
            imports: stored
                .and_then(|s| serde_json::from_str(&s.import_ids).ok())
                .unwrap_or_default(),
        });
    }
    let (scores, summary) = compute(scheme, inputs);
    let region_name = crate::db::directory::list_regions(db)
        .await?
        .into_iter()
        .find(|r| r.code == q.region)
        .map(|r| r.name)
        .unwrap_or_default();
    Ok(RatingReport {
        region: q.region.clone(),
        region_name,
        sector: q.sector.clone(),
        year: q.year,
        methodology: MethodologyUsed {
            id: m.id().to_owned(),
            version: m.version().to_owned(),
            sha256: m.sha256().to_owned(),
            kind: kind.to_owned(),
            maximum,
            sites: serde_json::to_value(m.sites())
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
        },
        engine_version: ENGINE_VERSION.to_owned(),
        computed_at: crate::db::now(),
        releases: releases
            .into_iter()
            .map(|(hash, c)| {
                let versions = c
                    .checklists
                    .iter()
                    .map(|l| format!("{}@{}", l.id, l.version))
                    .collect();
                (hash, versions)
            })
            .collect(),
        inputs_digest: hex::encode(digest.finalize()),
        institutions: scores,
        summary,
    })
}

/// One approved audit scored with methodology `methodology` as its own release
/// defines it, reviewers' overrides applied.
fn site_result(
    catalog: &Catalog,
    methodology: &str,
    ids: &[String],
    overrides: &Overrides,
    a: &audit::Model,
) -> SiteResult {
    let answers = AnswerSet {
        methodology: Some(methodology.to_owned()),
        answers: serde_json::from_str(&a.answers).unwrap_or_default(),
        survey: None,
    };
    let mut statuses = BTreeMap::new();
    // A release without this methodology leaves every condition unknown.
    if let Ok(e) = evaluate(catalog, Some(methodology), &answers, overrides) {
        if let Some(nok) = &e.nok {
            for c in nok.conditions_3_1.iter().chain(&nok.conditions_3_2) {
                statuses.insert(c.id.to_owned(), c.status);
            }
        }
        if let Some(points) = &e.points {
            for c in &points.entries {
                statuses.insert(c.id.to_owned(), c.status);
            }
        }
    }
    SiteResult {
        site_id: a.site_id,
        audit_id: a.id,
        audit_version: a.version,
        release: a.release_hash.clone(),
        methodology_version: catalog
            .methodology(methodology)
            .map(|m| m.version().to_owned())
            .unwrap_or_default(),
        statuses: ids
            .iter()
            .map(|id| statuses.get(id).copied().unwrap_or(Tri::Unknown))
            .collect(),
    }
}
