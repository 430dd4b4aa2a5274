"""Read Lua Torch7 ``.t7`` files (binary format) without Lua.

The original StackGAN demo wrote its char-CNN-RNN sentence embeddings with ``torch.save``: a
table ``{raw_txt = {sentence, ...}, fea_txt = {FloatTensor(1, 1024), ...}}``. This reader covers
what such files hold: nil, numbers, strings, booleans, tables (with shared references) and
``torch.*Tensor`` / ``torch.*Storage`` objects of any element type (CUDA tensors are read as
their CPU equivalents). Tensors come back as numpy arrays; tables whose keys are 1..n come back as
lists, other tables as dicts.

Format (torch7 ``File.lua``): little-endian; every object starts with an int32 type tag. Numbers
are float64; strings and class names are int32 length + bytes; tables and torch objects carry an
int32 reference index (an index seen before is a back-reference). A torch object then has a
version string ``"V 1"`` (absent in files from before versioning), the class name, and its data:
a tensor stores int32 ndim, int64 sizes, int64 strides, int64 1-based storage offset, then its
storage object; a storage stores int64 size and the raw elements.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from stackgan.errors import StackGANError

TYPE_NIL, TYPE_NUMBER, TYPE_STRING, TYPE_TABLE, TYPE_TORCH, TYPE_BOOLEAN = 0, 1, 2, 3, 4, 5
TYPE_FUNCTION, TYPE_RECUR_FUNCTION, TYPE_LEGACY_RECUR_FUNCTION = 6, 8, 7

# element dtype of each storage/tensor kind (torch.CudaTensor is float32 on the GPU)
_DTYPES = {
    "Double": np.float64,
    "Float": np.float32,
    "Cuda": np.float32,
    "CudaDouble": np.float64,
    "Half": np.float16,
    "CudaHalf": np.float16,
    "Long": np.int64,
    "CudaLong": np.int64,
    "Int": np.int32,
    "CudaInt": np.int32,
    "Short": np.int16,
    "Char": np.int8,
    "Byte": np.uint8,
    "CudaByte": np.uint8,
}


# A .t7 reader bounded by the bytes present: tables nest at most this deep (the demo file uses
# 2), and no tensor, storage or table may claim more elements than the file could hold.
MAX_DEPTH = 32
MAX_NDIM = 8


class Torch7Error(StackGANError, ValueError):
    """A .t7 file that cannot be read, with the reason."""


def _kind(class_name: str, suffix: str) -> str | None:
    """ "torch.CudaTensor" -> "Cuda"; None when it is not a torch.<kind><suffix>."""
    if not class_name.startswith("torch.") or not class_name.endswith(suffix):
        return None
    return class_name[len("torch.") : -len(suffix)]


class _Reader:
    def __init__(self, f: BinaryIO, path: Path, size: int) -> None:
        self.f = f
        self.path = path
        self.size = size  # bytes in the file: every length is checked against what is left
        self.depth = 0
        self.objects: dict[int, Any] = {}

    def _left(self) -> int:
        return self.size - self.f.tell()

    def _read(self, n: int) -> bytes:
        if n < 0 or n > self._left():
            raise Torch7Error(f"{self.path}: truncated (wanted {n} more bytes)")
        b = self.f.read(n)
        if len(b) != n:
            raise Torch7Error(f"{self.path}: truncated (wanted {n} more bytes)")
        return b

    def int32(self) -> int:
        return int(struct.unpack("<i", self._read(4))[0])

    def int64(self) -> int:
        return int(struct.unpack("<q", self._read(8))[0])

    def string(self) -> str:
        n = self.int32()
        if n < 0:
            raise Torch7Error(f"{self.path}: negative string length")
        return self._read(n).decode("utf-8", errors="replace")

    def read(self) -> Any:
        tag = self.int32()
        if tag == TYPE_NIL:
            return None
        if tag == TYPE_NUMBER:
            value = struct.unpack("<d", self._read(8))[0]
            return int(value) if float(value).is_integer() else value
        if tag == TYPE_STRING:
            return self.string()
        if tag == TYPE_BOOLEAN:
            return self.int32() == 1
        if tag == TYPE_TABLE:
            return self._table()
        if tag == TYPE_TORCH:
            return self._torch()
        if tag in (TYPE_FUNCTION, TYPE_RECUR_FUNCTION, TYPE_LEGACY_RECUR_FUNCTION):
            raise Torch7Error(f"{self.path}: holds a Lua function, which cannot be read")
        raise Torch7Error(f"{self.path}: unknown type tag {tag} (not a binary .t7 file?)")

    def _table(self) -> Any:
        index = self.int32()
        if index in self.objects:
            return self.objects[index]
        n = self.int32()
        if n < 0 or n * 8 > self._left():  # each entry is at least two 4-byte tags
            raise Torch7Error(f"{self.path}: table of {n} entries does not fit in the file")
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise Torch7Error(f"{self.path}: tables nested deeper than {MAX_DEPTH} levels")
        table: dict[Any, Any] = {}
        self.objects[index] = table
        for _ in range(n):
            key = self.read()
            try:
                table[key] = self.read()
            except TypeError:  # a table or tensor used as a key: unhashable here
                raise Torch7Error(
                    f"{self.path}: a table key that is not a string or number"
                ) from None
        self.depth -= 1
        if table and list(table) == list(range(1, len(table) + 1)):
            as_list = [table[i] for i in range(1, len(table) + 1)]
            self.objects[index] = as_list
            return as_list
        return table

    def _torch(self) -> Any:
        index = self.int32()
        if index in self.objects:
            return self.objects[index]
        version = self.string()
        class_name = self.string() if version.startswith("V ") else version
        if (kind := _kind(class_name, "Storage")) is not None:
            obj: Any = self._storage(kind, class_name)
        elif (kind := _kind(class_name, "Tensor")) is not None:
            obj = self._tensor(kind, class_name)
        else:
            raise Torch7Error(f"{self.path}: cannot read objects of class {class_name}")
        self.objects[index] = obj
        return obj

    def _dtype(self, kind: str, class_name: str) -> np.dtype[Any]:
        if kind not in _DTYPES:
            raise Torch7Error(f"{self.path}: unsupported element type in {class_name}")
        dtype: np.dtype[Any] = np.dtype(_DTYPES[kind]).newbyteorder("<")
        return dtype

    def _storage(self, kind: str, class_name: str) -> np.ndarray:
        dtype = self._dtype(kind, class_name)
        size = self.int64()
        # checked before reading: 2^62 elements is a clean error, not an OverflowError
        if size < 0 or size > self._left() // dtype.itemsize:
            raise Torch7Error(f"{self.path}: truncated (a storage of {size} elements does not fit)")
        data: np.ndarray = np.frombuffer(self._read(size * dtype.itemsize), dtype=dtype).copy()
        return data

    def _tensor(self, kind: str, class_name: str) -> np.ndarray:
        dtype = self._dtype(kind, class_name)
        ndim = self.int32()
        if not 0 <= ndim <= MAX_NDIM:
            raise Torch7Error(f"{self.path}: tensor with {ndim} dimensions")
        sizes = [self.int64() for _ in range(ndim)]
        strides = [self.int64() for _ in range(ndim)]
        offset = self.int64() - 1  # Lua is 1-based
        storage = self.read()
        if ndim == 0 or storage is None:
            return np.empty((0,), dtype=dtype)
        if not isinstance(storage, np.ndarray) or storage.dtype != dtype:
            raise Torch7Error(f"{self.path}: tensor without a storage of its type")
        return self._view(storage, sizes, strides, offset)

    def _view(
        self, storage: np.ndarray, sizes: list[int], strides: list[int], offset: int
    ) -> np.ndarray:
        """The tensor's elements, copied out of its storage. Every size, stride and the offset
        are checked against the storage first: a negative or short stride would read outside
        the buffer, a zero stride would blow a small file up into a huge array."""
        if any(n < 0 for n in sizes) or offset < 0:
            raise Torch7Error(f"{self.path}: tensor with a negative size or offset")
        count = 1
        for n in sizes:
            count *= n
        if count == 0:
            return np.empty(sizes, dtype=storage.dtype.newbyteorder("="))
        if any(s < 1 for n, s in zip(sizes, strides) if n > 1):
            raise Torch7Error(f"{self.path}: tensor with a zero or negative stride")
        # a real tensor never has more elements than its storage (no overlapping views)
        last = offset + sum((n - 1) * s for n, s in zip(sizes, strides))
        if count > len(storage) or last >= len(storage):
            raise Torch7Error(f"{self.path}: tensor reaches past its storage")
        view = np.lib.stride_tricks.as_strided(
            storage[offset:],
            shape=sizes,
            strides=[s * storage.dtype.itemsize for s in strides],
            writeable=False,
        )
        return np.array(view, dtype=storage.dtype.newbyteorder("="))


def load_t7(path: str | Path) -> Any:
    """Read one object (usually a table) from a binary Torch7 file."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            return _Reader(f, path, path.stat().st_size).read()
    except FileNotFoundError:
        raise Torch7Error(f"file not found: {path}") from None


