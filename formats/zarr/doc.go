// Package zarr reads and writes zarr v2 arrays the way TensorStore's zarr
// driver stores them, and saves checkpoints as one such array per tensor.
//
// The array primitives (Metadata, ReadMetadata, WriteMetadata, Codec,
// ChunkKey, ReadArray, WriteArray) follow the zarr v2 storage
// specification: a .zarray JSON file and one file per chunk, named by the
// chunk's grid indexes joined with "." or "/", edge chunks stored full
// size, a missing chunk standing for the fill value. The dtype strings are
// numpy's ("<f2", "<f4", ...) plus TensorStore's "bfloat16". Codecs: null
// (raw), gzip, zlib and zstd are read and written; bz2 is read only;
// blosc is rejected with ErrUnsupportedCodec.
//
// TODO: the checkpoint layout and the blosc measurement follow with the
// Format implementation.
package zarr
