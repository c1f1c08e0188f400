//! sea-orm entities, one file per table. They mirror the migrations and carry
//! no behaviour; the repository functions in `db` turn them into domain values.

pub mod institution;
pub mod organisation;
pub mod refresh_token;
pub mod region;
pub mod site;
pub mod user;
