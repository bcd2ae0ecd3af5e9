//! The gateway on this machine: the pinned LiteLLM proxy ([`install`]) running a
//! gateway's pod as the kubelet would ([`pod`]) behind a stable loopback address
//! standing in for its Service ([`forward`]), and MCP: the demo's MCP server and an
//! agent's MCP client ([`mcp`]).
//!
//! `litellm-impl demo --with-proxy` and the real-LiteLLM tests use these, so that what
//! they run is what a cluster runs: the rendered `config.yaml`, the container's command
//! and its env resolved from Secrets.

pub mod forward;
pub mod http;
pub mod install;
pub mod mcp;
pub mod pod;
