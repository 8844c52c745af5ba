// Package tensor is the plain tensor core that every other package shares:
// a tensor is a name, a dtype, a shape and its little-endian, C-order bytes.
//
// Nothing here depends on libtorch. Formats read and write these values,
// the benchmarks measure them and the report counts their bytes, so most
// of the suite builds and tests with CGO_ENABLED=0. Only the edges that
// need libtorch (device placement and PyTorch's serializer) convert a
// Tensor to and from a gotch tensor.
package tensor
