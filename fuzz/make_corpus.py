#!/usr/bin/env python3
"""Writes the fuzzers' seed corpus (fuzz/corpus/{idx,safetensors}): small valid files covering every element type,
plain and gzip-compressed IDX, and safetensors files with metadata, 0-d, empty and several tensors. Run from any
folder; it rewrites only the files it names."""
import gzip
import json
import pathlib
import struct

here = pathlib.Path(__file__).resolve().parent


def idx(type_code, dims, payload):
    return bytes([0, 0, type_code, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + payload


def safetensors(tensors, metadata=None):
    header, data = {}, b""
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    if metadata is not None:
        header["__metadata__"] = metadata
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def write(folder, name, data):
    path = here / "corpus" / folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


images = idx(0x08, [3, 2, 2], bytes(i * 23 % 256 for i in range(12)))
write("idx", "images_u8.idx", images)
write("idx", "images_u8.idx.gz", gzip.compress(images, mtime=0))
write("idx", "labels_u8.idx", idx(0x08, [4], bytes([1, 2, 3, 255])))
write("idx", "labels_i32.idx.gz", gzip.compress(idx(0x0C, [2], struct.pack(">ii", 7, -256)), mtime=0))
write("idx", "i8.idx", idx(0x09, [2], bytes([0xFF, 0x05])))
write("idx", "i16.idx", idx(0x0B, [2], struct.pack(">hh", -2, 256)))
write("idx", "f32.idx", idx(0x0D, [1, 2], struct.pack(">ff", 1.5, -0.0)))
write("idx", "f64.idx", idx(0x0E, [1], struct.pack(">d", -2.0)))
write("idx", "empty.idx", idx(0x08, [0, 28, 28], b""))
write("idx", "four_dims.idx", idx(0x08, [1, 2, 1, 2], bytes([9, 8, 7, 6])))

f32 = struct.pack("<6f", *[0.5 * i for i in range(6)])
write("safetensors", "one_f32.safetensors", safetensors({"fc.weight": ("F32", [2, 3], f32)}))
write("safetensors", "mixed.safetensors", safetensors({
    "a": ("F64", [2], struct.pack("<2d", 1.0, -3.25)),
    "b": ("I64", [], struct.pack("<q", 938)),
    "c": ("F32", [0, 4], b""),
    "d": ("F32", [1, 1, 2], struct.pack("<2f", 7.0, 8.0)),
}, {"format": "pt"}))
write("safetensors", "training_state.safetensors", safetensors({
    "model.fc.weight": ("F32", [1, 2], struct.pack("<2f", 0.25, 0.75)),
    "optimizer.state.0.step": ("I64", [], struct.pack("<q", 3)),
}, {"braid.training_state": "1", "optimizer": "SGD",
    "optimizer.param_groups": '[{"lr": 0.05, "momentum": 0.9, "params": [0]}]',
    "scheduler": "StepLR", "scheduler.state": '{"last_epoch": 3, "base_lrs": [0.05]}', "extra.epoch": "2"}))
write("safetensors", "empty.safetensors", safetensors({}))
