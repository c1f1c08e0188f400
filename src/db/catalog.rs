//! Publication of checklist and methodology versions. A version is
//! immutable: its first publication stores the file's text and SHA-256, and
//! any later file claiming the same id and version must have the same hash.
//! A release is one consistent set of versions (what one start of the
//! service loaded); audits pin a release so they can be re-evaluated with
//! exactly the texts they were filled against.

use std::path::Path;

use sea_orm::{
    ActiveValue::Set, ConnectionTrait, DatabaseConnection, EntityTrait, TryInsertResult,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::changes::{self, NewChange};
use super::entity::{catalog_release, checklist_version};
use super::{DbError, now};
use crate::checklist::{Catalog, CatalogFile};

/// One member of a release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseMember {
    /// `checklist` or `methodology`.
    pub kind: String,
    pub id: String,
    pub version: String,
    pub sha256: String,
    /// File name relative to the checklist directory.
    pub file: String,
}

/// A published version whose file now has other content.
#[derive(Debug, thiserror::Error)]
#[error(
    "{kind} `{id}` version {version} was already published with different content \
     (published sha256 {published}, file {file} has {found}); a published version never \
     changes: bump `version` in {file}"
)]
pub struct ChangedVersion {
    pub kind: String,
    pub id: String,
    pub version: String,
    pub file: String,
    pub published: String,
    pub found: String,
}

impl ChangedVersion {
    fn new(file: ReleaseMember, published: String) -> Self {
        Self {
            kind: file.kind,
            id: file.id,
            version: file.version,
            file: file.file,
            published,
            found: file.sha256,
        }
    }
}

impl From<ChangedVersion> for PublishError {
    fn from(changed: ChangedVersion) -> Self {
        Self::ChangedWithoutBump(Box::new(changed))
    }
}

