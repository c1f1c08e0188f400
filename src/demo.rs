//! Demo data for `dostup serve --demo`: region 48 (Lipetsk oblast), a few
//! institutions of each sector with sites, one organisation of each kind and
//! one user of each role. Seeding is idempotent: records are looked up by
//! their natural keys and only created when missing, so restarting with
//! `--demo` changes nothing.

use sea_orm::DatabaseConnection;

use crate::auth::accounts::{AccountError, NewAccount, create_account};
use crate::db::directory::{self, NewInstitution, NewOrganisation, NewSite};
use crate::db::{PageRequest, users};
use crate::domain::{OrganisationKind, RegionCode, Role, Sector};

/// Password of every demo account.
pub const DEMO_PASSWORD: &str = "demo-password";

/// Demo region.
const REGION: (&str, &str) = ("48", "Липецкая область");

const ORGANISATIONS: &[(&str, OrganisationKind)] = &[
    (
        "Липецкая областная организация Всероссийского общества инвалидов",
        OrganisationKind::DisabilityOrganisation,
    ),
    (
        "Управление социальной политики Липецкой области",
        OrganisationKind::Ministry,
    ),
    (
        "Оператор независимой оценки Липецкой области",
        OrganisationKind::Operator,
    ),
    (
        "Общественный совет при управлении социальной политики Липецкой области",
        OrganisationKind::PublicCouncil,
    ),
];

/// (name, sector, sites: (name, address, latitude, longitude)).
type DemoInstitution = (
    &'static str,
    Sector,
    &'static [(&'static str, &'static str, f64, f64)],
);

const INSTITUTIONS: &[DemoInstitution] = &[
    (
        "ОБУ «Центр социальной защиты населения по городу Липецку»",
        Sector::SocialServices,
        &[
            (
                "Главный корпус",
                "г. Липецк, ул. Плеханова, 33",
                52.6105,
                39.5946,
            ),
            (
                "Отделение на Советской",
                "г. Липецк, ул. Советская, 66",
                52.6037,
                39.5837,
            ),
        ],
    ),
    (
        "ОБУ «Комплексный центр социального обслуживания населения Грязинского района»",
        Sector::SocialServices,
        &[(
            "Основное здание",
            "г. Грязи, ул. Красная, 38",
            52.4939,
            39.9431,
        )],
    ),
    (
        "МБОУ «Средняя школа № 5 г. Липецка»",
        Sector::Education,
        &[(
            "Здание школы",
            "г. Липецк, ул. Гагарина, 117",
            52.5949,
            39.5562,
        )],
    ),
    (
        "ГОБПОУ «Липецкий колледж транспорта и дорожного хозяйства»",
        Sector::Education,
        &[(
            "Учебный корпус",
            "г. Липецк, ул. Студенческий городок, 1",
            52.5818,
            39.5277,
        )],
    ),
    (
        "ГУК «Липецкая областная универсальная научная библиотека»",
        Sector::Culture,
        &[(
            "Здание библиотеки",
            "г. Липецк, ул. Кузнечная, 2",
            52.6119,
            39.5990,
        )],
    ),
    (
        "ГУК «Липецкий областной краеведческий музей»",
        Sector::Culture,
        &[(
            "Основная экспозиция",
            "г. Липецк, ул. Ленина, 23",
            52.6135,
            39.6001,
        )],
    ),
    (
        "ГУЗ «Липецкая городская поликлиника № 1»",
        Sector::Health,
        &[
            (
                "Взрослое отделение",
                "г. Липецк, ул. Ворошилова, 9",
                52.6046,
                39.5729,
            ),
            (
                "Детское отделение",
                "г. Липецк, ул. Механизаторов, 4",
                52.5978,
                39.5705,
            ),
        ],
    ),
    (
        "ГУЗ «Елецкая городская больница № 2»",
        Sector::Health,
        &[(
            "Главный корпус",
            "г. Елец, ул. Коммунаров, 24",
            52.6207,
            38.5008,
        )],
    ),
];

/// (email, role, index into ORGANISATIONS).
const USERS: &[(&str, Role, Option<usize>)] = &[
    ("admin@demo.local", Role::Admin, None),
    ("operator@demo.local", Role::Operator, Some(2)),
    ("volunteer@demo.local", Role::Volunteer, Some(0)),
    ("coordinator@demo.local", Role::Coordinator, Some(0)),
    ("reviewer@demo.local", Role::Reviewer, Some(1)),
    ("council@demo.local", Role::Council, Some(3)),
];

/// A demo login, printed at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoLogin {
    pub email: &'static str,
    pub role: Role,
}

/// Seeds the demo data if missing and returns the demo logins.
///
/// # Errors
/// Database failure, or an existing non-demo record blocks a demo one.
pub async fn seed(db: &DatabaseConnection) -> anyhow::Result<Vec<DemoLogin>> {
    let region: RegionCode = REGION.0.parse()?;
    directory::upsert_region(db, &region, REGION.1).await?;

    let mut organisation_ids = Vec::with_capacity(ORGANISATIONS.len());
    for (name, kind) in ORGANISATIONS {
        let org = match directory::find_organisation_by_name(db, name).await? {
            Some(existing) => existing,
            None => {
                let new = NewOrganisation {
                    name: (*name).to_owned(),
                    kind: *kind,
                    region: Some(region.clone()),
                };
                directory::create_organisation(db, new).await?
            }
        };
        organisation_ids.push(org.id);
    }

    for (name, sector, sites) in INSTITUTIONS {
        let institution = match directory::find_institution_by_name(db, &region, name).await? {
            Some(existing) => existing,
            None => {
                let new = NewInstitution {
                    name: (*name).to_owned(),
                    region: region.clone(),
                    sector: *sector,
                    tax_id: None,
                };
                directory::create_institution(db, new).await?
            }
        };
        let existing = directory::list_sites(
            db,
            institution.id,
            PageRequest {
                after: None,
                limit: 1,
            },
        )
        .await?;
        if existing.items.is_empty() {
            for (site_name, address, latitude, longitude) in *sites {
                let new = NewSite {
                    institution_id: institution.id,
                    name: (*site_name).to_owned(),
                    address: (*address).to_owned(),
                    latitude: *latitude,
                    longitude: *longitude,
                };
                directory::create_site(db, new).await?;
            }
        }
    }

    let mut logins = Vec::with_capacity(USERS.len());
    for (email, role, org) in USERS {
        if users::find_by_email(db, email).await?.is_none() {
            let account = NewAccount {
                email: (*email).to_owned(),
                password: DEMO_PASSWORD.to_owned(),
                display_name: format!("Demo {role}"),
                role: *role,
                organisation_id: org.and_then(|i| organisation_ids.get(i).copied()),
                region: (*role != Role::Admin).then(|| region.clone()),
                sector: None,
            };
            match create_account(db, account).await {
                // Another replica seeding at the same moment created it.
                Ok(_) | Err(AccountError::EmailTaken) => {}
                Err(err) => return Err(err.into()),
            }
        }
        logins.push(DemoLogin { email, role: *role });
    }
    Ok(logins)
}
