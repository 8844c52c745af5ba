// Package safetensors reads and writes Hugging Face's safetensors format,
// the one transformers saves as model.safetensors.
//
// A file is an 8-byte little-endian header length N, N bytes of JSON
// header, then the tensors' raw little-endian, C-order bytes packed with no
// padding between them. The header maps each tensor name to its dtype
// ("F16", "BF16", "F32", ...), shape and data_offsets [begin, end), which
// count from the first byte after the header; the optional "__metadata__"
// key maps strings to strings. The offsets must cover the data section
// exactly: no overlaps, no gaps and no trailing bytes.
//
// Files written here pad the header with spaces to a multiple of 8 bytes,
// as the safetensors Python package does, and store tensors in the state
// dict's order with __metadata__ {"format": "pt"}, which transformers
// checks before it loads a file. The Python package (safe_open,
// load_file), transformers and candle read them. Loading returns tensors
// in data-offset order, which is the saved order for files written here.
//
// Load reads a file either with pread straight into one Go allocation per
// tensor (codec "read") or through a private memory map whose every page
// is faulted in before Load returns (codec "mmap").
package safetensors
