//! Order 627 accessibility passports of sites, from the latest approved audit:
//! statuses per zone and category, the site's status, the violations with the
//! categories they affect, the norm and the recommended work, and links to the
//! evidence. JSON, a printable HTML page, and A11yJSON for the Wheelmap /
//! accessibility.cloud ecosystem.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value as Json_, json};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::AppState;
use super::audits::answer_set;
use super::error::{ApiError, ApiResult, Problem};
use super::extract::{ApiPath, ApiQuery, Auth};
use crate::checklist::ENGINE_VERSION;
use crate::db::entity::audit;
use crate::db::{directory, photos, rating};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(passport))
        .routes(routes!(a11yjson))
}

/// A violation found in a zone.
#[derive(Debug, Serialize, ToSchema)]
pub struct Violation {
    /// `checklist.rule`.
    pub rule: String,
    /// `critical`, `major`, `minor`.
    pub severity: String,
    /// Categories of disabled people it affects (К, О, С, Г, У).
    pub affects: Vec<String>,
    /// The norm: `{document, clause}`.
    #[schema(value_type = Object)]
    pub norm: Json_,
    /// What is wrong, `{ru, en}`.
    #[schema(value_type = Object)]
    pub message: Json_,
    /// Recommended work: `repair`, `individual_solution`, `alternative_service`, `none`.
    pub work: Option<String>,
    /// A reviewer set this outcome.
    pub reviewed: bool,
    /// The evidence: photos of the items the rule reads.
    pub photos: Vec<String>,
}

/// One zone of the passport.
#[derive(Debug, Serialize, ToSchema)]
pub struct ZoneOut {
    /// `territory`, `approach`, `entrance`, `routes`, `service`, `sanitary`,
    /// `information`; `services` for organisational conditions.
    pub zone: String,
    /// `{ru, en}`.
    #[schema(value_type = Object)]
    pub title: Json_,
    /// Category → ДП, ДЧ, ДУ, ВНД (`null` while unknown).
    #[schema(value_type = Object)]
    pub statuses: Json_,
    pub violations: Vec<Violation>,
}

/// The audit a passport comes from.
#[derive(Debug, Serialize, ToSchema)]
pub struct PassportAudit {
    pub id: Uuid,
    pub revision: i32,
    pub submitted_at: Option<DateTime<Utc>>,
    pub methodology: String,
    pub methodology_version: String,
    /// Checklist release the audit was scored against.
    pub release: String,
}

/// An order 627 passport.
#[derive(Debug, Serialize, ToSchema)]
pub struct PassportOut {
    pub site_id: Uuid,
    pub site_name: String,
    pub address: String,
    pub latitude: f64,
    pub longitude: f64,
    pub institution_id: Uuid,
    pub institution_name: String,
    /// The site's status: ДП-В, ДП-И(К,О,…), ДЧ-В, ДЧ-И(…), ДУ, ВНД; `null` while unknown.
    pub status: Option<String>,
    /// Per category, over the service route.
    #[schema(value_type = Object)]
    pub categories: Json_,
    /// Staff assistance available (`null` when unknown).
    pub assistance: Option<bool>,
    pub zones: Vec<ZoneOut>,
    pub audit: PassportAudit,
    pub engine_version: String,
}

/// Form of the passport.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PassportParams {
    /// `json` (default) or `html` (printable); overrides `Accept`.
    pub format: Option<String>,
}

/// The site's accessibility passport from its latest approved audit, as JSON
/// or as a printable HTML page (`format=html` or `Accept: text/html`).
#[utoipa::path(get, path = "/sites/{id}/passport", tag = "passports", security(("bearer" = [])),
    params(("id" = Uuid, Path), PassportParams),
    responses((status = 200, description = "JSON or `text/html`", body = PassportOut),
              (status = 400, description = "`invalid-query`", body = Problem),
              (status = 404, description = "`not-found`; `no-approved-audit` when the site has none yet", body = Problem)))]
