// Package model describes the LLaMA-family checkpoints the suite measures:
// their Hugging Face configs, their tensor inventories (names, shapes and
// dtype, in the order transformers' state_dict lists them), deterministic
// synthetic weights for machines with no weights at hand, and loading of
// real weights from a local Hugging Face directory.
//
// OpenLLaMA-3B is the default: 237 tensors, 3,426,473,600 parameters,
// 6,852,947,200 bytes in float16 (config.json of
// openlm-research/open_llama_3b).
package model
