//! A pod's references read for its translation: the ConfigMaps and Secrets (their
//! resourceVersions recorded in the [`ReferenceIndex`]) and its projected service account
//! tokens (held in the [`TokenBook`]; new ones asked of the TokenRequest API, bound to
//! the pod).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;

use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, ServiceAccount};
use kube::ResourceExt;
use kube::api::{Api, PostParams};
use serde::de::DeserializeOwned;

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
    let mut reader = ObjectReader {
        namespace: &ns,
        index,
        watches,
    };
    refs.config_maps = reader
        .read_all(
            Api::<ConfigMap>::namespaced(client.clone(), &ns),
            ObjectKind::ConfigMap,
            &names.config_maps,
            |c| (c.immutable == Some(true), ObjectData::from_config_map(c)),
        )
        .await?;
    refs.secrets = reader
        .read_all(
            Api::<Secret>::namespaced(client.clone(), &ns),
            ObjectKind::Secret,
            &names.secrets,
            |s| (s.immutable == Some(true), ObjectData::from_secret(s)),
        )
        .await?;
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

/// Reads ConfigMaps or Secrets of one namespace, recording what was read in the index.
struct ObjectReader<'a> {
    namespace: &'a str,
    index: &'a mut ReferenceIndex,
    watches: &'a mut WatchChanges,
}

impl ObjectReader<'_> {
    /// The objects `names` of `kind` that exist, with their data (`facts`: whether an
    /// object is immutable, and its data).
    async fn read_all<K>(
        &mut self,
        api: Api<K>,
        kind: ObjectKind,
        names: &BTreeSet<String>,
        facts: fn(&K) -> (bool, ObjectData),
    ) -> Result<BTreeMap<String, ObjectData>, ReferenceError>
    where
        K: kube::Resource + Clone + DeserializeOwned + Debug,
    {
        let mut out = BTreeMap::new();
        for name in names {
            let found = api
                .get_opt(name)
                .await
                .map_err(|source| ReferenceError::Object {
                    kind,
                    name: name.clone(),
                    source,
                })?;
            let object = ObjectRef {
                kind,
                namespace: self.namespace.to_owned(),
                name: name.clone(),
            };
            let rv = found.as_ref().and_then(|o| o.resource_version());
            let (immutable, data) = found.as_ref().map(facts).unzip();
            let w = self
                .index
                .read(&object, rv.as_deref(), immutable.unwrap_or(false));
            self.watches.start.extend(w.start);
            self.watches.stop.extend(w.stop);
            if let Some(data) = data {
                out.insert(name.clone(), data);
            }
        }
        Ok(out)
    }
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
