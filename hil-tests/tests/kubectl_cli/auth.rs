//! Authentication and discovery: `kubectl create token` and what its tokens may do,
//! auth can-i/whoami, version, cluster-info.

use std::process::Command;

use k8s_openapi::api::authentication::v1::TokenReview;
use kube::api::{Api, PostParams};
use serde_json::json;

use super::backend::{Backend, has_row};

/// create token: what its tokens authenticate as, for which audience, and may do.
pub async fn service_account_tokens_from_kubectl_create_token(b: Backend) {
    let ns = "kc-token";
    let client = b.namespace(ns).await;
    let k = b.kubectl(ns);
    let too_short = k
        .run(&["create", "token", "default", "--duration=1m"])
        .await;
    let err = String::from_utf8_lossy(&too_short.stderr);
    assert!(
        err.contains("may not specify a duration less than 10 minutes"),
        "{err}"
    );
    // kubectl with nothing but a token.
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.kubeconfig");
    std::fs::write(&empty, "").unwrap();
    let (url, ca) = (b.url(), b.cluster_ca());
    let with_token = |token: &str, args: &[&str]| {
        let mut c = Command::new(b.kubectl_binary());
        c.arg("--kubeconfig").arg(&empty);
        c.args(["--server", &url, "--token", token]);
        c.arg("--certificate-authority").arg(&ca).args(args);
        async move {
            tokio::task::spawn_blocking(move || c.output().unwrap())
                .await
                .unwrap()
        }
    };
    let sa_user = format!("system:serviceaccount:{ns}:default");

    // A token for the API server's audience authenticates API requests ...
    let api_token = k.ok(&["create", "token", "default"]).await;
    let who = with_token(api_token.trim(), &["auth", "whoami"]).await;
    let who = String::from_utf8_lossy(&who.stdout);
    assert!(has_row(&who, &["Username", &sa_user]), "{who}");
    let get_ns = with_token(api_token.trim(), &["get", "ns", "default", "--no-headers"]).await;
    let err = String::from_utf8_lossy(&get_ns.stderr);
    if b.is_emulator() {
        // Emulator difference: it enforces no RBAC on its own requests; every
        // authenticated request is allowed.
        assert!(get_ns.status.success(), "{err}");
    } else {
        // ... and RBAC lets the default ServiceAccount do nothing.
        assert_eq!(
            err,
            format!(
                "Error from server (Forbidden): namespaces \"default\" is forbidden: User \"{sa_user}\" cannot get resource \"namespaces\" in API group \"\" in the namespace \"default\"\n"
            )
        );
    }

    // A token for another audience does not authenticate API requests ...
    let token = k
        .ok(&["create", "token", "default", "--audience", "edge-kubelet"])
        .await;
    let token = token.trim();
    assert!(token.len() >= 32);
    let who = with_token(token, &["auth", "whoami"]).await;
    if b.is_emulator() {
        // Emulator difference: it authenticates API requests with a token of any
        // audience.
        let who = String::from_utf8_lossy(&who.stdout);
        assert!(has_row(&who, &["Username", &sa_user]), "{who}");
    } else {
        assert_eq!(
            String::from_utf8_lossy(&who.stderr),
            "error: You must be logged in to the server (Unauthorized)\n"
        );
    }
    // ... but TokenReview names the service account, for its audience only.
    let reviews: Api<TokenReview> = Api::all(client.clone());
    let review = |aud: &str| -> TokenReview {
        serde_json::from_value(json!({"spec": {"token": token, "audiences": [aud]}})).unwrap()
    };
    let ok = reviews
        .create(&PostParams::default(), &review("edge-kubelet"))
        .await
        .unwrap()
        .status
        .unwrap();
    assert_eq!(ok.authenticated, Some(true));
    assert_eq!(ok.user.unwrap().username.as_deref(), Some(sa_user.as_str()));
    let wrong = reviews
        .create(&PostParams::default(), &review("other"))
        .await
        .unwrap()
        .status
        .unwrap();
    // kube-apiserver omits `authenticated: false` (Go's omitempty).
    assert_ne!(wrong.authenticated, Some(true));
    assert_eq!(
        wrong.error.unwrap_or_default(),
        "[invalid bearer token, token audiences [\"edge-kubelet\"] is invalid for the target audiences [\"other\"]]"
    );
    // Without audiences the review checks the API server's own (what a kubelet asks):
    // this token is for another audience.
    let implicit: TokenReview = serde_json::from_value(json!({"spec": {"token": token}})).unwrap();
    let implicit = reviews
        .create(&PostParams::default(), &implicit)
        .await
        .unwrap()
        .status
        .unwrap();
    assert_ne!(implicit.authenticated, Some(true));
    assert_eq!(
        implicit.error.unwrap_or_default(),
        "[invalid bearer token, token audiences [\"edge-kubelet\"] is invalid for the target audiences [\"https://kubernetes.default.svc.cluster.local\"]]"
    );
}

/// auth can-i and whoami as the admin, version, cluster-info.
pub async fn auth_can_i_whoami_version_and_cluster_info(b: Backend) {
    let ns = "kc-auth";
    b.namespace(ns).await;
    let k = b.kubectl(ns);
    assert_eq!(k.ok(&["auth", "can-i", "create", "pods"]).await, "yes\n");
    let who = k.ok(&["auth", "whoami"]).await;
    assert!(has_row(&who, &["Username", b.admin_user()]), "{who}");
    assert!(
        who.lines()
            .any(|l| l.starts_with("Groups ") && l.contains("system:masters")),
        "{who}"
    );
    let version = k.ok(&["version"]).await;
    assert!(
        version.contains(&format!("Server Version: {}\n", b.server_version())),
        "{version}"
    );
    let info = k.ok(&["cluster-info"]).await;
    assert!(
        info.contains(&format!(
            "Kubernetes control plane is running at {}",
            b.url()
        )),
        "{info}"
    );
}
