//! Repository functions for the rating: imports (all rows in one transaction),
//! the values per institution and year, the approved audits a year's rating is
//! computed from, and prepared and published ratings.

use std::collections::HashMap;

use chrono::{DateTime, TimeZone, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::audit_log::{self, Actor, Entry};
use super::entity::{audit, institution, rating_import, rating_input, rating_publication};
use super::{DbError, now};
use crate::audit::AuditStatus;
use crate::rating::Imported;

/// The import of a file with this digest, if it was imported before.
///
/// # Errors
/// Database failure.
pub async fn import_by_digest(
    db: &DatabaseConnection,
    sha256: &str,
) -> Result<Option<rating_import::Model>, DbError> {
    Ok(rating_import::Entity::find()
        .filter(rating_import::Column::Sha256.eq(sha256))
        .one(db)
        .await?)
}

/// A validated import.
#[derive(Debug, Clone)]
pub struct NewImport {
    pub sha256: String,
    pub format: &'static str,
    pub encoding: &'static str,
    /// `(institution, year, values)`.
    pub rows: Vec<(Uuid, i32, Imported)>,
}

/// Stores an import and its rows in one transaction: all of it or nothing. A
/// later import of the same institution and year replaces the values it gives
/// and keeps those it leaves out (K1 from one source, survey counts from
/// another).
///
/// # Errors
/// [`DbError::Conflict`] when the same file was imported concurrently;
/// [`DbError::MissingReference`] when an institution vanished meanwhile.
pub async fn store_import(
    db: &DatabaseConnection,
    new: NewImport,
    actor: &Actor,
) -> Result<rating_import::Model, DbError> {
    let at = now();
    let write = super::begin_write(db).await?;
    let txn = &*write;
    let import = rating_import::Model {
        id: Uuid::now_v7(),
        sha256: new.sha256,
        format: new.format.to_owned(),
        encoding: new.encoding.to_owned(),
        rows: i32::try_from(new.rows.len()).unwrap_or(i32::MAX),
        imported_by: actor.user_id.unwrap_or_default(),
        created_at: at,
    };
    rating_import::Entity::insert(rating_import::ActiveModel::from(import.clone()))
        .exec_without_returning(txn)
        .await?;
    let years: std::collections::BTreeSet<i32> = new.rows.iter().map(|r| r.1).collect();
    let institutions = new.rows.len();
    // Batches keep each statement within the databases' parameter limits.
    for chunk in new.rows.chunks(500) {
        let existing: HashMap<(Uuid, i32), rating_input::Model> = rating_input::Entity::find()
            .filter(rating_input::Column::InstitutionId.is_in(chunk.iter().map(|r| r.0)))
            .all(txn)
            .await?
            .into_iter()
            .map(|r| ((r.institution_id, r.year), r))
            .collect();
        let mut models = Vec::with_capacity(chunk.len());
        for (institution, year, values) in chunk {
            let (values, mut imports) = match existing.get(&(*institution, *year)) {
                Some(old) => (
                    serde_json::from_str::<Imported>(&old.values)
                        .unwrap_or_default()
                        .merged(values.clone()),
                    serde_json::from_str::<Vec<Uuid>>(&old.import_ids).unwrap_or_default(),
                ),
                None => (values.clone(), Vec::new()),
            };
            imports.push(import.id);
            models.push(rating_input::ActiveModel {
                institution_id: Set(*institution),
                year: Set(*year),
                values: Set(serde_json::to_string(&values).unwrap_or_else(|_| "{}".to_owned())),
                import_ids: Set(serde_json::to_string(&imports).unwrap_or_else(|_| "[]".to_owned())),
                updated_at: Set(at),
            });
        }
        rating_input::Entity::insert_many(models)
            .on_conflict(
                OnConflict::columns([
                    rating_input::Column::InstitutionId,
                    rating_input::Column::Year,
                ])
                .update_columns([
                    rating_input::Column::Values,
                    rating_input::Column::ImportIds,
                    rating_input::Column::UpdatedAt,
                ])
                .to_owned(),
            )
            .exec_without_returning(txn)
            .await?;
    }
    audit_log::append(
        txn,
        actor,
        Entry::new("rating.inputs_imported", "rating_import", import.id).detail(json!({
            "sha256": import.sha256,
            "format": import.format,
            "encoding": import.encoding,
            "rows": institutions,
            "years": years,
        })),
    )
    .await?;
    write.commit().await?;
    Ok(import)
}

/// Institutions of a region and sector.
///
/// # Errors
/// Database failure.
pub async fn institutions_in(
    db: &DatabaseConnection,
    region: &str,
    sector: &str,
) -> Result<Vec<institution::Model>, DbError> {
    Ok(institution::Entity::find()
        .filter(institution::Column::RegionCode.eq(region))
        .filter(institution::Column::Sector.eq(sector))
        .order_by_asc(institution::Column::Id)
        .all(db)
        .await?)
}

/// Institutions by id or tax id, for resolving an import's rows.
///
/// # Errors
/// Database failure.
pub async fn institutions_named(
    db: &DatabaseConnection,
    ids: &[Uuid],
    tax_ids: &[String],
) -> Result<Vec<institution::Model>, DbError> {
    let mut found = Vec::new();
    for chunk in ids.chunks(500) {
        found.extend(
            institution::Entity::find()
                .filter(institution::Column::Id.is_in(chunk.iter().copied()))
                .all(db)
                .await?,
        );
    }
    for chunk in tax_ids.chunks(500) {
        found.extend(
            institution::Entity::find()
                .filter(institution::Column::TaxId.is_in(chunk.iter().cloned()))
                .all(db)
                .await?,
        );
    }
    Ok(found)
}

/// Imported values of a year, by institution.
///
/// # Errors
/// Database failure.
pub async fn inputs_of_year(
    db: &DatabaseConnection,
    year: i32,
) -> Result<HashMap<Uuid, rating_input::Model>, DbError> {
    Ok(rating_input::Entity::find()
        .filter(rating_input::Column::Year.eq(year))
        .all(db)
        .await?
        .into_iter()
        .map(|r| (r.institution_id, r))
        .collect())
}

/// The first instant of `year` and of the next, in UTC.
#[must_use]
pub fn year_bounds(year: i32) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let start = Utc.with_ymd_and_hms(year, 1, 1, 0, 0, 0).single()?;
    let end = Utc.with_ymd_and_hms(year + 1, 1, 1, 0, 0, 0).single()?;
    Some((start, end))
}

