//! The fake kubelet lives in the library (`sluice::devenv::kubelet`), shared with the demo:
//! `FakeKubelet::start(client, namespace)`, `keep_unready(deployment)`, `make_ready(deployment)`.
//! The fake Node it binds pods to is registered by [`super::TestEnv::get`].

pub use sluice::devenv::FakeKubelet;
