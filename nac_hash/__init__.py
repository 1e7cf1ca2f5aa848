"""nac-hash: unsupervised binary hashing with Neural Activation Coding, and Hamming search.

The Python API, in full::

    import nac_hash

    model = nac_hash.load_model()                     # the packaged model, or load_model("run/model.safetensors")
    codes = model.encode(["a.jpg", "b.jpg"])          # (2, 16) uint8: packed 128-bit codes
    nac_hash.hamming(codes[0], codes[1])              # their Hamming distance

    index = nac_hash.build_index(["photos/"], "photos.index")   # or nac_hash.open_index("photos.index")
    for hit in index.search("query.jpg", k=5)[0]:
        print(hit.distance, hit.file)
    index.add(["more-photos/"]); index.remove([hit.id]); index.duplicates(max_distance=4)

Names are imported on first use, so ``import nac_hash`` loads neither torch nor FAISS.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.2.0"

# The facade over the layers below it: each name -> the module that defines it.
_EXPORTS = {
    "Model": "nac_hash.api", "load_model": "nac_hash.api", "hamming": "nac_hash.api",
    "Index": "nac_hash.index_data.api", "open_index": "nac_hash.index_data.api",
    "build_index": "nac_hash.index_data.api",
}
__all__ = ["Index", "Model", "__version__", "build_index", "hamming", "load_model", "open_index"]

if TYPE_CHECKING:
    from nac_hash.api import Model, hamming, load_model
    from nac_hash.index_data.api import Index, build_index, open_index


def __getattr__(name: str) -> object:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'nac_hash' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
