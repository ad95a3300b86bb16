//! Pod volumes: ConfigMap, Secret, downwardAPI and projected volumes become `Files`
//! volumes with their contents resolved; emptyDir and hostPath pass through.

use std::collections::BTreeMap;

use edge_protocol::{Base64Bytes, FileItem, Volume, VolumeSource};
use k8s_openapi::api::core::v1::{
    DownwardAPIVolumeFile, KeyToPath, Pod, Volume as KubeVolume, VolumeProjection,
};

use super::{
    NodeContext, ObjectData, ObjectKind, PodReferences, TokenSpec, TranslationError, downward,
};
use crate::quantity::Quantity;

/// Default file mode of ConfigMap, Secret, downwardAPI and projected volumes (0644).
pub const DEFAULT_MODE: u32 = 0o644;

/// Whether a path inside a volume is safe: relative, no `..`, not empty.
pub fn is_safe_relative_path(path: &str) -> bool {
    !path.is_empty()
        && !path.starts_with('/')
        && path.split('/').all(|p| !p.is_empty() && p != "..")
}

fn mode_of(raw: Option<i32>, default: u32) -> u32 {
    raw.and_then(|m| u32::try_from(m).ok())
        .map_or(default, |m| m & 0o777)
}

fn push_file(
    files: &mut Vec<FileItem>,
    path: &str,
    content: Vec<u8>,
    mode: u32,
) -> Result<(), TranslationError> {
    if !is_safe_relative_path(path) {
        return Err(TranslationError::UnsafePath(path.to_owned()));
    }
    files.retain(|f| f.path != path);
    files.push(FileItem {
        path: path.to_owned(),
        content: Base64Bytes(content),
        mode,
    });
    Ok(())
}

/// A ConfigMap or Secret whose keys become files, in a volume or in a projected volume's
/// source: every key, or only `items` (missing item keys are an error unless the source
/// is optional).
struct ObjectFiles<'a> {
    kind: ObjectKind,
    name: &'a str,
    items: Option<&'a Vec<KeyToPath>>,
    optional: bool,
}

impl ObjectFiles<'_> {
    /// Adds the object's files; `false` when it is optional and does not exist.
    fn add_to(
        &self,
        files: &mut Vec<FileItem>,
        refs: &PodReferences,
        default_mode: u32,
    ) -> Result<bool, TranslationError> {
        let Some(data) = refs.object(self.kind, self.name, self.optional)? else {
            return Ok(false);
        };
        match self.items {
            Some(items) if !items.is_empty() => {
                for item in items {
                    match data.bytes(&item.key) {
                        Some(content) => {
                            push_file(files, &item.path, content, mode_of(item.mode, default_mode))?
                        }
                        None if self.optional => {}
                        None => return Err(self.kind.key_not_found(self.name, &item.key)),
                    }
                }
            }
            _ => {
                for (key, content) in data.all_bytes() {
                    push_file(files, &key, content, default_mode)?;
                }
            }
        }
        Ok(true)
    }
}

fn downward_files(
    files: &mut Vec<FileItem>,
    pod: &Pod,
    node: &NodeContext,
    items: &[DownwardAPIVolumeFile],
    default_mode: u32,
) -> Result<(), TranslationError> {
    for item in items {
        let value = if let Some(f) = &item.field_ref {
            downward::field_value(pod, node, f)?
        } else if let Some(r) = &item.resource_field_ref {
            let name = r.container_name.clone().unwrap_or_default();
            let container = pod
                .spec
                .as_ref()
                .and_then(|s| s.containers.iter().find(|c| c.name == name))
                .ok_or_else(|| TranslationError::UnknownContainer(name.clone()))?;
            downward::resource_value(container, node, r)?
        } else {
            return Err(TranslationError::UnsupportedField(format!(
                "downwardAPI item {}",
                item.path
            )));
        };
        push_file(
            files,
            &item.path,
            value.into_bytes(),
            mode_of(item.mode, default_mode),
        )?;
    }
    Ok(())
}

