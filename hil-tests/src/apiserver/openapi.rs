//! OpenAPI documents: `/openapi/v3` (index), `/openapi/v3/{api/v1|apis/g/v}` and
//! `/openapi/v2`. Being filled in.

use super::errors::{ApiError, ApiResult};
use super::router::Body;

/// Serves an OpenAPI path (segments after `/openapi`).
pub fn serve(_rest: &[&str], _accept: &str) -> ApiResult<hyper::Response<Body>> {
    Err(ApiError::new(
        404,
        "NotFound",
        "the server could not find the requested resource",
    ))
}
