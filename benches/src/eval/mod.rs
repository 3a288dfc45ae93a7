//! Detection quality on public labelled data (issue 15): NAB-style scoring ([`score`]) of
//! the agent's detector chain and of NAB's published detectors on the same files ([`data`]).

pub mod data;
pub mod score;
