"""Cross-checks torchsave checkpoints with PyTorch, for formats/torchsave's tests.

    torchsave_check.py COMMAND PATH [COMMAND PATH ...]

runs each command in turn in one process, because importing torch takes
seconds. Every line printed is a JSON object whose "file" is the PATH of
the command that printed it. The commands:

    read PATH
        Loads PATH with torch.jit.load and prints a line for each
        parameter, in named_parameters order: name, dtype, shape, the
        SHA-256 of its C-order bytes and whether it is contiguous. A last
        line reports what torch.load returns for the same file.

    write PATH
        Saves a TorchScript module with torch.jit.save whose parameters
        cover the hard cases (nested names with dots, bfloat16, a scalar, a
        zero-size and a non-contiguous tensor) and prints the same lines
        for what it saved, in order.

    pickle PATH
        Saves a plain dict of tensors with torch.save, the format torchsave
        must reject with a clear error.
"""

import hashlib
import json
import sys
import warnings

import torch


def describe(path, name, t):
    flat = t.detach().contiguous().reshape(-1)
    raw = flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b""
    return {
        "file": path,
        "name": name,
        "dtype": str(t.dtype).removeprefix("torch."),
        "shape": list(t.shape),
        "sha256": hashlib.sha256(raw).hexdigest(),
        "contiguous": t.is_contiguous(),
    }


def read(path):
    module = torch.jit.load(path, map_location="cpu")
    for name, p in module.named_parameters():
        print(json.dumps(describe(path, name, p)))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = torch.load(path, map_location="cpu")
    print(json.dumps({
        "file": path,
        "torch_load_type": type(loaded).__name__,
        "torch_load_warning": " ".join(str(w.message) for w in caught),
    }))


class Block(torch.nn.Module):
    def __init__(self, gen):
        super().__init__()
        # A non-contiguous parameter: the transpose of a 3x5 matrix.
        base = torch.randn(3, 5, generator=gen, dtype=torch.float32)
        self.weight = torch.nn.Parameter(base.t(), requires_grad=False)
        self.scale = torch.nn.Parameter(torch.tensor(1.5, dtype=torch.bfloat16), requires_grad=False)


class Model(torch.nn.Module):
    def __init__(self, gen):
        super().__init__()
        self.embed = torch.nn.Parameter(
            torch.randn(7, 4, generator=gen).to(torch.bfloat16), requires_grad=False)
        self.layers = torch.nn.ModuleList([Block(gen), Block(gen)])
        self.empty = torch.nn.Parameter(torch.zeros(0, 4, dtype=torch.float16), requires_grad=False)
        self.head = torch.nn.Parameter(
            torch.randn(4, 6, generator=gen).to(torch.float16), requires_grad=False)


def write(path):
    gen = torch.Generator().manual_seed(7)
    module = torch.jit.script(Model(gen))
    torch.jit.save(module, path)
    for name, p in module.named_parameters():
        print(json.dumps(describe(path, name, p)))


def pickle(path):
    torch.save({"weight": torch.arange(6, dtype=torch.float16).reshape(2, 3)}, path)


COMMANDS = {"read": read, "write": write, "pickle": pickle}


def main():
    args = sys.argv[1:]
    if not args or len(args) % 2 or any(c not in COMMANDS for c in args[::2]):
        sys.exit("usage: torchsave_check.py read|write|pickle PATH [read|write|pickle PATH ...]")
    for command, path in zip(args[::2], args[1::2]):
        COMMANDS[command](path)


if __name__ == "__main__":
    main()
