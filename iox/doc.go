// Package iox contains the file-system steps that every format shares and
// that an honest checkpoint benchmark depends on: durable, atomic commits
// (write under a temporary name, fsync the data and the directory, rename
// into place), the check that a save may replace what is at its path, and
// control of the page cache. DropCache evicts a checkpoint's pages so the
// next load is cold, FillCache reads them in so it is warm, and
// CachedBytes confirms either state with the cachestat system call.
package iox