/// Translates one pod volume. A projected volume with a service account token is
/// sensitive (its files are 0600 on the device, like a Secret's).
pub fn translate_volume(
    pod: &Pod,
    volume: &KubeVolume,
    refs: &PodReferences,
    node: &NodeContext,
) -> Result<Volume, TranslationError> {
    let name = volume.name.clone();
    let source = if let Some(cm) = &volume.config_map {
        let mut files = Vec::new();
        ObjectFiles {
            kind: ObjectKind::ConfigMap,
            name: &cm.name,
            items: cm.items.as_ref(),
            optional: cm.optional.unwrap_or(false),
        }
        .add_to(&mut files, refs, mode_of(cm.default_mode, DEFAULT_MODE))?;
        VolumeSource::Files {
            files,
            sensitive: false,
        }
    } else if let Some(sec) = &volume.secret {
        let mut files = Vec::new();
        ObjectFiles {
            kind: ObjectKind::Secret,
            name: sec.secret_name.as_deref().unwrap_or_default(),
            items: sec.items.as_ref(),
            optional: sec.optional.unwrap_or(false),
        }
        .add_to(&mut files, refs, mode_of(sec.default_mode, DEFAULT_MODE))?;
        VolumeSource::Files {
            files,
            sensitive: true,
        }
    } else if let Some(d) = &volume.downward_api {
        let mut files = Vec::new();
        downward_files(
            &mut files,
            pod,
            node,
            d.items.as_deref().unwrap_or_default(),
            mode_of(d.default_mode, DEFAULT_MODE),
        )?;
        VolumeSource::Files {
            files,
            sensitive: false,
        }
    } else if let Some(p) = &volume.projected {
        let mut files = Vec::new();
        let mut sensitive = false;
        let default_mode = mode_of(p.default_mode, DEFAULT_MODE);
        for source in p.sources.iter().flatten() {
            projection(
                &mut files,
                &mut sensitive,
                pod,
                source,
                refs,
                node,
                default_mode,
            )?;
        }
        VolumeSource::Files { files, sensitive }
    } else if let Some(e) = &volume.empty_dir {
        let size_limit_bytes = e
            .size_limit
            .as_ref()
            .map(|q| Quantity::parse(&q.0).map(Quantity::units_u64))
            .transpose()
            .map_err(TranslationError::Quantity)?;
        VolumeSource::EmptyDir {
            in_memory: e.medium.as_deref() == Some("Memory"),
            size_limit_bytes,
        }
    } else if let Some(h) = &volume.host_path {
        VolumeSource::HostPath {
            path: h.path.clone(),
            kind: h.type_.clone().filter(|t| !t.is_empty()),
        }
    } else {
        return Err(TranslationError::UnsupportedVolume(name));
    };
    Ok(Volume { name, source })
}

#[allow(clippy::too_many_arguments)]
fn projection(
    files: &mut Vec<FileItem>,
    sensitive: &mut bool,
    pod: &Pod,
    source: &VolumeProjection,
    refs: &PodReferences,
    node: &NodeContext,
    default_mode: u32,
) -> Result<(), TranslationError> {
    if let Some(cm) = &source.config_map {
        ObjectFiles {
            kind: ObjectKind::ConfigMap,
            name: &cm.name,
            items: cm.items.as_ref(),
            optional: cm.optional.unwrap_or(false),
        }
        .add_to(files, refs, default_mode)?;
    }
    if let Some(sec) = &source.secret {
        let found = ObjectFiles {
            kind: ObjectKind::Secret,
            name: &sec.name,
            items: sec.items.as_ref(),
            optional: sec.optional.unwrap_or(false),
        }
        .add_to(files, refs, default_mode)?;
        if found {
            *sensitive = true;
        }
    }
    if let Some(d) = &source.downward_api {
        downward_files(
            files,
            pod,
            node,
            d.items.as_deref().unwrap_or_default(),
            default_mode,
        )?;
    }
    if let Some(t) = &source.service_account_token {
        let token = refs
            .tokens
            .get(&TokenSpec::of(t))
            .ok_or_else(|| TranslationError::TokenMissing(t.path.clone()))?;
        push_file(files, &t.path, token.0.clone().into_bytes(), default_mode)?;
        *sensitive = true;
    }
    if source.cluster_trust_bundle.is_some() || source.pod_certificate.is_some() {
        return Err(TranslationError::UnsupportedVolume(
            "projected clusterTrustBundle/podCertificate source".to_owned(),
        ));
    }
    Ok(())
}

/// Keys and contents of every entry, for volumes without `items`.
impl ObjectData {
    pub fn all_bytes(&self) -> BTreeMap<String, Vec<u8>> {
        self.entries.clone()
    }
}
