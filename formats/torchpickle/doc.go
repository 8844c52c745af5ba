// Package torchpickle reads state dicts saved by PyTorch's torch.save,
// such as the pytorch_model.bin files on the Hugging Face hub, in pure Go.
//
// Since PyTorch 1.6, torch.save writes a zip archive whose records sit
// under one top-level folder (the file's stem, "archive" in some
// writers): data.pkl, a pickle that rebuilds the state dict and refers to
// each storage by a key, and data/<key>, the storage's raw little-endian
// bytes, stored uncompressed. ReadFile unpickles data.pkl with gopickle,
// allowing only the classes a state dict needs
// (torch._utils._rebuild_tensor_v2, _rebuild_parameter, torch.*Storage,
// collections.OrderedDict), and records each storage's key, dtype and
// size. It then reads each storage record with one ReadAt at its offset
// in the archive straight into the tensors' memory, with no element-by-
// element decoding.
//
// The legacy format (torch.save with _use_new_zipfile_serialization=False,
// and every torch.save before 1.6) is read too: a sequence of pickles
// (magic number, protocol version, system info, the state dict, the
// storage keys) followed by each storage as an 8-byte element count and
// its raw bytes.
//
// Tensors must be contiguous views of their storage, as state_dict()
// tensors are. A view may start at an offset in its storage, and tensors
// that share a storage (tied embeddings) share memory in the result. TorchScript
// archives (torch.jit.save, libtorch's serializer), big-endian files and
// pickles of anything but a flat name-to-tensor dict are rejected with an
// error that says so.
//
// Storages, RebuildTensor and FindStorageClass decode the storage
// references that torch.save and libtorch's serializer both pickle, so
// formats/torchsave reads TorchScript archives' data.pkl with them too.
package torchpickle