def load_t7_embeddings(path: str | Path) -> tuple[list[str], np.ndarray]:
    """The StackGAN demo's sentence file: (sentences, (N, D) float32 embeddings).

    Accepts ``{raw_txt = {...}, fea_txt = {...}}`` with one embedding per sentence, or a bare
    tensor (then the sentences list is empty).
    """
    obj = load_t7(path)
    if isinstance(obj, np.ndarray):
        return [], obj.reshape(len(obj), -1).astype(np.float32)
    if not isinstance(obj, dict) or "fea_txt" not in obj:
        raise Torch7Error(f"{path}: expected a table with fea_txt (and raw_txt), got {type(obj)}")
    feats = obj["fea_txt"]
    feats = feats if isinstance(feats, list) else [feats]
    if not feats or not all(isinstance(f, np.ndarray) and f.ndim >= 1 and f.size for f in feats):
        raise Torch7Error(f"{path}: fea_txt must be a non-empty list of tensors")
    if len({f.shape[-1] for f in feats}) != 1:
        raise Torch7Error(f"{path}: fea_txt tensors of different widths")
    emb = np.concatenate([np.asarray(f, dtype=np.float32).reshape(-1, f.shape[-1]) for f in feats])
    raw = obj.get("raw_txt", [])
    sentences = [str(s) for s in (raw if isinstance(raw, list) else [raw])]
    if sentences and len(sentences) != len(emb):
        raise Torch7Error(f"{path}: {len(sentences)} sentences for {len(emb)} embeddings")
    return sentences, emb


