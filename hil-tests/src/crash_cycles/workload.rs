//! The pods a crash-cycle run creates, changes and deletes, and what each should end as.
//!
//! Two kinds of pod, both with one container named `main`:
//! - a **service** (`restartPolicy: Always`, runs until deleted, exits at once on
//!   SIGTERM): must end Running and Ready on the device, with the image its spec names
//!   now (an image change replaces the container, as the kubelet does);
//! - a **job** (`restartPolicy: Never`, exits with a chosen code): must end Succeeded
//!   (code 0) or Failed (any other code) with that exit code.
//!
//! "Changed" is an image change of a service between two tags of the test image
//! (`spec.containers[*].image` is the one container field Kubernetes lets a pod update).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

use super::CrashCycleError;
use super::rng::SeededRng;

/// The container name of every pod of the run.
pub const CONTAINER: &str = "main";
/// The taint every edge node carries; the pods tolerate it.
const PROVIDER_TAINT: &str = "virtual-kubelet.io/provider";

/// What a pod runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodKind {
    Service,
    Job { exit_code: i32 },
}

/// A pod the run created, as the run last asked for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackedPod {
    pub name: String,
    pub uid: String,
    pub kind: PodKind,
    /// The image the spec names now.
    pub image: String,
    /// The run deleted it: it must leave the API and the device.
    pub deleted: bool,
}

/// One move of the workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    Create {
        name: String,
        kind: PodKind,
        image: String,
    },
    ChangeImage {
        name: String,
        image: String,
    },
    Delete {
        name: String,
    },
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Operation::Create {
                name,
                kind: PodKind::Service,
                ..
            } => write!(f, "create {name}"),
            Operation::Create {
                name,
                kind: PodKind::Job { exit_code },
                ..
            } => {
                write!(f, "create {name} (job, exit {exit_code})")
            }
            Operation::ChangeImage { name, image } => {
                let tag = image.rsplit(':').next().unwrap_or(image);
                write!(f, "change {name} to :{tag}")
            }
            Operation::Delete { name } => write!(f, "delete {name}"),
        }
    }
}

/// Every pod of the run, by name, and how to place new ones.
#[derive(Debug, Clone)]
pub struct Workload {
    pub pods: BTreeMap<String, TrackedPod>,
    /// The two images a service alternates between.
    pub images: [String; 2],
    /// Live (not deleted) pods the run keeps at most.
    pub max_live: usize,
    /// Node selector that keeps the pods on the run's devices.
    pub selector: (String, String),
    next: u64,
}

impl Workload {
    pub fn new(images: [String; 2], max_live: usize, selector: (String, String)) -> Self {
        Self {
            pods: BTreeMap::new(),
            images,
            max_live,
            selector,
            next: 0,
        }
    }

    pub fn live(&self) -> impl Iterator<Item = &TrackedPod> {
        self.pods.values().filter(|p| !p.deleted)
    }

    /// One to four moves, chosen by `rng`: create while below `max_live`, change the
    /// image of a service, delete any live pod.
    pub fn plan(&mut self, rng: &mut SeededRng) -> Vec<Operation> {
        let count = rng.between(1, 4);
        let mut ops = Vec::new();
        // Names already touched by this plan are not touched twice.
        let mut touched: Vec<String> = Vec::new();
        for _ in 0..count {
            let live: Vec<&TrackedPod> =
                self.live().filter(|p| !touched.contains(&p.name)).collect();
            let services: Vec<&&TrackedPod> =
                live.iter().filter(|p| p.kind == PodKind::Service).collect();
            let planned_creates = ops
                .iter()
                .filter(|o| matches!(o, Operation::Create { .. }))
                .count();
            let room = self.live().count() + planned_creates < self.max_live;
            let roll = rng.below(100);
            let op = if room && (roll < 45 || live.is_empty()) {
                self.next += 1;
                let name = format!("cc-{}", self.next);
                let kind = match rng.below(4) {
                    0 => PodKind::Job { exit_code: 0 },
                    1 => PodKind::Job { exit_code: 3 },
                    _ => PodKind::Service,
                };
                Operation::Create {
                    name,
                    kind,
                    image: self.images[0].clone(),
                }
            } else if roll < 75 && !services.is_empty() {
                let Some(p) = rng.pick(&services) else {
                    continue;
                };
                let image = if p.image == self.images[0] {
                    self.images[1].clone()
                } else {
                    self.images[0].clone()
                };
                Operation::ChangeImage {
                    name: p.name.clone(),
                    image,
                }
            } else if let Some(p) = rng.pick(&live) {
                Operation::Delete {
                    name: p.name.clone(),
                }
            } else {
                continue;
            };
            if let Operation::ChangeImage { name, .. } | Operation::Delete { name } = &op {
                touched.push(name.clone());
            }
            ops.push(op);
        }
        ops
    }

