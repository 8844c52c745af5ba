// Package bench is the benchmark harness: it loads the model once (real
// weights from MODEL_DIR or seeded synthetic ones), then measures every
// format's save and load under the same rules, next to the disk's own
// limit measured in the same process.
//
// The rules, which the Python peers in scripts/peers.py follow too:
//
//   - A save is durable: the format fsyncs its files and directories
//     inside the timed region. The previous iteration's checkpoint is
//     removed, and dirty pages flushed with sync(2), before the timer
//     starts.
//   - A cold load starts after the checkpoint's pages were evicted with
//     fsync and posix_fadvise(POSIX_FADV_DONTNEED). A warm load starts
//     after every file was read through the page cache. The off-state-B
//     metric counts the bytes that cachestat found in the other state.
//   - A load is done when every byte is in memory the caller can use.
//     The loaded tensors are checked byte for byte against the model once
//     per benchmark, outside the timed region.
//   - Just before each timed operation the harness touches and frees as
//     much fresh memory as the model has (PrimeMemory), so the
//     operation's allocations find memory the kernel holds. On virtual
//     machines with free page reporting, memory freed a few seconds
//     earlier has gone back to the host, and touching it again cost up
//     to 25 times as much on the development VM.
//   - Peak resident memory is reset (/proc/self/clear_refs) before each
//     timed operation and read (VmHWM) after it.
//
// The environment selects what runs, so `go test ./bench` stays quick:
//
//	BENCH_MODEL      model name (default tiny_llama; make bench sets open_llama_3b)
//	BENCH_MODEL_DIR  a Hugging Face directory with real weights (overrides synthetic)
//	BENCH_FORMATS    comma-separated variants such as disk,torchsave,zarr/gzip (default all)
//	BENCH_DIR        scratch directory for checkpoints (default scratch/ in the repository)
//	BENCH_LAYERS     keep only the first N layers of a synthetic model (for profiles)
package bench
