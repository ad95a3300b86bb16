//! What the controllers beside the fleet (agent rollouts, image pre-pull) share about
//! device Nodes: the watch of the Nodes the gateway created and the little kept of each
//! ([`snapshot`]), and label selectors as `kubectl -l` writes them ([`selector`]).

pub mod selector;
pub mod snapshot;
