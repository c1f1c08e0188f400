//! `/users`: account management for admins.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::AppState;
use super::audit_log::record_committed;
use super::auth::UserOut;
use super::error::{ApiError, ApiResult, FieldError, Problem};
use super::extract::{ApiJson, ApiPath, ApiQuery, Auth, RequestId};
use super::pagination::{PageParams, Paginated};
use crate::auth::Principal;
use crate::auth::accounts::{AccountError, NewAccount, create_account};
use crate::db;
use crate::db::audit_log::Entry;
use crate::domain::{RegionCode, Role, Sector};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_users, create_user))
        .routes(routes!(get_user))
}

fn require_admin(principal: &Principal) -> Result<(), ApiError> {
    if principal.role == Role::Admin {
        Ok(())
    } else {
        Err(ApiError::forbidden("only admins manage users"))
    }
}

/// Lists users (admins only).
#[utoipa::path(get, path = "/users", tag = "users", security(("bearer" = [])),
    params(PageParams),
    responses((status = 200, body = Paginated<UserOut>), (status = 403, body = Problem)))]
async fn list_users(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiQuery(paging): ApiQuery<PageParams>,
) -> ApiResult<Json<Paginated<UserOut>>> {
    require_admin(&principal)?;
    let rows = db::users::list_users(&state.db, paging.request()?).await?;
    Ok(Json(Paginated::try_from_page(rows, UserOut::try_from)?))
}

/// A new account.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUserIn {
    #[schema(min_length = 3, max_length = 254, example = "volunteer@example.org")]
    pub email: String,
    /// 10 to 1,024 characters.
    #[schema(min_length = 10, max_length = 1024)]
    pub password: String,
    /// At most 200 characters; the email when empty.
    #[serde(default)]
    #[schema(max_length = 200)]
    pub display_name: String,
    pub role: Role,
    pub organisation_id: Option<Uuid>,
    /// Limits the user to one region.
    #[schema(value_type = Option<String>, example = "48")]
    pub region: Option<RegionCode>,
    /// Limits the user to one sector.
    pub sector: Option<Sector>,
}

/// Creates an account (admins only).
#[utoipa::path(post, path = "/users", tag = "users", security(("bearer" = [])),
    request_body = NewUserIn,
    responses((status = 201, body = UserOut), (status = 403, body = Problem),
              (status = 409, description = "`email-taken`", body = Problem),
              (status = 422, description = "`validation-failed`, every bad field at once: `email` `invalid-email`; `password` `weak-password` or `too-long`; `display_name` `too-long`; `organisation_id` `unknown-reference`", body = Problem)))]
async fn create_user(
    State(state): State<AppState>,
    Auth(principal): Auth,
    request_id: RequestId,
    ApiJson(body): ApiJson<NewUserIn>,
) -> ApiResult<(StatusCode, Json<UserOut>)> {
    require_admin(&principal)?;
    let account = NewAccount {
        email: body.email,
        password: body.password,
        display_name: body.display_name,
        role: body.role,
        organisation_id: body.organisation_id,
        region: body.region,
        sector: body.sector,
    };
    let created = create_account(&state.db, account)
        .await
        .map_err(|e| match e {
            AccountError::Invalid(fields) => ApiError::Validation(
                fields
                    .into_iter()
                    .map(|f| FieldError::new(f.field, f.code, f.message))
                    .collect(),
            ),
            AccountError::EmailTaken => ApiError::conflict("email-taken", e.to_string()),
            AccountError::UnknownReference => ApiError::invalid_field(
                "organisation_id",
                "unknown-reference",
                "the organisation or region does not exist",
            ),
            AccountError::Db(db) => db.into(),
            AccountError::Internal(msg) => ApiError::Internal(anyhow::anyhow!(msg)),
        })?;
    let out: UserOut = created.try_into()?;
    record_committed(
        &state,
        &request_id.actor(&principal),
        Entry::new("user.created", "user", out.id)
            .states(None, serde_json::to_value(&out).ok())
            .detail(serde_json::json!({"email": out.email, "role": out.role})),
    )
    .await;
    Ok((StatusCode::CREATED, Json(out)))
}

/// One user (admins only).
#[utoipa::path(get, path = "/users/{id}", tag = "users", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = UserOut), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn get_user(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<UserOut>> {
    require_admin(&principal)?;
    let found = db::users::get_user(&state.db, id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    Ok(Json(found.try_into()?))
}