async fn passport(
    State(state): State<AppState>,
    Auth(_): Auth,
    headers: HeaderMap,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(q): ApiQuery<PassportParams>,
) -> ApiResult<Response> {
    let html = match q.format.as_deref() {
        Some("html") => true,
        Some("json") => false,
        Some(other) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid-query",
                format!("format `{other}` is not one of json, html"),
            ));
        }
        None => headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/html")),
    };
    let out = build(&state, id).await?.0;
    if html {
        let mut response = render_html(&out).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        Ok(response)
    } else {
        Ok(Json(out).into_response())
    }
}

/// The site as an A11yJSON `PlaceInfo`: a GeoJSON feature whose
/// `properties.accessibility` holds what the approved audit established.
#[utoipa::path(get, path = "/sites/{id}/a11yjson", tag = "passports", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, description = "`application/geo+json` PlaceInfo feature"),
              (status = 404, description = "`not-found`, `no-approved-audit`", body = Problem)))]
async fn a11yjson(
    State(state): State<AppState>,
    Auth(_): Auth,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Response> {
    let (out, answers, sector) = build(&state, id).await?;
    let feature = place_info(&out, &answers, &sector);
    let mut response = Json(feature).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/geo+json"),
    );
    Ok(response)
}

/// The passport, the audit's answers and the institution's sector.
async fn build(
    state: &AppState,
    site_id: Uuid,
) -> ApiResult<(PassportOut, BTreeMap<String, Json_>, String)> {
    let site = directory::get_site(&state.db, site_id)
        .await?
        .ok_or_else(|| ApiError::not_found("site"))?;
    let institution = directory::get_institution(&state.db, site.institution_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("site {} has no institution", site.id))?;
    let audit = rating::latest_approved_of_site(&state.db, site.id)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "no-approved-audit",
                "this site has no approved audit yet, so it has no passport",
            )
        })?;
    let evaluation = evaluation_json(state, &audit).await?;
    let photos = photos::of_audit(&state.db, audit.id).await?;
    let mut by_item: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for p in &photos {
        by_item
            .entry(p.item_key.as_str())
            .or_default()
            .push(format!("/api/v1/photos/{}", p.id));
    }
    let passport = &evaluation["passport"];
    let mut zones: Vec<ZoneOut> = passport["zones"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|z| {
            let zone = z["zone"].as_str().unwrap_or_default().to_owned();
            ZoneOut {
                title: zone_title(&zone),
                statuses: z["statuses"].clone(),
                violations: Vec::new(),
                zone,
            }
        })
        .collect();
    for rule in evaluation["rules"].as_array().into_iter().flatten() {
        if rule["outcome"] != "fail" {
            continue;
        }
        let zone = rule["zone"].as_str().unwrap_or_default().to_owned();
        let photos = rule["values"]
            .as_object()
            .into_iter()
            .flat_map(|v| v.keys())
            .flat_map(|item| by_item.get(item.as_str()).cloned().unwrap_or_default())
            .collect();
        let violation = Violation {
            rule: text(&rule["rule"]),
            severity: text(&rule["severity"]),
            affects: rule["affects"]
                .as_array()
                .into_iter()
                .flatten()
                .map(text)
                .collect(),
            norm: rule["norm"].clone(),
            message: rule["message"].clone(),
            work: rule["work"].as_str().map(str::to_owned),
            reviewed: !rule["review"].is_null(),
            photos,
        };
        match zones.iter_mut().find(|z| z.zone == zone) {
            Some(z) => z.violations.push(violation),
            None => zones.push(ZoneOut {
                title: zone_title(&zone),
                statuses: json!({}),
                violations: vec![violation],
                zone,
            }),
        }
    }
    let answers = answer_set(&audit)?.answers;
    let out = PassportOut {
        site_id: site.id,
        site_name: site.name,
        address: site.address,
        latitude: site.latitude,
        longitude: site.longitude,
        institution_id: institution.id,
        institution_name: institution.name,
        status: passport["site"]["code"].as_str().map(str::to_owned),
        categories: passport["categories"].clone(),
        assistance: passport["assistance"].as_bool(),
        zones,
        audit: PassportAudit {
            id: audit.id,
            revision: audit.revision,
            submitted_at: audit.submitted_at,
            methodology: audit.methodology_id,
            methodology_version: audit.methodology_version,
            release: audit.release_hash,
        },
        engine_version: ENGINE_VERSION.to_owned(),
    };
    Ok((out, answers, institution.sector))
}

