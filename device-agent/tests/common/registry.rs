//! A real registry for pull tests: the test bed's [`TestRegistry`] (Debian's
//! docker-registry with TLS the runtime trusts and htpasswd auth), holding the test
//! image under a unique tag.

pub use edge_hil_tests::test_registry::TestRegistry as Registry;

use super::{test_image, unique_uid};

/// Starts a registry on a free port with `user`/`password`, trusted by the runtime
/// (needs root), and pushes the test image to [`Registry::image`].
pub fn start_registry(dir: &std::path::Path, user: &str, password: &str) -> Registry {
    // the test image must be there (and named by EDGE_TEST_IMAGE) before it is pushed
    let _ = test_image();
    Registry::start(dir, user, password, &unique_uid("t"))
}
