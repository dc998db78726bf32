"""Safetensors read/write one tensor (and one block) at a time, with numpy only.

Memory stays bounded by BLOCK bytes whatever the model size: tensors are copied
from the source shard to the output shard in blocks, converted on the way when
the dtype changes."""
import errno
import json
import os
import struct
from pathlib import Path

import numpy as np

from omnilm.errors import UserError

BLOCK = 64 * 2**20
ITEMSIZE = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}
NO_KERNEL_COPY = (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL)  # copy_file_range refused
DTYPE_NAMES = {"float32": "F32", "float16": "F16", "bfloat16": "BF16"}


def read_header(path):
    """(tensors {name: {dtype, shape, data_offsets}}, metadata, data_start). Refuses
    a truncated or corrupt file with one sentence naming it."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) < 8:
            raise UserError(f"{path} is truncated or not a safetensors file ({size} bytes)")
        (n,) = struct.unpack("<Q", raw)
        if n > min(size - 8, 100 * 2**20):
            raise UserError(f"{path} is truncated or not a safetensors file (header length {n} > file)")
        try:
            header = json.loads(f.read(n))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise UserError(f"{path} has a corrupt safetensors header")
    metadata = header.pop("__metadata__", {}) or {}
    data_start = 8 + n
    end = max((t["data_offsets"][1] for t in header.values()), default=0)
    if data_start + end > size:
        raise UserError(f"{path} is truncated: its header needs {data_start + end} bytes, the file has {size}")
    return header, metadata, data_start


def nbytes(dtype, shape):
    count = 1
    for d in shape:
        count *= d
    return count * ITEMSIZE[dtype]


def _to_f32(raw, dtype):
    if dtype == "F32":
        return np.frombuffer(raw, np.float32)
    if dtype == "F16":
        return np.frombuffer(raw, np.float16).astype(np.float32)
    if dtype == "BF16":
        return (np.frombuffer(raw, np.uint16).astype(np.uint32) << 16).view(np.float32)
    raise UserError(f"cannot convert tensors of dtype {dtype}")


def convert_block(raw, src, dst):
    """Bytes of `src` dtype -> bytes of `dst` dtype (bf16 rounds to nearest even)."""
    if src == dst:
        return raw
    x = _to_f32(raw, src)
    if dst == "F32":
        return x.tobytes()
    if dst == "F16":
        return x.astype(np.float16).tobytes()
    if dst == "BF16":
        u = x.view(np.uint32)
        r = (u >> 16) & 1  # round to nearest even, in place to keep passes few
        r += 0x7FFF
        r += u
        r >>= 16
        out = r.astype(np.uint16)
        nan = (u & 0x7FFFFFFF) > 0x7F800000  # keep NaN a NaN (rounding could make it inf)
        if nan.any():
            out[nan] = ((u[nan] >> 16) | 0x40).astype(np.uint16)
        return out.tobytes()
    raise UserError(f"cannot convert tensors to dtype {dst}")


def write_shard(path, entries, metadata=None, on_bytes=None):
    """Write one safetensors file. entries: [(name, dtype, shape, source)] where
    source is (src_path, src_dtype, absolute_offset) to stream from, or a numpy array.
    on_bytes(n) is called as bytes are written (for a progress bar)."""
    header, offset = {}, 0
    for name, dtype, shape, _ in entries:
        size = nbytes(dtype, shape)
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    header = {"__metadata__": metadata or {"format": "pt"}, **header}
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)  # keep tensor data 8-byte aligned
    with open(path, "wb") as out:
        out.write(struct.pack("<Q", len(blob)) + blob)
        for name, dtype, shape, source in entries:
            if isinstance(source, np.ndarray):
                data = np.ascontiguousarray(source).tobytes()
                out.write(data)
                on_bytes and on_bytes(len(data))
            else:
                _copy_tensor(out, source, dtype, shape, on_bytes)


def _copy_tensor(out, source, dst_dtype, shape, on_bytes):
    src_path, src_dtype, start = source
    total = nbytes(src_dtype, shape)
    with open(src_path, "rb") as src:
        done = 0
        if src_dtype == dst_dtype and hasattr(os, "copy_file_range"):
            out.flush()
            try:
                while done < total:  # kernel-side copy: no bytes through Python
                    n = os.copy_file_range(src.fileno(), out.fileno(), min(BLOCK, total - done), start + done)
                    if n == 0:
                        raise UserError(f"{src_path} ended early while copying a tensor")
                    done += n
                    on_bytes and on_bytes(n)
                out.seek(0, os.SEEK_END)
                return
            except OSError as e:  # another filesystem (EXDEV) or none of it: a plain copy
                if e.errno not in NO_KERNEL_COPY:
                    raise
                out.seek(0, os.SEEK_END)
        src.seek(start + done)
        step = BLOCK - BLOCK % 8
        while done < total:
            raw = src.read(min(step, total - done))
            if not raw:
                raise UserError(f"{src_path} ended early while copying a tensor")
            out.write(convert_block(raw, src_dtype, dst_dtype))
            done += len(raw)
            on_bytes and on_bytes(len(raw))