/// Why a catalog could not be published.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("{0}")]
    ChangedWithoutBump(Box<ChangedVersion>),
    #[error("{0} is not inside the checklist directory")]
    OutsideDirectory(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<sea_orm::DbErr> for PublishError {
    fn from(err: sea_orm::DbErr) -> Self {
        Self::Db(err.into())
    }
}

/// Registers every checklist and methodology of `catalog` (loaded from
/// `files`, which were read from `root`) and the release they form; returns
/// the release hash. Publishing the same files again changes nothing.
///
/// # Errors
/// [`PublishError::ChangedWithoutBump`] naming the file, or a database failure.
pub async fn publish(
    db: &DatabaseConnection,
    root: &Path,
    files: &[CatalogFile],
    catalog: &Catalog,
) -> Result<String, PublishError> {
    let mut members = Vec::new();
    let mut new_versions = Vec::new();
    for file in files {
        let relative = relative_name(root, &file.path)?;
        let entry = if file.methodology {
            catalog
                .methodologies()
                .iter()
                .find(|m| m.file() == file.path)
                .map(|m| {
                    (
                        "methodology",
                        m.id(),
                        m.version(),
                        m.sha256(),
                        None,
                        m.title(),
                        None,
                    )
                })
        } else {
            catalog
                .checklists()
                .iter()
                .find(|c| c.file() == file.path)
                .map(|c| {
                    (
                        "checklist",
                        c.id(),
                        c.version(),
                        c.sha256(),
                        Some(c.zone()),
                        c.title(),
                        Some(serde_json::to_string(&c.compiled()).unwrap_or_default()),
                    )
                })
        };
        let Some((kind, id, version, sha256, zone, title, compiled)) = entry else {
            continue;
        };
        let member = ReleaseMember {
            kind: kind.to_owned(),
            id: id.to_owned(),
            version: version.to_owned(),
            sha256: sha256.to_owned(),
            file: relative,
        };
        // Read first, outside the writers' turn: on an ordinary start every
        // version is already published, and nothing needs writing.
        match published_sha256(db, &member).await? {
            Some(published) if published != member.sha256 => {
                return Err(ChangedVersion::new(member, published).into());
            }
            Some(_) => {}
            None => new_versions.push((
                member.clone(),
                checklist_version::ActiveModel {
                    kind: Set(member.kind.clone()),
                    id: Set(member.id.clone()),
                    version: Set(member.version.clone()),
                    sha256: Set(member.sha256.clone()),
                    file: Set(member.file.clone()),
                    zone: Set(zone.map(|z| z.as_str().to_owned())),
                    title_ru: Set(title.ru.clone()),
                    title_en: Set(title.en.clone()),
                    source: Set(file.text.clone()),
                    compiled: Set(compiled),
                    created_at: Set(now()),
                    updated_at: Set(now()),
                },
            )),
        }
        members.push(member);
    }
    members.sort_by(|a, b| a.file.cmp(&b.file));
    let hash = release_hash(&members);

    let write = super::begin_write(db).await?;
    let txn = &*write;
    for (member, row) in new_versions {
        // `DO NOTHING` rather than catching the unique violation: on
        // PostgreSQL a failed statement would abort the whole transaction.
        let inserted = checklist_version::Entity::insert(row)
            .on_conflict_do_nothing()
            .exec_without_returning(txn)
            .await?;
        if matches!(inserted, TryInsertResult::Inserted(n) if n > 0) {
            changes::append(
                txn,
                NewChange {
                    kind: if member.kind == "methodology" {
                        "methodology.published"
                    } else {
                        "checklist.published"
                    },
                    payload: json!({"id": member.id, "version": member.version}),
                    ..NewChange::default()
                },
            )
            .await?;
            continue;
        }
        // Another replica published the same version since we read; its
        // content must be the same as ours.
        if let Some(theirs) = published_sha256(txn, &member).await?
            && theirs != member.sha256
        {
            write.rollback().await.ok();
            return Err(ChangedVersion::new(member, theirs).into());
        }
    }
    let release = catalog_release::ActiveModel {
        hash: Set(hash.clone()),
        manifest: Set(serde_json::to_string(&members).unwrap_or_default()),
        created_at: Set(now()),
        updated_at: Set(now()),
    };
    catalog_release::Entity::insert(release)
        .on_conflict_do_nothing()
        .exec_without_returning(txn)
        .await?;
    write.commit().await?;
    Ok(hash)
}

/// The SHA-256 with which `member`'s version was published, if it was.
async fn published_sha256(
    db: &impl ConnectionTrait,
    member: &ReleaseMember,
) -> Result<Option<String>, DbError> {
    let key = (
        member.kind.clone(),
        member.id.clone(),
        member.version.clone(),
    );
    Ok(checklist_version::Entity::find_by_id(key)
        .one(db)
        .await?
        .map(|row| row.sha256))
}

/// The files of a stored release, for rebuilding its catalog.
///
/// # Errors
/// Database failure.
pub async fn release_files(
    db: &DatabaseConnection,
    hash: &str,
) -> Result<Option<Vec<CatalogFile>>, DbError> {
    let Some(release) = catalog_release::Entity::find_by_id(hash.to_owned())
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    let members: Vec<ReleaseMember> = serde_json::from_str(&release.manifest)
        .map_err(|e| DbError::Conflict(format!("release {hash} has a bad manifest: {e}")))?;
    let mut files = Vec::with_capacity(members.len());
    for m in members {
        let row = checklist_version::Entity::find_by_id((m.kind.clone(), m.id, m.version))
            .one(db)
            .await?
            .ok_or_else(|| DbError::Conflict(format!("release {hash} lists a missing version")))?;
        files.push(CatalogFile {
            path: m.file.into(),
            text: row.source,
            methodology: m.kind == "methodology",
        });
    }
    Ok(Some(files))
}

/// Every release, with its members, newest first.
///
/// # Errors
/// Database failure.
pub async fn releases(
    db: &DatabaseConnection,
) -> Result<Vec<(String, Vec<ReleaseMember>)>, DbError> {
    use sea_orm::QueryOrder;
    let rows = catalog_release::Entity::find()
        .order_by_desc(catalog_release::Column::CreatedAt)
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| Some((r.hash, serde_json::from_str(&r.manifest).ok()?)))
        .collect())
}

/// A published checklist version (any release).
///
/// # Errors
/// Database failure.
pub async fn checklist_version(
    db: &DatabaseConnection,
    id: &str,
    version: &str,
) -> Result<Option<checklist_version::Model>, DbError> {
    Ok(checklist_version::Entity::find_by_id((
        "checklist".to_owned(),
        id.to_owned(),
        version.to_owned(),
    ))
    .one(db)
    .await?)
}

fn relative_name(root: &Path, path: &Path) -> Result<String, PublishError> {
    let relative = path.strip_prefix(root).unwrap_or(path);
    let parts: Vec<String> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.is_empty() || parts.iter().any(|p| p == "..") {
        return Err(PublishError::OutsideDirectory(path.display().to_string()));
    }
    Ok(parts.join("/"))
}

fn release_hash(members: &[ReleaseMember]) -> String {
    let mut hasher = Sha256::new();
    for m in members {
        hasher.update(format!(
            "{}\t{}\t{}\t{}\t{}\n",
            m.kind, m.id, m.version, m.sha256, m.file
        ));
    }
    hex::encode(hasher.finalize())
}