def load_sentence_vectors(path: str | Path) -> tuple[list[str], np.ndarray]:
    """Stored sentence vectors for ``stackgan sample --embeddings``: the StackGAN demo's
    ``.t7`` (sentences and (N, D) vectors) or an (N, D) ``.npy`` (no sentences), as float32."""
    path = Path(path)
    if not path.is_file():
        raise Torch7Error(f"embeddings file not found: {path}")
    if path.suffix == ".npy":
        arr = _load_npy(path).astype(np.float32)
        if arr.ndim == 0 or arr.size == 0:
            raise Torch7Error(f"{path}: an empty or 0-d array, not (N, D) vectors")
        return [], arr.reshape(len(arr), -1)
    sentences, arr = load_t7_embeddings(path)
    return sentences, arr.reshape(len(arr), -1)


def _load_npy(path: Path) -> np.ndarray:
    """An ``.npy`` array whose header is checked against the file's size before the data is
    read: a 100-byte file claiming a (10^12, 1024) shape is refused, not allocated."""
    from numpy.lib import format as npy_format

    try:
        with open(path, "rb") as f:
            version = npy_format.read_magic(f)
            if version == (1, 0):
                shape, _, dtype = npy_format.read_array_header_1_0(f)
            else:
                shape, _, dtype = npy_format.read_array_header_2_0(f)
            data_bytes = path.stat().st_size - f.tell()
    except (ValueError, OSError, EOFError) as exc:
        raise Torch7Error(f"{path}: not a .npy array ({exc})") from None
    if dtype.hasobject or dtype.kind not in "fiub":
        raise Torch7Error(f"{path}: not a numeric .npy array (dtype {dtype})")
    count = 1
    for n in shape:
        count *= n
    if count * dtype.itemsize > data_bytes:
        raise Torch7Error(
            f"{path}: its header claims shape {shape} ({count * dtype.itemsize} bytes) but the "
            f"file holds {data_bytes} bytes of data"
        )
    try:
        arr: np.ndarray = np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise Torch7Error(f"{path}: not a numeric .npy array ({exc})") from None
    return arr
