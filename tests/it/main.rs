//! warrant's integration tests, in one binary: real files, real processes, real sockets.

mod filelog_contract;
mod filelog_recovery;