async fn evaluation_json(state: &AppState, audit: &audit::Model) -> ApiResult<Json_> {
    super::review::evaluated(state, audit, |e| serde_json::to_value(e))
        .await?
        .map_err(|e| anyhow::anyhow!("evaluation of {} not serialisable: {e}", audit.id).into())
}

fn text(v: &Json_) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

fn zone_title(zone: &str) -> Json_ {
    let (ru, en) = match zone {
        "territory" => (
            "Территория, прилегающая к зданию",
            "Territory next to the building",
        ),
        "approach" => (
            "Путь от остановки общественного транспорта",
            "Route from the public transport stop",
        ),
        "entrance" => ("Вход (входы) в здание", "Entrance(s)"),
        "routes" => ("Пути движения внутри здания", "Routes inside the building"),
        "service" => (
            "Зона целевого назначения",
            "Zone where the service is delivered",
        ),
        "sanitary" => ("Санитарно-гигиенические помещения", "Sanitary rooms"),
        "information" => (
            "Системы информации и связи",
            "Information and communication",
        ),
        "services" => ("Организация обслуживания", "Organisational conditions"),
        other => (other, other),
    };
    json!({"ru": ru, "en": en})
}

fn work_ru(work: &str) -> &'static str {
    match work {
        "repair" => "ремонт (текущий, капитальный), реконструкция",
        "individual_solution" => "индивидуальное решение с ТСР",
        "alternative_service" => "альтернативная форма обслуживания",
        _ => "не нуждается",
    }
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A printable page (A4, no scripts, nothing fetched).
fn render_html(p: &PassportOut) -> String {
    const CATEGORIES: [&str; 5] = ["К", "О", "С", "Г", "У"];
    let status = |v: &Json_, c: &str| v[c].as_str().unwrap_or("—").to_owned();
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html><html lang=\"ru\"><head><meta charset=\"utf-8\">\
         <title>Паспорт доступности: {name}</title><style>\
         body{{font-family:sans-serif;margin:2em;color:#111}}table{{border-collapse:collapse;width:100%;margin:1em 0}}\
         th,td{{border:1px solid #555;padding:.3em .5em;text-align:left;vertical-align:top}}\
         .status{{font-size:1.4em;font-weight:bold}}@media print{{body{{margin:0}}a{{color:#111}}}}\
         </style></head><body>\
         <h1>Паспорт доступности объекта</h1>\
         <p>{institution}<br>{name}<br>{address}</p>\
         <p class=\"status\">Состояние доступности: {status}</p>\
         <table><tr><th>Категория</th>",
        name = escape(&p.site_name),
        institution = escape(&p.institution_name),
        address = escape(&p.address),
        status = escape(p.status.as_deref().unwrap_or("не определено")),
    );
    for c in CATEGORIES {
        let _ = write!(h, "<th>{c}</th>");
    }
    h.push_str("</tr><tr><td>По пути следования к месту услуги</td>");
    for c in CATEGORIES {
        let _ = write!(h, "<td>{}</td>", escape(&status(&p.categories, c)));
    }
    h.push_str("</tr>");
    for z in &p.zones {
        let _ = write!(
            h,
            "<tr><td>{}</td>",
            escape(z.title["ru"].as_str().unwrap_or_default())
        );
        for c in CATEGORIES {
            let _ = write!(h, "<td>{}</td>", escape(&status(&z.statuses, c)));
        }
        h.push_str("</tr>");
    }
    h.push_str("</table><h2>Нарушения и рекомендуемые работы</h2>");
    let mut any = false;
    for z in p.zones.iter().filter(|z| !z.violations.is_empty()) {
        any = true;
        let _ = write!(
            h,
            "<h3>{}</h3><table><tr><th>Нарушение</th><th>Категории</th><th>Норматив</th><th>Работы</th><th>Фото</th></tr>",
            escape(z.title["ru"].as_str().unwrap_or_default())
        );
        for v in &z.violations {
            let photos: Vec<String> = v
                .photos
                .iter()
                .enumerate()
                .map(|(n, url)| format!("<a href=\"{}\">{}</a>", escape(url), n + 1))
                .collect();
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{} {}</td><td>{}</td><td>{}</td></tr>",
                escape(v.message["ru"].as_str().unwrap_or(&v.rule)),
                escape(&v.affects.join(", ")),
                escape(v.norm["document"].as_str().unwrap_or_default()),
                escape(v.norm["clause"].as_str().unwrap_or_default()),
                escape(work_ru(v.work.as_deref().unwrap_or_default())),
                photos.join(" ")
            );
        }
        h.push_str("</table>");
    }
    if !any {
        h.push_str("<p>Нарушений не выявлено.</p>");
    }
    let _ = write!(
        h,
        "<p><small>Обследование {audit} (редакция {revision}), методика {m} {mv}, движок {engine}.</small></p></body></html>",
        audit = p.audit.id,
        revision = p.audit.revision,
        m = escape(&p.audit.methodology),
        mv = escape(&p.audit.methodology_version),
        engine = escape(&p.engine_version),
    );
    h
}

