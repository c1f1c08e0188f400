//! sea-orm entities, one file per table. They mirror the migrations and carry
//! no behaviour; the repository functions in `db` turn them into domain values.

pub mod audit;
pub mod audit_log;
pub mod audit_log_head;
pub mod audit_revision;
pub mod catalog_release;
pub mod change;
pub mod checklist_version;
pub mod idempotency_key;
pub mod institution;
pub mod organisation;
pub mod outbox;
pub mod photo;
pub mod rating_import;
pub mod rating_input;
pub mod rating_publication;
pub mod refresh_token;
pub mod region;
pub mod review_decision;
pub mod review_verdict;
pub mod site;
pub mod upload;
pub mod user;
