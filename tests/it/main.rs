//! warrant's integration tests, in one binary: real files, real processes, real sockets.

mod actors;
mod capabilities;
mod cli;
mod client_document;
mod code_flow;
mod crash;
mod disk_full;
mod exchange;
mod filelog_contract;
mod filelog_recovery;
mod gateway;
mod http;
mod keys;
mod layout;
mod local_identity;
mod mcp_demo;
mod oauth_endpoints;
mod projections;
mod registration;
mod support;
mod tailnet;
mod tailscaled;
mod upstream;