/// The latest approved audit of each site in a region and sector whose last
/// submission falls in `year`, by site.
///
/// # Errors
/// Database failure.
pub async fn latest_approved(
    db: &DatabaseConnection,
    region: &str,
    sector: &str,
    year: i32,
) -> Result<HashMap<Uuid, audit::Model>, DbError> {
    let Some((start, end)) = year_bounds(year) else {
        return Ok(HashMap::new());
    };
    let rows = audit::Entity::find()
        .filter(audit::Column::RegionCode.eq(region))
        .filter(audit::Column::Sector.eq(sector))
        .filter(audit::Column::Status.eq(AuditStatus::Approved.as_str()))
        .filter(audit::Column::SubmittedAt.gte(start))
        .filter(audit::Column::SubmittedAt.lt(end))
        .order_by_asc(audit::Column::SubmittedAt)
        .order_by_asc(audit::Column::Id)
        .all(db)
        .await?;
    // Later rows replace earlier ones: the latest submission of a site wins.
    Ok(rows.into_iter().map(|a| (a.site_id, a)).collect())
}

/// The latest approved audit of one site, whatever the year.
///
/// # Errors
/// Database failure.
pub async fn latest_approved_of_site(
    db: &DatabaseConnection,
    site: Uuid,
) -> Result<Option<audit::Model>, DbError> {
    Ok(audit::Entity::find()
        .filter(audit::Column::SiteId.eq(site))
        .filter(audit::Column::Status.eq(AuditStatus::Approved.as_str()))
        .order_by_desc(audit::Column::SubmittedAt)
        .order_by_desc(audit::Column::Id)
        .one(db)
        .await?)
}

/// Approved audits of a region and sector submitted in `year`, after `after`
/// in id order, at most `limit`: the pages of an answers export.
///
/// # Errors
/// Database failure.
pub async fn approved_page(
    db: &DatabaseConnection,
    region: &str,
    sector: &str,
    year: i32,
    after: Option<Uuid>,
    limit: u64,
) -> Result<Vec<audit::Model>, DbError> {
    let Some((start, end)) = year_bounds(year) else {
        return Ok(Vec::new());
    };
    let mut query = audit::Entity::find()
        .filter(audit::Column::RegionCode.eq(region))
        .filter(audit::Column::Sector.eq(sector))
        .filter(audit::Column::Status.eq(AuditStatus::Approved.as_str()))
        .filter(audit::Column::SubmittedAt.gte(start))
        .filter(audit::Column::SubmittedAt.lt(end))
        .order_by_asc(audit::Column::Id);
    if let Some(after) = after {
        query = query.filter(audit::Column::Id.gt(after));
    }
    Ok(query.limit(limit).all(db).await?)
}

/// A rating to keep for the council.
#[derive(Debug, Clone)]
pub struct NewPublication {
    pub region: String,
    pub sector: String,
    pub year: i32,
    pub methodology_id: String,
    pub methodology_version: String,
    pub snapshot: String,
    pub inputs_digest: String,
}

