//! Offline autonomy: how long a device may be offline before Kubernetes may move its
//! pods, and the mutating admission webhook that gives device pods not-ready and
//! unreachable NoExecute tolerations of exactly that long (instead of the cluster's
//! 300 s, after which every pod of an offline device would be evicted).
//!
//! | module | what is there |
//! |---|---|
//! | [`budget`] | the budget of a Node (annotation, label, default) and of a pod not yet bound (pure) |
//! | [`tolerations`] | toleration matching, and the pod's tolerations with the budget: defaults replaced, its own kept (pure) |
//! | [`review`] | one AdmissionReview of a pod: for devices or not, the budget, the JSON patch (pure) |
//! | [`settings`] | the `--default-autonomy` and `--admission-webhook-*` flags, validated |
//! | [`offline_budget`] | how much of an offline device's budget is left (from its NoExecute taint), shown as the Node annotation `edge-kube.io/autonomy-expires` and in `/metrics` |
//! | [`device_nodes`] | a watch over the device Nodes' labels and annotations |
//! | [`startup`] | starting the webhook with the gateway: listener, certificate, Node watch, CA registration |
//! | [`webhook`] | the HTTPS endpoint `/mutate-pods`, and registering its CA in the MutatingWebhookConfiguration |

pub mod budget;
pub mod device_nodes;
pub mod offline_budget;
pub mod review;
pub mod settings;
pub mod startup;
pub mod tolerations;
pub mod webhook;

pub use budget::{AUTONOMY_KEY, AUTONOMY_OFF};
pub use review::{AdmissionDecision, AutonomyPolicy};
pub use settings::{AutonomyArgs, AutonomySettings, WebhookSettings};
