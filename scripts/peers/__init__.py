"""Python peers of the Go checkpoint formats, run as yardsticks beside them.

Each peer saves and loads a state dict with a Python library the way its
users do: torch.save and torch.load, safetensors, plain TensorStore zarr
arrays, and a T5X-style TensorStore checkpoint. The benchmark loop follows
the Go harness's rules: saves are durable and atomic, cold loads start
after the checkpoint's pages are dropped, and a load returns with every
byte in memory. It prints Go benchmark format, so benchstat compares
peers and Go formats in one table.

A state dict here is a dict from tensor name to a contiguous CPU
torch.Tensor, in the order the tensors were saved.

Modules:
    statedict   dtype tables, names and byte views of tensors
    handover    the safetensors file that carries the model from Go
    durable     fsync, atomic commit, page-cache dropping, disk usage
    measure     peak resident memory and page touching
    formats     one module per peer, and the registry of peers
    gobench     Go benchmark format lines
    bench       the timed save and load loop
    cli         the peers.py command line
"""
