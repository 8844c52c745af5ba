// Package faults tests that every checkpoint format keeps data safe under
// faults and rejects damaged checkpoints with clear errors. It holds only
// tests; run them with
//
//	go test ./faults
//
// as root on Linux (the full-disk tests mount tmpfs, the permission test
// runs a child process as nobody, and the crash tests trace a child
// process with ptrace, which needs linux/amd64). Tests that lack what
// they need skip with a message that says what is missing.
//
// The formats are the variants of the benchmark harness (bench.Variants,
// which BENCH_FORMATS filters), so a format registered there gets these
// tests without changes here. A format that implements
// formats.LoadVerifier is also tested with verification on, under its
// ID with "+verify" appended. A build with the torch tag adds torchsave.
//
// The tests:
//
//   - A save over an existing checkpoint runs in a child process (this
//     test binary, re-executed) under ptrace, which records every file
//     system call. From that trace the tests check that every file and
//     directory of the new checkpoint is fsynced before the rename that
//     publishes it, and the parent directory after. Then they kill the
//     child with SIGKILL before its first, middle and last write, before
//     the commit rename and before the removal of the replaced
//     checkpoint, and check that the path still loads bit for bit (old
//     or new), that every leftover is recognizable by iox.IsTemp and
//     does not load as anything but a complete checkpoint, and that the
//     next save succeeds.
//   - A save into a full tmpfs, into a read-only one and over a
//     directory that is not a checkpoint must fail with an error that
//     names the path, and leave the old data intact and no leftovers.
//   - Truncated, deleted, renamed, bit-flipped and swapped payloads,
//     damaged metadata, a wrong dtype or shape and an unreadable file:
//     Load, and Verify where the format has it, must fail with an error
//     that names the file (and the tensor, where the damaged file or
//     region belongs to one), or for damage only a checksum can find,
//     detect it when verification is on.
//
// Each outcome is recorded in the table of docs/faults.md, which the
// tests compare with what they observe; go test ./faults -update
// rewrites the table's cells for the variants that ran.
package faults
