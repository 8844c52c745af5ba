// Package safetensors reads and writes Hugging Face's safetensors format,
// the one transformers saves as model.safetensors.
//
// A file is an 8-byte little-endian header length N, N bytes of JSON
// header, then the tensors' raw little-endian, C-order bytes packed with no
// padding between them. The header maps each tensor name to its dtype
// ("F16", "BF16", "F32", ...), shape and data_offsets [begin, end). The
// offsets count from the first byte after the header, and they must cover
// the data section exactly: no overlaps, no gaps and no trailing bytes.
// The optional "__metadata__" key maps strings to strings.
//
// Files written here pad the header with spaces to a multiple of 8 bytes,
// as the safetensors Python package does. They store tensors in the state
// dict's order, with __metadata__ {"format": "pt"}, because transformers
// (4.46) raises an error on a file without it, and a checksum record
// under ChecksumsKey: each tensor's dtype, shape and CRC-32C, which Verify
// and Load with Options.VerifyOnLoad check. Other readers ignore it. The tests read them back with
// the safetensors Python package (0.4.5). Loading returns tensors in
// data-offset order, which is the saved order for files written here.
//
// Load reads a file either with pread into one allocation that the
// tensors share (codec "read") or through a private memory map whose
// every page is faulted in before Load returns (codec "mmap"). The map
// copies nothing, so it is the faster of the two: BenchmarkLoad with
// CKPTBENCH_SAFETENSORS_MB=512 on a shared 2-core virtual machine
// measured medians of about 1.4 GB/s cold for mmap against 0.7 GB/s for
// read, and about 1 ms against 0.35 s warm. The read codec's memory is
// private, so it stays valid whatever happens to the file.
package safetensors
