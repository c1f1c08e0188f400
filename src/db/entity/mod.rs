//! sea-orm entities, one file per table. They mirror the migrations and carry
//! no behaviour; the repository functions in `db` turn them into domain values.

pub mod audit;
pub mod catalog_release;
pub mod change;
pub mod checklist_version;
pub mod idempotency_key;
pub mod institution;
pub mod organisation;
pub mod photo;
pub mod refresh_token;
pub mod region;
pub mod site;
pub mod upload;
pub mod user;
