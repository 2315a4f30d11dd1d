"""The IDX format of the MNIST files (LeCun): a magic number, dimension sizes, raw data.

Magic: two zero bytes, a type code (0x08 unsigned byte, 0x09 signed byte, 0x0B short,
0x0C int, 0x0D float, 0x0E double) and the number of dimensions; then one big-endian uint32
per dimension; then the values, big-endian. Files may be gzipped (``.gz``).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class IdxError(ValueError):
    """A missing, truncated or malformed IDX file; the message names the file."""


def read_idx(path: Path) -> np.ndarray:
    """The array stored in an IDX file (gzipped or not)."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except FileNotFoundError:
        raise IdxError(f"{path}: no such file") from None
    except (OSError, EOFError) as exc:  # a damaged gzip stream
        raise IdxError(f"{path}: cannot be read ({exc})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in DTYPES:
        raise IdxError(f"{path}: not an IDX file (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise IdxError(f"{path}: truncated header")
    shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", ndim, 4))
    dtype = np.dtype(DTYPES[raw[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise IdxError(
            f"{path}: truncated or padded: {len(raw) - header} data bytes, expected {expected} for shape {shape}"
        )
    return np.frombuffer(raw, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path: Path, array: np.ndarray, gzipped: bool | None = None) -> None:
    """Write ``array`` as IDX (unsigned bytes when it is uint8); gzip when the name ends .gz."""
    code = next(c for c, d in DTYPES.items() if np.dtype(d).newbyteorder("=") == array.dtype.newbyteorder("="))
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    data = header + array.astype(DTYPES[code]).tobytes()
    if gzipped if gzipped is not None else path.suffix == ".gz":
        data = gzip.compress(data)
    path.write_bytes(data)
