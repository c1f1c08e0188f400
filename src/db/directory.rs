//! Repository functions for regions, organisations, institutions and sites.

use sea_orm::sea_query::{Expr, ExprTrait, LikeExpr};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use uuid::Uuid;

use super::entity::{institution, organisation, region, site};
use super::{DbError, Page, PageRequest, now};
use crate::domain::{OrganisationKind, RegionCode, Sector};

/// Creates the region or renames it; idempotent.
///
/// # Errors
/// Database failure.
pub async fn upsert_region(
    db: &DatabaseConnection,
    code: &RegionCode,
    name: &str,
) -> Result<region::Model, DbError> {
    let ts = now();
    let upserted = super::write_alone(db, async |txn| {
        if let Some(existing) = region::Entity::find_by_id(code.as_str()).one(txn).await? {
            if existing.name == name {
                return Ok(existing);
            }
            let mut active: region::ActiveModel = existing.into();
            active.name = Set(name.to_owned());
            active.updated_at = Set(ts);
            return region::Entity::update(active).exec(txn).await;
        }
        let model = region::ActiveModel {
            code: Set(code.as_str().to_owned()),
            name: Set(name.to_owned()),
            created_at: Set(ts),
            updated_at: Set(ts),
        };
        region::Entity::insert(model).exec_with_returning(txn).await
    })
    .await?;
    Ok(upserted)
}

/// All regions, by code.
///
/// # Errors
/// Database failure.
pub async fn list_regions(db: &DatabaseConnection) -> Result<Vec<region::Model>, DbError> {
    Ok(region::Entity::find()
        .order_by_asc(region::Column::Code)
        .all(db)
        .await?)
}

/// Fields of a new organisation.
#[derive(Debug, Clone)]
pub struct NewOrganisation {
    pub name: String,
    pub kind: OrganisationKind,
    pub region: Option<RegionCode>,
}

/// Creates an organisation.
///
/// # Errors
/// [`DbError::Conflict`] for a duplicate name, [`DbError::MissingReference`]
/// for an unknown region.
pub async fn create_organisation(
    db: &DatabaseConnection,
    new: NewOrganisation,
) -> Result<organisation::Model, DbError> {
    let ts = now();
    let model = organisation::ActiveModel {
        id: Set(Uuid::now_v7()),
        name: Set(new.name),
        kind: Set(new.kind.as_str().to_owned()),
        region_code: Set(new.region.map(String::from)),
        created_at: Set(ts),
        updated_at: Set(ts),
    };
    Ok(super::write_alone(db, async |txn| {
        organisation::Entity::insert(model)
            .exec_with_returning(txn)
            .await
    })
    .await?)
}

/// One organisation by id.
///
/// # Errors
/// Database failure.
pub async fn get_organisation(
    db: &DatabaseConnection,
    id: Uuid,
) -> Result<Option<organisation::Model>, DbError> {
    Ok(organisation::Entity::find_by_id(id).one(db).await?)
}

/// One organisation by its unique name.
///
/// # Errors
/// Database failure.
pub async fn find_organisation_by_name(
    db: &DatabaseConnection,
    name: &str,
) -> Result<Option<organisation::Model>, DbError> {
    Ok(organisation::Entity::find()
        .filter(organisation::Column::Name.eq(name))
        .one(db)
        .await?)
}

/// A page of organisations, optionally of one kind.
///
/// # Errors
/// Database failure.
pub async fn list_organisations(
    db: &DatabaseConnection,
    kind: Option<OrganisationKind>,
    page: PageRequest,
) -> Result<Page<organisation::Model>, DbError> {
    let mut query = organisation::Entity::find().order_by_asc(organisation::Column::Id);
    if let Some(kind) = kind {
        query = query.filter(organisation::Column::Kind.eq(kind.as_str()));
    }
    if let Some(after) = page.after {
        query = query.filter(organisation::Column::Id.gt(after));
    }
    let rows = query.limit(page.limit + 1).all(db).await?;
    Ok(Page::from_overfetch(rows, page.limit, |o| o.id))
}

/// Fields of a new institution.
#[derive(Debug, Clone)]
pub struct NewInstitution {
    pub name: String,
    pub region: RegionCode,
    pub sector: Sector,
    pub tax_id: Option<String>,
}

/// Creates an institution.
///
/// # Errors
/// [`DbError::Conflict`] for a tax id already registered,
/// [`DbError::MissingReference`] for an unknown region.
pub async fn create_institution(
    db: &DatabaseConnection,
    new: NewInstitution,
) -> Result<institution::Model, DbError> {
    let ts = now();
    let model = institution::ActiveModel {
        id: Set(Uuid::now_v7()),
        name_folded: Set(fold(&new.name)),
        name: Set(new.name),
        region_code: Set(new.region.into()),
        sector: Set(new.sector.as_str().to_owned()),
        tax_id: Set(new.tax_id),
        created_at: Set(ts),
        updated_at: Set(ts),
    };
    Ok(super::write_alone(db, async |txn| {
        institution::Entity::insert(model)
            .exec_with_returning(txn)
            .await
    })
    .await?)
}