/// The passport's statuses in A11yJSON terms: ДП is accessible, ДЧ partially,
/// ДУ and ВНД not; an unknown status is left out rather than guessed.
fn place_info(p: &PassportOut, answers: &BTreeMap<String, Json_>, sector: &str) -> Json_ {
    // Order 627 categories and the A11yJSON personal profiles nearest to them.
    const PROFILES: [(&str, &str); 5] = [
        ("К", "wheelchair"),
        ("О", "mobility"),
        ("С", "blindness"),
        ("Г", "hearingImpairment"),
        ("У", "learningImpairment"),
    ];
    let mut accessible = serde_json::Map::new();
    let mut partially = serde_json::Map::new();
    for (category, profile) in PROFILES {
        match p.categories[category].as_str() {
            Some("ДП") => {
                accessible.insert(profile.to_owned(), json!(true));
            }
            Some("ДЧ") => {
                accessible.insert(profile.to_owned(), json!(false));
                partially.insert(profile.to_owned(), json!(true));
            }
            Some(_) => {
                accessible.insert(profile.to_owned(), json!(false));
                partially.insert(profile.to_owned(), json!(false));
            }
            None => {}
        }
    }
    let mut accessibility = serde_json::Map::new();
    accessibility.insert("accessibleWith".into(), Json_::Object(accessible));
    accessibility.insert("partiallyAccessibleWith".into(), Json_::Object(partially));
    let mut entrance = serde_json::Map::new();
    if let Some(level) = answers
        .get("entrance.level_entrance")
        .and_then(Json_::as_bool)
    {
        entrance.insert("isLevel".into(), json!(level));
    }
    if let Some(ramp) = answers
        .get("entrance_ramp.ramp_present")
        .and_then(Json_::as_bool)
    {
        entrance.insert("hasFixedRamp".into(), json!(ramp));
    }
    if !entrance.is_empty() {
        accessibility.insert("entrances".into(), json!([entrance]));
    }
    let violated = |zone: &str| {
        p.zones.iter().find(|z| z.zone == zone).map(|z| {
            z.violations
                .iter()
                .any(|v| v.affects.iter().any(|a| a == "К"))
        })
    };
    if answers
        .get("sanitary.accessible_toilet")
        .and_then(Json_::as_bool)
        == Some(true)
    {
        accessibility.insert(
            "restrooms".into(),
            json!([{"isAccessibleWithWheelchair": violated("sanitary") == Some(false)}]),
        );
    }
    let category = match sector {
        "education" => "school",
        "culture" => "library",
        "health" => "doctors",
        _ => "social_facility",
    };
    json!({
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [p.longitude, p.latitude]},
        "properties": {
            "name": {"ru": p.site_name},
            "category": category,
            "address": {"text": p.address},
            "accessibility": Json_::Object(accessibility),
            "originalId": p.site_id.to_string(),
            "sourceId": "dostup",
            "accessibilityPassport": {
                "status": p.status,
                "categories": p.categories,
                "auditId": p.audit.id,
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            escape("<script>\"x\" & 'y'</script>"),
            "&lt;script&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/script&gt;"
        );
    }
}
