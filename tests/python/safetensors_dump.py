"""Print what the safetensors PyPI package (numpy backend) reads from a safetensors file, as JSON:
{name: {"dtype": header dtype, "numpy_dtype", "shape", "sum" (float64), "elements": {flat index: value}}}.
The elements are those at flat indices 0, 1, n // 3, n // 2 and n - 1 (those that exist).
Usage: python safetensors_dump.py FILE.safetensors"""
import json
import struct
import sys

import numpy as np
from safetensors import safe_open


def main():
    path = sys.argv[1]
    with open(path, "rb") as f:
        (header_len,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(header_len))
    out = {}
    with safe_open(path, framework="np") as f:
        for name in f.keys():
            a = f.get_tensor(name)
            flat = a.reshape(-1)
            n = flat.size
            idx = sorted({i for i in (0, 1, n // 3, n // 2, n - 1) if 0 <= i < n})
            out[name] = {
                "dtype": header[name]["dtype"],
                "numpy_dtype": str(a.dtype),
                "shape": list(a.shape),
                "sum": float(flat.astype(np.float64).sum()),
                "elements": {str(i): float(flat[i]) for i in idx},
            }
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
