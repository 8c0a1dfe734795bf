//! The command's integration tests, one binary for all (linking incept's dependencies once
//! instead of once per file). `hdf5_locking` stays a binary of its own: it needs a process in
//! which no other test has an HDF5 file open.

mod common;

mod bad_images;
mod concurrency;
mod disk_full;
mod export;
mod extract;
mod formats;
mod heads;
mod integrity;
mod report;
mod resume;
mod scan;
mod sharding;
