//! A pod's references read for its translation: the ConfigMaps and Secrets (their
//! resourceVersions recorded in the [`ReferenceIndex`]) and its projected service account
//! tokens (held in the [`TokenBook`]; new ones asked of the TokenRequest API, bound to
//! the pod).

use std::collections::BTreeSet;

use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, ServiceAccount};
use kube::ResourceExt;
use kube::api::{Api, PostParams};

use crate::reference_index::{ObjectRef, ReferenceIndex, WatchChanges};
use crate::token_schedule::{IssuedToken, TokenBook, TokenKey};
use crate::translation::{
    ObjectData, ObjectKind, PodReferences, ReferencedNames, ServiceAccountToken, TokenSpec,
    service_account_of,
};

/// Why a pod's references could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReferenceError {
    #[error("reading {kind:?} {name}: {source}")]
    Object {
        kind: ObjectKind,
        name: String,
        source: kube::Error,
    },
    #[error("requesting a token of service account {service_account}: {source}")]
    Token {
        service_account: String,
        source: kube::Error,
    },
    #[error("the token request for service account {0} returned no token")]
    EmptyToken(String),
}

/// The objects of `names` in namespace `ns`, as the index keys them.
pub fn object_refs(ns: &str, names: &ReferencedNames) -> BTreeSet<ObjectRef> {
    let of = |kind, name: &String| ObjectRef {
        kind,
        namespace: ns.to_owned(),
        name: name.clone(),
    };
    names
        .config_maps
        .iter()
        .map(|n| of(ObjectKind::ConfigMap, n))
        .chain(names.secrets.iter().map(|n| of(ObjectKind::Secret, n)))
        .collect()
}

/// Reads what `pod` references; `watches` collects the watches to start or stop.
pub async fn read(
    client: &kube::Client,
    pod: &Pod,
    names: &ReferencedNames,
    index: &mut ReferenceIndex,
    tokens: &mut TokenBook,
    watches: &mut WatchChanges,
) -> Result<PodReferences, ReferenceError> {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let mut refs = PodReferences::default();
    let mut note = |kind, name: &str, rv: Option<String>, immutable: bool| {
        let object = ObjectRef {
            kind,
            namespace: ns.clone(),
            name: name.to_owned(),
        };
        let w = index.read(&object, rv.as_deref(), immutable);
        watches.start.extend(w.start);
        watches.stop.extend(w.stop);
    };
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    for name in &names.config_maps {
        let found = cms
            .get_opt(name)
            .await
            .map_err(|source| ReferenceError::Object {
                kind: ObjectKind::ConfigMap,
                name: name.clone(),
                source,
            })?;
        let immutable = found.as_ref().is_some_and(|c| c.immutable == Some(true));
        note(
            ObjectKind::ConfigMap,
            name,
            found.as_ref().and_then(|c| c.resource_version()),
            immutable,
        );
        if let Some(cm) = found {
            refs.config_maps
                .insert(name.clone(), ObjectData::from_config_map(&cm));
        }
    }
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    for name in &names.secrets {
        let found = secrets
            .get_opt(name)
            .await
            .map_err(|source| ReferenceError::Object {
                kind: ObjectKind::Secret,
                name: name.clone(),
                source,
            })?;
        let immutable = found.as_ref().is_some_and(|s| s.immutable == Some(true));
        note(
            ObjectKind::Secret,
            name,
            found.as_ref().and_then(|s| s.resource_version()),
            immutable,
        );
        if let Some(s) = found {
            refs.secrets
                .insert(name.clone(), ObjectData::from_secret(&s));
        }
    }
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    tokens.retain_pod(&uid, &names.tokens);
    for spec in &names.tokens {
        let key = TokenKey {
            pod_uid: uid.clone(),
            spec: spec.clone(),
        };
        let now = jiff::Timestamp::now().as_second();
        let token = match tokens.fresh(&key, now) {
            Some(t) => t.token.clone(),
            None => {
                let issued = request_token(client, pod, spec, now).await?;
                let text = issued.token.clone();
                tokens.store(key, issued);
                text
            }
        };
        refs.tokens.insert(spec.clone(), ServiceAccountToken(token));
    }
    Ok(refs)
}

/// Asks the TokenRequest API for a token of the pod's service account, bound to the pod.
async fn request_token(
    client: &kube::Client,
    pod: &Pod,
    spec: &TokenSpec,
    now: i64,
) -> Result<IssuedToken, ReferenceError> {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let service_account = service_account_of(pod);
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            audiences: (!spec.audience.is_empty()).then(|| vec![spec.audience.clone()]),
            expiration_seconds: Some(spec.expiration_seconds),
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".to_owned()),
                kind: Some("Pod".to_owned()),
                name: pod.metadata.name.clone(),
                uid: pod.metadata.uid.clone(),
            }),
            ..TokenRequestSpec::default()
        }),
        ..TokenRequest::default()
    };
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), &ns);
    let answer = api
        .create_token_request(&service_account, &PostParams::default(), &request)
        .await
        .map_err(|source| ReferenceError::Token {
            service_account: format!("{ns}/{service_account}"),
            source,
        })?;
    let status = answer.status.unwrap_or_default();
    let token = status
        .token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ReferenceError::EmptyToken(format!("{ns}/{service_account}")))?;
    Ok(IssuedToken {
        token,
        issued_at: now,
        expires_at: status
            .expiration_timestamp
            .map_or(now + spec.expiration_seconds, |t| t.0.as_second()),
    })
}
