// Package iox holds the file-system steps that every format shares and
// that an honest checkpoint benchmark depends on: durable, atomic commits
// (write under a temporary name, fsync the data and the directory, rename
// into place) and dropping a checkpoint's pages from the page cache so a
// following load is cold.
package iox