/// Filters for listing institutions; all optional and combined with AND.
#[derive(Debug, Clone, Default)]
pub struct InstitutionFilter {
    pub region: Option<RegionCode>,
    pub sector: Option<Sector>,
    /// Case-insensitive substring of the name.
    pub text: Option<String>,
}

/// A page of institutions matching `filter`.
///
/// # Errors
/// Database failure.
pub async fn list_institutions(
    db: &DatabaseConnection,
    filter: &InstitutionFilter,
    page: PageRequest,
) -> Result<Page<institution::Model>, DbError> {
    let mut query = institution::Entity::find().order_by_asc(institution::Column::Id);
    if let Some(region) = &filter.region {
        query = query.filter(institution::Column::RegionCode.eq(region.as_str()));
    }
    if let Some(sector) = filter.sector {
        query = query.filter(institution::Column::Sector.eq(sector.as_str()));
    }
    if let Some(text) = filter
        .text
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        let pattern = format!("%{}%", escape_like(&fold(text)));
        query = query.filter(
            Expr::col(institution::Column::NameFolded).like(LikeExpr::new(pattern).escape('\\')),
        );
    }
    if let Some(after) = page.after {
        query = query.filter(institution::Column::Id.gt(after));
    }
    let rows = query.limit(page.limit + 1).all(db).await?;
    Ok(Page::from_overfetch(rows, page.limit, |i| i.id))
}

/// One institution by id.
///
/// # Errors
/// Database failure.
pub async fn get_institution(
    db: &DatabaseConnection,
    id: Uuid,
) -> Result<Option<institution::Model>, DbError> {
    Ok(institution::Entity::find_by_id(id).one(db).await?)
}

/// One institution by region and exact name (used by the demo seed).
///
/// # Errors
/// Database failure.
pub async fn find_institution_by_name(
    db: &DatabaseConnection,
    region: &RegionCode,
    name: &str,
) -> Result<Option<institution::Model>, DbError> {
    Ok(institution::Entity::find()
        .filter(institution::Column::RegionCode.eq(region.as_str()))
        .filter(institution::Column::Name.eq(name))
        .one(db)
        .await?)
}

/// Fields of a new site.
#[derive(Debug, Clone)]
pub struct NewSite {
    pub institution_id: Uuid,
    pub name: String,
    pub address: String,
    pub latitude: f64,
    pub longitude: f64,
}

/// Creates a site of an institution.
///
/// # Errors
/// [`DbError::MissingReference`] when the institution does not exist.
pub async fn create_site(db: &DatabaseConnection, new: NewSite) -> Result<site::Model, DbError> {
    let ts = now();
    let model = site::ActiveModel {
        id: Set(Uuid::now_v7()),
        institution_id: Set(new.institution_id),
        name: Set(new.name),
        address: Set(new.address),
        latitude: Set(new.latitude),
        longitude: Set(new.longitude),
        created_at: Set(ts),
        updated_at: Set(ts),
    };
    Ok(super::write_alone(db, async |txn| {
        site::Entity::insert(model).exec_with_returning(txn).await
    })
    .await?)
}

/// A page of the sites of one institution.
///
/// # Errors
/// Database failure.
pub async fn list_sites(
    db: &DatabaseConnection,
    institution_id: Uuid,
    page: PageRequest,
) -> Result<Page<site::Model>, DbError> {
    let mut query = site::Entity::find()
        .filter(site::Column::InstitutionId.eq(institution_id))
        .order_by_asc(site::Column::Id);
    if let Some(after) = page.after {
        query = query.filter(site::Column::Id.gt(after));
    }
    let rows = query.limit(page.limit + 1).all(db).await?;
    Ok(Page::from_overfetch(rows, page.limit, |s| s.id))
}

/// One site by id.
///
/// # Errors
/// Database failure.
pub async fn get_site(db: &DatabaseConnection, id: Uuid) -> Result<Option<site::Model>, DbError> {
    Ok(site::Entity::find_by_id(id).one(db).await?)
}

/// Case folding for search; Rust's `to_lowercase` covers Cyrillic, which
/// SQLite's `LIKE` does not.
fn fold(text: &str) -> String {
    text.trim().to_lowercase()
}

/// Escapes `LIKE` wildcards so user text matches literally.
fn escape_like(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