    /// Carries out one move against the API and records it.
    pub async fn apply(&mut self, api: &Api<Pod>, op: &Operation) -> Result<(), CrashCycleError> {
        let kube = |what: String| {
            move |e: kube::Error| CrashCycleError::Kubernetes(format!("{what}: {e}"))
        };
        match op {
            Operation::Create { name, kind, image } => {
                let pod = self.manifest(name, *kind, image)?;
                let created = api
                    .create(&PostParams::default(), &pod)
                    .await
                    .map_err(kube(format!("creating pod {name}")))?;
                self.pods.insert(
                    name.clone(),
                    TrackedPod {
                        name: name.clone(),
                        uid: created.metadata.uid.unwrap_or_default(),
                        kind: *kind,
                        image: image.clone(),
                        deleted: false,
                    },
                );
            }
            Operation::ChangeImage { name, image } => {
                let patch =
                    json!([{"op": "replace", "path": "/spec/containers/0/image", "value": image}]);
                let patch: json_patch::Patch = serde_json::from_value(patch)
                    .map_err(|e| CrashCycleError::Other(e.to_string()))?;
                api.patch(name, &PatchParams::default(), &Patch::<()>::Json(patch))
                    .await
                    .map_err(kube(format!("changing the image of pod {name}")))?;
                if let Some(p) = self.pods.get_mut(name) {
                    p.image = image.clone();
                }
            }
            Operation::Delete { name } => {
                api.delete(name, &DeleteParams::default())
                    .await
                    .map_err(kube(format!("deleting pod {name}")))?;
                if let Some(p) = self.pods.get_mut(name) {
                    p.deleted = true;
                }
            }
        }
        Ok(())
    }

    /// Forgets deleted pods the last check found gone everywhere.
    pub fn forget_deleted(&mut self) {
        self.pods.retain(|_, p| !p.deleted);
    }

    fn manifest(&self, name: &str, kind: PodKind, image: &str) -> Result<Pod, CrashCycleError> {
        let (restart_policy, script) = match kind {
            // Exits on SIGTERM within a second: deletions do not wait for the grace.
            PodKind::Service => (
                "Always",
                "trap 'exit 0' TERM; while true; do sleep 1; done".to_owned(),
            ),
            PodKind::Job { exit_code } => ("Never", format!("exit {exit_code}")),
        };
        let (key, value) = &self.selector;
        serde_json::from_value(json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "labels": {"app": "crash-cycles"}},
            "spec": {
                "nodeSelector": {key: value},
                "tolerations": [{"key": PROVIDER_TAINT, "operator": "Exists", "effect": "NoSchedule"}],
                "restartPolicy": restart_policy,
                "terminationGracePeriodSeconds": 3,
                "containers": [{
                    "name": CONTAINER,
                    "image": image,
                    "imagePullPolicy": "Never",
                    "command": ["/bin/sh", "-c", script],
                }],
            }
        }))
        .map_err(|e| CrashCycleError::Other(format!("pod manifest: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_stay_within_the_live_bound_and_never_touch_a_pod_twice() {
        let mut w = Workload::new(
            ["img:a".into(), "img:b".into()],
            3,
            ("k".into(), "v".into()),
        );
        let mut rng = SeededRng::new(7);
        for _ in 0..200 {
            let ops = w.plan(&mut rng);
            assert!(!ops.is_empty());
            let mut names = Vec::new();
            for op in &ops {
                match op {
                    Operation::Create { name, kind, image } => {
                        w.pods.insert(
                            name.clone(),
                            TrackedPod {
                                name: name.clone(),
                                uid: name.clone(),
                                kind: *kind,
                                image: image.clone(),
                                deleted: false,
                            },
                        );
                    }
                    Operation::ChangeImage { name, image } => {
                        assert!(!names.contains(name));
                        names.push(name.clone());
                        let p = w.pods.get_mut(name).unwrap();
                        assert_eq!(p.kind, PodKind::Service);
                        assert_ne!(&p.image, image);
                        p.image = image.clone();
                    }
                    Operation::Delete { name } => {
                        assert!(!names.contains(name));
                        names.push(name.clone());
                        w.pods.get_mut(name).unwrap().deleted = true;
                    }
                }
            }
            assert!(w.live().count() <= 3);
            w.forget_deleted();
        }
    }
}
