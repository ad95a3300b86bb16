//! Container environment: `envFrom` then `env`, with `$(VAR)` expansion, as the kubelet
//! builds it.

use k8s_openapi::api::core::v1::{Container, Pod};

use super::{NodeContext, ObjectKind, PodReferences, TranslationError, downward};
use edge_protocol::EnvVar;

/// Expands `$(NAME)` references against `lookup`; `$$` escapes a `$`; unknown
/// references stay as written (Kubernetes `expansion.Expand`).
pub fn expand(input: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    let bytes = input.as_bytes();
    let mut out = String::with_capacity(input.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' && i + 1 < bytes.len() {
            match bytes[i + 1] {
                b'$' => {
                    out.push('$');
                    i += 2;
                    continue;
                }
                b'(' => {
                    if let Some(close) = input[i + 2..].find(')') {
                        let name = &input[i + 2..i + 2 + close];
                        match lookup(name) {
                            Some(v) => out.push_str(&v),
                            None => out.push_str(&input[i..i + 3 + close]),
                        }
                        i += 3 + close;
                        continue;
                    }
                }
                _ => {}
            }
        }
        // push one whole UTF-8 character
        let ch_len = input[i..].chars().next().map_or(1, char::len_utf8);
        out.push_str(&input[i..i + ch_len]);
        i += ch_len;
    }
    out
}

/// Whether `name` is a valid environment variable name (C identifier-ish, as Kubernetes
/// accepts: any printable ASCII except `=`, not starting with a digit).
fn is_env_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name
            .bytes()
            .all(|b| (b' '..=b'~').contains(&b) && b != b'=')
}

fn set(env: &mut Vec<EnvVar>, name: String, value: String) {
    if let Some(existing) = env.iter_mut().find(|e| e.name == name) {
        existing.value = value;
    } else {
        env.push(EnvVar { name, value });
    }
}

/// The resolved environment of one container. Returns the variables and warnings
/// (keys of `envFrom` sources that are not valid variable names are skipped, like the
/// kubelet does).
pub fn container_env(
    pod: &Pod,
    container: &Container,
    refs: &PodReferences,
    node: &NodeContext,
) -> Result<(Vec<EnvVar>, Vec<String>), TranslationError> {
    let mut env: Vec<EnvVar> = Vec::new();
    let mut warnings = Vec::new();
    for source in container.env_from.iter().flatten() {
        let prefix = source.prefix.clone().unwrap_or_default();
        let mut pairs: Vec<(String, String)> = Vec::new();
        let objects = [
            source
                .config_map_ref
                .as_ref()
                .map(|r| (ObjectKind::ConfigMap, &r.name, r.optional)),
            source
                .secret_ref
                .as_ref()
                .map(|r| (ObjectKind::Secret, &r.name, r.optional)),
        ];
        for (kind, name, optional) in objects.into_iter().flatten() {
            if let Some(data) = refs.object(kind, name, optional.unwrap_or(false))? {
                pairs.extend(data.text_pairs());
            }
        }
        for (k, v) in pairs {
            let name = format!("{prefix}{k}");
            if is_env_name(&name) {
                set(&mut env, name, v);
            } else {
                warnings.push(format!(
                    "skipped invalid environment variable name {name:?} from envFrom"
                ));
            }
        }
    }
    for var in container.env.iter().flatten() {
        let value = if let Some(from) = &var.value_from {
            let key_ref = from
                .config_map_key_ref
                .as_ref()
                .map(|r| (ObjectKind::ConfigMap, &r.name, &r.key, r.optional))
                .or_else(|| {
                    from.secret_key_ref
                        .as_ref()
                        .map(|r| (ObjectKind::Secret, &r.name, &r.key, r.optional))
                });
            if let Some((kind, name, key, optional)) = key_ref {
                let optional = optional.unwrap_or(false);
                let Some(data) = refs.object(kind, name, optional)? else {
                    continue;
                };
                match data.text(key) {
                    Some(v) => v,
                    None if optional => continue,
                    None => return Err(kind.key_not_found(name, key)),
                }
            } else if let Some(f) = &from.field_ref {
                downward::field_value(pod, node, f)?
            } else if let Some(r) = &from.resource_field_ref {
                let target = match r.container_name.as_deref() {
                    None | Some("") => container,
                    Some(other) => pod
                        .spec
                        .as_ref()
                        .and_then(|s| s.containers.iter().find(|c| c.name == other))
                        .ok_or_else(|| TranslationError::UnknownContainer(other.to_owned()))?,
                };
                downward::resource_value(target, node, r)?
            } else {
                return Err(TranslationError::UnsupportedField(format!(
                    "valueFrom of environment variable {}",
                    var.name
                )));
            }
        } else {
            let current = env.clone();
            let lookup = move |name: &str| {
                current
                    .iter()
                    .find(|e| e.name == name)
                    .map(|e| e.value.clone())
            };
            expand(var.value.as_deref().unwrap_or_default(), &lookup)
        };
        set(&mut env, var.name.clone(), value);
    }
    Ok((env, warnings))
}

#[cfg(test)]
mod tests;
