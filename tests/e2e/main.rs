//! End-to-end tests of the `roadhex` binary: real server processes on port 0 with temp data dirs,
//! driven through the CLI and the HTTP API.

mod chaos;
mod cluster;
mod crash;
mod deploy;
mod hostile;
mod openapi;
mod privacy;
mod refusals;
mod rewards;
mod s3;
mod scaleout;
mod signs;
mod sql;
mod support;
mod tiles;
mod upload;
mod vision;
