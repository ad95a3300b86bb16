//! The runtime's images, through the Engine API: the list (ids, names, sizes), the
//! image ids every container on the runtime uses (running or not, the agent's or not),
//! and removal. The thin effects of [`crate::image_gc`].

use std::collections::BTreeSet;

use bollard::Docker;
use serde_json::Value;

use crate::container_runtime::RuntimeError;
use crate::engine_api_get::{Endpoint, get_json};
use crate::image_gc::ListedImage;

/// `sha256:abc` and `abc` name the same image.
pub fn image_key(id: &str) -> String {
    id.strip_prefix("sha256:").unwrap_or(id).to_owned()
}

async fn get_list(endpoint: &Endpoint, path: &str) -> Result<Vec<Value>, RuntimeError> {
    let (status, body) = get_json(endpoint, path).await?;
    if status != 200 {
        return Err(RuntimeError::Api(format!("GET {path}: HTTP {status}")));
    }
    Ok(body.as_array().cloned().unwrap_or_default())
}

/// Every image on the runtime (`GET /images/json`).
pub async fn list_images(endpoint: &Endpoint) -> Result<Vec<ListedImage>, RuntimeError> {
    let list = get_list(endpoint, "/images/json").await?;
    Ok(list
        .iter()
        .filter_map(|i| {
            let id = image_key(i["Id"].as_str()?);
            let mut names: Vec<String> = ["RepoTags", "RepoDigests"]
                .iter()
                .flat_map(|k| i[*k].as_array().cloned().unwrap_or_default())
                .filter_map(|n| n.as_str().map(str::to_owned))
                .filter(|n| !n.starts_with("<none>"))
                .collect();
            names.dedup();
            Some(ListedImage {
                id,
                names,
                size_bytes: i["Size"].as_u64().unwrap_or(0),
            })
        })
        .collect())
}

/// The image ids of every container on the runtime.
pub async fn used_image_ids(endpoint: &Endpoint) -> Result<BTreeSet<String>, RuntimeError> {
    let list = get_list(endpoint, "/containers/json?all=1").await?;
    Ok(list
        .iter()
        .filter_map(|c| c["ImageID"].as_str().map(image_key))
        .collect())
}

/// Removes one image (not forced: the runtime refuses an image a container uses).
pub async fn remove_image(docker: &Docker, id: &str) -> Result<(), RuntimeError> {
    docker
        .remove_image(
            id,
            None::<bollard::query_parameters::RemoveImageOptions>,
            None,
        )
        .await
        .map(|_| ())
        .map_err(|e| RuntimeError::Api(format!("removing image {id}: {e}")))
}