/// Stores a prepared rating.
///
/// # Errors
/// Database failure.
pub async fn prepare(
    db: &DatabaseConnection,
    new: NewPublication,
    actor: &Actor,
) -> Result<rating_publication::Model, DbError> {
    let model = rating_publication::Model {
        id: Uuid::now_v7(),
        region_code: new.region,
        sector: new.sector,
        year: new.year,
        methodology_id: new.methodology_id,
        methodology_version: new.methodology_version,
        status: "prepared".to_owned(),
        snapshot: new.snapshot,
        inputs_digest: new.inputs_digest,
        prepared_by: actor.user_id.unwrap_or_default(),
        prepared_at: now(),
        approved_by: None,
        approved_at: None,
    };
    let write = super::begin_write(db).await?;
    let txn = &*write;
    rating_publication::Entity::insert(rating_publication::ActiveModel::from(model.clone()))
        .exec_without_returning(txn)
        .await?;
    audit_log::append(txn, actor, log_entry("rating.prepared", &model)).await?;
    write.commit().await?;
    Ok(model)
}

/// Publishes a prepared rating, freezing it. `None` when it is not (or no
/// longer) prepared.
///
/// # Errors
/// Database failure.
pub async fn publish(
    db: &DatabaseConnection,
    id: Uuid,
    actor: &Actor,
) -> Result<Option<rating_publication::Model>, DbError> {
    let write = super::begin_write(db).await?;
    let txn = &*write;
    let updated = rating_publication::Entity::update_many()
        .col_expr(rating_publication::Column::Status, Expr::value("published"))
        .col_expr(
            rating_publication::Column::ApprovedBy,
            Expr::value(actor.user_id),
        )
        .col_expr(rating_publication::Column::ApprovedAt, Expr::value(now()))
        .filter(rating_publication::Column::Id.eq(id))
        .filter(rating_publication::Column::Status.eq("prepared"))
        .exec(txn)
        .await?;
    if updated.rows_affected != 1 {
        write.rollback().await?;
        return Ok(None);
    }
    let model = rating_publication::Entity::find_by_id(id)
        .one(txn)
        .await?
        .ok_or_else(|| DbError::Conflict("rating vanished while publishing".to_owned()))?;
    audit_log::append(txn, actor, log_entry("rating.published", &model)).await?;
    write.commit().await?;
    Ok(Some(model))
}

/// The log entry of a step in a rating's life; its state is the status and
/// the SHA-256 of the frozen snapshot (hashed once, as stored).
fn log_entry(action: &'static str, model: &rating_publication::Model) -> Entry {
    let snapshot = hex::encode(Sha256::digest(model.snapshot.as_bytes()));
    Entry::new(action, "rating", model.id)
        .scope(&model.region_code, &model.sector)
        .states(
            None,
            Some(json!({"status": model.status, "snapshot_sha256": snapshot})),
        )
        .detail(json!({
            "year": model.year,
            "methodology": [model.methodology_id, model.methodology_version],
            "inputs_digest": model.inputs_digest,
        }))
}

/// One rating, prepared or published.
///
/// # Errors
/// Database failure.
pub async fn publication(
    db: &DatabaseConnection,
    id: Uuid,
) -> Result<Option<rating_publication::Model>, DbError> {
    Ok(rating_publication::Entity::find_by_id(id).one(db).await?)
}

/// Ratings, newest first, optionally only published ones, of a region,
/// sector and year where given. The snapshots are left out.
///
/// # Errors
/// Database failure.
pub async fn publications(
    db: &DatabaseConnection,
    published_only: bool,
    region: Option<&str>,
    sector: Option<&str>,
    year: Option<i32>,
) -> Result<Vec<rating_publication::Model>, DbError> {
    use rating_publication::Column as C;
    let mut query = rating_publication::Entity::find()
        .select_only()
        .columns([
            C::Id,
            C::RegionCode,
            C::Sector,
            C::Year,
            C::MethodologyId,
            C::MethodologyVersion,
            C::Status,
            C::InputsDigest,
            C::PreparedBy,
            C::PreparedAt,
            C::ApprovedBy,
            C::ApprovedAt,
        ])
        .column_as(Expr::value(""), C::Snapshot)
        .order_by_desc(C::PreparedAt);
    if published_only {
        query = query.filter(C::Status.eq("published"));
    }
    if let Some(region) = region {
        query = query.filter(C::RegionCode.eq(region));
    }
    if let Some(sector) = sector {
        query = query.filter(C::Sector.eq(sector));
    }
    if let Some(year) = year {
        query = query.filter(C::Year.eq(year));
    }
    Ok(query.limit(500).all(db).await?)
}
