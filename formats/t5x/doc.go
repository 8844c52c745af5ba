// Package t5x saves and loads checkpoints laid out the way T5X
// (google-research/t5x, t5x/checkpoints.py) writes them: one zarr v2 array
// per parameter, written through TensorStore-compatible files, and a
// msgpack index named "checkpoint".
//
// # Layout
//
// A checkpoint is a directory (T5X names it checkpoint_<step>):
//
//	checkpoint_1/
//	  checkpoint                          msgpack index, written last
//	  model/embed_tokens/weight/.zarray   zarr v2 metadata
//	  model/embed_tokens/weight/0.0       chunk files, one per chunk
//	  model/embed_tokens/weight/1.0
//	  ...
//	  model/layers/0/self_attn/q_proj/weight/.zarray
//	  ...
//
// A tensor's array directory is its name with each "." turned into a
// directory level (zarr.ArrayPath, which also escapes unusual bytes). Real
// T5X instead joins its nested parameter path with "." into one flat
// directory name. Readers find arrays through the index either way, and
// Load follows whatever paths an index records. Index describes what the
// index contains.
//
// Chunk shapes follow T5X's rule (ChunkShape): about 64 MiB per chunk,
// cutting the largest dimension to its next smaller divisor until the
// chunk fits. For OpenLLaMA-3B in float16, the embedding and the output
// head are 4 chunks of [8000, 3200] each, and every other tensor is one
// chunk.
// The default compressor is gzip (level 1), as in T5X; zstd and raw are
// the alternatives.
//
// Unlike T5X, which casts float parameters to float32 before saving
// (its save_dtype default), this package stores each tensor in its own
// dtype, so a float16 model stays float16 on disk; bfloat16 is stored as
// TensorStore's "bfloat16" zarr dtype, as T5X's checkpoint version 3
// does. Options.RestoreDType casts on load, like T5X's restore_dtype.
//
// # Readers
//
// TensorStore's zarr driver opens every array (scripts/t5x_check.py
// does, in the interop test). zarr-python reads the float16 and float32
// arrays but not bfloat16, which it does not know. Load reads indexes
// written by T5X-style Python writers that record TensorStore specs under
// "optimizer"/"target"; it rejects parameters that T5X stores inline in
// the msgpack file and kvstores other than local files.
//
// # Speed and durability
//
// Save and Load run chunks through two stages: CPU goroutines, one per
// core, gather chunks that are not contiguous in the tensor and encode or
// decode compressed ones; up to IOConcurrency goroutines create, write
// and sync or read chunk files. The tensors are already in host memory,
// so the gather step stands where T5X copies arrays off the device. A
// byte budget bounds the chunk bytes in flight and the buffers they need,
// which live outside the Go heap so that the budget bounds resident
// memory. An uncompressed chunk goes between the disk and tensor memory
// with no copy; a compressed one is decoded straight into the tensor. A
// chunk that compresses by less than MinSavings is stored uncompressed
// within its codec's format (see Options.MinSavings).
//
// The I/O choices follow BenchmarkSave and BenchmarkLoad on a shared
// 2-core VM with an ext4 virtual disk, where figures vary by 10-20 %
// between runs. Saves write with O_DIRECT and fdatasync each file. On
// synthetic OpenLLaMA-3B (6.85 GB, 3 runs each) a raw save took 3.6 to
// 4.3 s that way, close to the 3.9 to 4.1 s of one sequential O_DIRECT
// stream of the same bytes. Through the page cache it took 5.4 to 10.1 s,
// likely because the save dirtied pages faster than writeback drained them
// and then waited for reclaim. On a 452 MB model the buffered writes were
// faster (1.66 against 1.30 GiB/s, 8 runs, p < 0.001), which is what
// Options.BufferedWrite is for. Loads open each chunk file through the
// page cache and switch it to O_DIRECT only when the cache does not
// already hold the whole file (iox.FileCachedPages). A cold load then
// reads at the disk's speed (1.14 against 1.00 GiB/s through the cache on
// the 452 MB model, p = 0.002). A warm load of uncompressed chunks maps
// the cached pages copy-on-write instead of copying them (see
// Options.CopyCached). On synthetic OpenLLaMA-3B that took 0.41 to
// 0.45 s, and copying the same pages took 0.65 to 1.96 s (4 runs each). Preallocating files with fallocate and
// splitting a chunk's write into concurrent 8 MiB pieces made no
// measurable difference (p = 0.24 and 0.59), so neither is done.
//
// Every chunk file is fdatasynced, every directory fsynced and the index
// written last under iox.TempPath, then the directory is published with
// iox.Commit, so a save that fails or is interrupted leaves any previous
// checkpoint at the same path intact and loadable. The commit deletes
// whatever it replaces, so Save rejects a path that holds anything but a
// T5X checkpoint (a directory whose index is a msgpack map with
// "version" and "optimizer") or an empty directory.
//
// # Integrity
//
// Save records the CRC-32C of every chunk's uncompressed bytes in the
// index (Array.CRC32C, under the key "chunk_crc32c", which the Python
// readers skip). The goroutine that first reads a chunk's bytes computes
// it: the CPU goroutine while it gathers a chunk or before it encodes
// one, the I/O goroutine as it writes an uncompressed chunk straight from
// the tensor, a piece at a time so that the kernel's copy finds each
// piece in the CPU cache. In BenchmarkSave on tmpfs, where a save costs
// only CPU time, this raised a raw save's CPU time per 452 MB from about
// 190 to 246 ms (8 runs, p = 0.02, on a 2-core VM busy with other
// work), against 293 ms when each chunk was checksummed whole before its
// write. gzip saves stayed within the noise. Verify checks every chunk
// without keeping the tensors,
// and Load with Options.VerifyOnLoad (or WithVerifyOnLoad) checks each
// chunk as it lands. gzip's CRC-32 trailer and zstd's framing catch some
// damage by themselves, but not a chunk file swapped with another of the
// same size, nor any damage to uncompressed chunks. Indexes without
// checksums, written before they were added or by other writers, still
// load; Verify and verifying loads reject them.
package t5x
