//! Why this suite once failed with `unable to lock file, errno = 11`, and that it no longer can.
//! Alone in its own test binary: the plainly spawned child below inherits whatever this process
//! has open, which must not be another test's HDF5 file.

mod common;

use std::process::Command;

use common::*;

#[test]
fn children_spawned_as_the_tests_spawn_incept_hold_no_hdf5_lock() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("held.h5");
    let file = hdf5::File::create(&path)?; // HDF5 locks the file it opens
    // A child spawned plainly inherits the descriptor (HDF5 opens without close-on-exec)…
    let mut plain = Command::new("sleep").arg("30").spawn()?;
    // …one spawned as `common::incept` spawns does not.
    let mut guarded = Command::new("sleep");
    guarded.arg("30");
    inherit_no_descriptors(&mut guarded);
    let mut guarded = guarded.spawn()?;
    drop(file);
    // The lock now lives on in the plain child, which shares the open file.
    let while_plain_child_lives = hdf5::File::open(&path).map(|_| ());
    plain.kill()?;
    plain.wait()?;
    // With only the guarded child alive, the file opens.
    let with_guarded_child = hdf5::File::open(&path).map(|_| ());
    guarded.kill()?;
    guarded.wait()?;
    let error = while_plain_child_lives.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(error.contains("lock"), "the plain child did not hold the lock: {error:?}");
    assert!(with_guarded_child.is_ok(), "{with_guarded_child:?}");
    Ok(())
}
