"""Deterministic mutators: byte-level, and structure-aware for the formats lumbarview reads.

Every mutator is ``f(data, rng, pool) -> bytes``: ``rng`` is a :class:`random.Random` seeded
by the caller (so an input is a pure function of (run seed, target, index)), ``pool`` the
other seeds of the target (for splicing). :func:`mutate` stacks 1-4 mutations chosen by kind.
"""

from __future__ import annotations

import gzip
import json
import random
import re
import struct
import zlib
from collections.abc import Callable, Sequence
from typing import Any

Mutator = Callable[[bytes, random.Random, Sequence[bytes]], bytes]

MAX_INPUT_BYTES = 4 * 1024 * 1024

# Numbers as text: what a hostile header holds instead of a sane value.
TEXT_NUMBERS = ["0", "-1", "-0", "1", "2", "3", "4", "5", "100000", "65535", "65536", "2147483647", "2147483648",
                "-2147483649", "4294967296", "18446744073709551616", "9" * 200, "-" + "9" * 200, "1e308", "-1e308",
                "1e-320", "nan", "NaN", "inf", "-inf", "Infinity", "0x10", "1.5", "-0.0", "", " ", "1 2", "1e999",
                "1" * 5000]

INTERESTING_INTS = [0, 1, 2, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000,
                    0xFFFFFFFF, 0xFFFFFFFE, 0x7FFFFFFFFFFFFFFF, 0xFFFFFFFFFFFFFFFF, 3, 7, 9, 1000, 4096]
INTERESTING_FLOATS = [0.0, -0.0, float("nan"), float("inf"), float("-inf"), 1e308, -1e308, 1e-45, 3.4e38, -1.0,
                      1e30, 0.5]


# -- byte level ---------------------------------------------------------------------------------
def _pos(data: bytes, rng: random.Random) -> int:
    return rng.randrange(len(data) + 1) if data else 0


def flip_bits(data: bytes, rng: random.Random, pool: Sequence[bytes]) -> bytes:
    if not data:
        return bytes([rng.randrange(256)])
    out = bytearray(data)
    for _ in range(rng.choice([1, 1, 2, 4, 8])):
        i = rng.randrange(len(out))
        out[i] ^= 1 << rng.randrange(8)
    return bytes(out)


def set_bytes(data: bytes, rng: random.Random, pool: Sequence[bytes]) -> bytes:
    if not data:
        return data
    out = bytearray(data)
    for _ in range(rng.choice([1, 2, 3, 8])):
        out[rng.randrange(len(out))] = rng.choice([0, 0xFF, 0x7F, 0x80, rng.randrange(256)])
    return bytes(out)


def insert_bytes(data: bytes, rng: random.Random, pool: Sequence[bytes]) -> bytes:
    i = _pos(data, rng)
    n = rng.choice([1, 2, 4, 16, 100, 1000])
    fill = rng.choice([b"\x00", b"\xff", b"A", bytes([rng.randrange(256)])]) * n if rng.random() < 0.5 else \
        rng.randbytes(n)
    return data[:i] + fill + data[i:]


def delete_chunk(data: bytes, rng: random.Random, pool: Sequence[bytes]) -> bytes:
    if len(data) < 2:
        return data
    i = rng.randrange(len(data))
    n = min(len(data) - i, rng.choice([1, 2, 4, 16, 128, 1024, len(data)]))
    return data[:i] + data[i + n:]


def duplicate_chunk(data: bytes, rng: random.Random, pool: Sequence[bytes]) -> bytes:
    if not data:
        return data
    i = rng.randrange(len(data))
    n = min(len(data) - i, rng.choice([1, 4, 16, 128, 1024]))
    j = _pos(data, rng)
    chunk = data[i:i + n] * rng.choice([1, 1, 2, 16])
    return data[:j] + chunk + data[j:]


def truncate(data: bytes, rng: random.Random, pool: Sequence[bytes]) -> bytes:
    return data[:rng.randrange(len(data) + 1)] if data else data


def splice(data: bytes, rng: random.Random, pool: Sequence[bytes]) -> bytes:
    if not pool:
        return flip_bits(data, rng, pool)
    other = rng.choice(pool)
    i, j = _pos(data, rng), _pos(other, rng)
    return data[:i] + other[j:]


def interesting_int(data: bytes, rng: random.Random, pool: Sequence[bytes]) -> bytes:
    if not data:
        return data
    width, fmt = rng.choice([(1, "B"), (2, "H"), (4, "I"), (8, "Q")])
    value = rng.choice(INTERESTING_INTS) & ((1 << (8 * width)) - 1)
    if rng.random() < 0.3:
        value = (-value) & ((1 << (8 * width)) - 1)
    packed = struct.pack(rng.choice("<>") + fmt, value)
    i = rng.randrange(max(1, len(data) - width + 1))
    return data[:i] + packed + data[i + width:]


def _fit(fmt: str, value: float) -> float:
    """``value`` as a float32 can hold it (beyond the range: infinity of the same sign)."""
    if fmt.endswith("f") and abs(value) > 3.4e38 and value == value:
        return float("inf") if value > 0 else float("-inf")
    return value


def interesting_float(data: bytes, rng: random.Random, pool: Sequence[bytes]) -> bytes:
    if not data:
        return data
    fmt = rng.choice(["<f", "<d", ">f", ">d"])
    packed = struct.pack(fmt, _fit(fmt, rng.choice(INTERESTING_FLOATS)))
    i = rng.randrange(max(1, len(data) - len(packed) + 1))
    return data[:i] + packed + data[i + len(packed):]


BYTE_MUTATORS: list[Mutator] = [flip_bits, set_bytes, insert_bytes, delete_chunk, duplicate_chunk, truncate,
                                splice, interesting_int, interesting_float]


# -- text numbers ---------------------------------------------------------------------------------
_NUMBER = re.compile(rb"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def replace_number(data: bytes, rng: random.Random, pool: Sequence[bytes]) -> bytes:
    """One number written in the text replaced by a hostile one."""
    spans = [m.span() for m in _NUMBER.finditer(data[:200_000])]
    if not spans:
        return insert_bytes(data, rng, pool)
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        a, b = rng.choice(spans)
        data = data[:a] + rng.choice(TEXT_NUMBERS).encode() + data[b:]
        spans = [m.span() for m in _NUMBER.finditer(data[:200_000])] or [(0, 0)]
    return data


# -- key = value headers (MetaImage, NRRD) --------------------------------------------------------
_MHA_KEYS = [b"NDims", b"DimSize", b"ElementSpacing", b"Offset", b"TransformMatrix", b"ElementType",
             b"ElementNumberOfChannels", b"CompressedData", b"CompressedDataSize", b"HeaderSize",
             b"ElementByteOrderMSB", b"BinaryData", b"ElementDataFile", b"AnatomicalOrientation"]
_NRRD_KEYS = [b"dimension", b"sizes", b"space directions", b"space origin", b"type", b"encoding", b"endian",
              b"data file", b"space", b"kinds", b"line skip", b"byte skip", b"spacings"]
_HOSTILE_VALUES = [b"-1", b"0", b"100000", b"9" * 200, b"nan", b"inf", b"0 0 0", b"-1 -1 -1", b"1e308 1e308 1e308",
                   b"/etc/passwd", b"../../etc/passwd", b"LIST", b"LOCAL", b"MET_DOUBLE", b"MET_UCHAR_ARRAY",
                   b"MET_FLOAT", b"MET_OTHER", b"(nan,0,0) (0,1,0) (0,0,1)", b"(1e308,0,0) (0,1,0) (0,0,1)",
                   b"none none none", b"True", b"gzip", b"raw", b"%s-%d.raw 0 3 1", b"1000 1000 1800",
                   b"0 0 0 0 0 0 0 0 0", b"1 0 0 0 1 0 0 0 0", b"nan nan nan nan nan nan nan nan nan",
                   b"4294967296 4294967296 1", b"double", b"block", b"int64", b"\x00", b""]


def _header_split(data: bytes) -> tuple[bytes, bytes]:
    """(text header, binary rest) of a MetaImage or NRRD file."""
    m = re.search(rb"ElementDataFile\s*=\s*[^\r\n]*\r?\n", data[:65536])
    if m:
        return data[:m.end()], data[m.end():]
    i = data.find(b"\n\n", 0, 65536)
    if data.startswith(b"NRRD") and i >= 0:
        return data[:i + 2], data[i + 2:]
    return data, b""


def mutate_keyvalue(data: bytes, rng: random.Random, pool: Sequence[bytes]) -> bytes:
    header, rest = _header_split(data)
    lines = header.splitlines(keepends=True)
    if not lines:
        return insert_bytes(data, rng, pool)
    keys = _NRRD_KEYS if data.startswith(b"NRRD") else _MHA_KEYS
    sep = b": " if data.startswith(b"NRRD") else b" = "
    op = rng.randrange(7)
    last = len(lines) - 1 if rest else len(lines)
    body = max(1, last)
    i = rng.randrange(body) if not data.startswith(b"NRRD") else rng.randrange(1, max(2, body))
    i = min(i, len(lines) - 1)
    line = lines[i]
    if op == 0:  # a value replaced by a hostile one
        k, s, _ = line.partition(b"=" if b"=" in line else b":")
        lines[i] = k + s + b" " + rng.choice(_HOSTILE_VALUES) + b"\n"
    elif op == 1:  # numbers in a value replaced
        lines[i] = replace_number(line, rng, pool)
    elif op == 2:  # a key dropped
        del lines[i]
    elif op == 3:  # a key duplicated (with another value)
        k, s, _ = line.partition(b"=" if b"=" in line else b":")
        lines.insert(i, k + s + b" " + rng.choice(_HOSTILE_VALUES) + b"\n")
    elif op == 4:  # a known key added
        lines.insert(rng.randrange(1 if data.startswith(b"NRRD") else 0, body),
                     rng.choice(keys) + sep + rng.choice(_HOSTILE_VALUES) + b"\n")
    elif op == 5:  # dimension claims changed together
        lines[i] = line.replace(b"3", rng.choice([b"-1", b"100000", b"0", b"4", b"2", b"9" * 200]))
    else:  # lines swapped
        j = rng.randrange(len(lines))
        lines[i], lines[j] = lines[j], lines[i]
    out = b"".join(lines) + rest
    if rest and rng.random() < 0.2:
        out = out[:len(out) - rng.randrange(len(rest) + 1)]
    return out


#: Sizes that feed an allocation: the edges of every integer width, a tebibyte, beyond int64.
HOSTILE_SIZES = [0, 1, -1, 2, 255, 65_535, 65_536, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**40, 2**53 + 1, 2**63 - 1,
                 2**63, 2**64, 10**25, 1000, 100_000, 1_000_000]
#: The header fields of MetaImage and NRRD whose value sizes an allocation or a skip.
_MHA_SIZE_KEYS = [b"DimSize", b"HeaderSize", b"CompressedDataSize", b"ElementNumberOfChannels", b"NDims"]
_NRRD_SIZE_KEYS = [b"sizes", b"byte skip", b"line skip", b"dimension"]


def hostile_size(data: bytes, rng: random.Random, pool: Sequence[bytes]) -> bytes:
    """One header field that sizes an allocation (a dimension, a header size, a skip) set to a
    hostile size, every number in it or one of them, added when the header lacks it."""
    header, rest = _header_split(data)
    nrrd = data.startswith(b"NRRD")
    keys = _NRRD_SIZE_KEYS if nrrd else _MHA_SIZE_KEYS
    sep = b": " if nrrd else b" = "
    key = rng.choice(keys)
    size = str(rng.choice(HOSTILE_SIZES)).encode()
    lines = header.splitlines(keepends=True)
    for n, line in enumerate(lines):
        name = line.split(b":" if nrrd else b"=", 1)[0].strip()
        if name == key:
            k, s, value = line.partition(b":" if nrrd else b"=")
            numbers = value.split() or [b"1"]
            if rng.random() < 0.5:
                numbers = [size] * len(numbers)
            else:
                numbers[rng.randrange(len(numbers))] = size
            lines[n] = k + s + b" " + b" ".join(numbers) + b"\n"
            break
    else:
        at = 1 if nrrd else 0
        if not nrrd:  # before ElementDataFile, which ends a MetaImage header
            at = next((n for n, line in enumerate(lines) if line.startswith(b"ElementDataFile")), len(lines))
        elif rest:
            at = max(1, len(lines) - 1)
        lines.insert(at, key + sep + size + b"\n")
    return b"".join(lines) + rest


#: NIfTI-1 fields that size an allocation: dim[0..7] (int16 at 40) and vox_offset (float at 108).
def hostile_nifti_size(data: bytes, rng: random.Random, pool: Sequence[bytes]) -> bytes:
    gz = data[:2] == b"\x1f\x8b"
    try:
        raw = gzip.decompress(data) if gz else data
    except (OSError, EOFError, zlib.error):
        return rng.choice(BYTE_MUTATORS)(data, rng, pool)
    if len(raw) < 348:
        return rng.choice(BYTE_MUTATORS)(data, rng, pool)
    out = bytearray(raw)
    if rng.random() < 0.5:
        struct.pack_into("<f", out, 108, _fit("<f", float(rng.choice(HOSTILE_SIZES))))
    else:
        axis = rng.randrange(1, 8)
        value = rng.choice([0, -1, 1, 32_767, -32_768, 1000, 20_000])
        struct.pack_into("<h", out, 40 + 2 * axis, value)
    body = bytes(out)
    return gzip.compress(body, compresslevel=1, mtime=0) if gz else body


def zlib_bomb(data: bytes, rng: random.Random, pool: Sequence[bytes]) -> bytes:
    """A compressed MetaImage whose stream inflates far beyond (or short of) its declared size,
    or is damaged."""
    header, rest = _header_split(data)
    if not rest:
        return mutate_keyvalue(data, rng, pool)
    text = re.sub(rb"CompressedData\s*=\s*\w+\r?\n", b"", header)
    text = re.sub(rb"CompressedDataSize\s*=\s*\d+\r?\n", b"", text)
    choice = rng.randrange(3)
    if choice == 0:
        payload = zlib.compress(b"\x00" * rng.choice([1 << 20, 16 << 20, 64 << 20]), 9)
    elif choice == 1:
        payload = zlib.compress(rest, 6)
        cut = rng.randrange(len(payload))
        payload = payload[:cut] + bytes([payload[cut] ^ 0x55]) + payload[cut + 1:] if payload else payload
    else:
        payload = zlib.compress(rest, 6)[: rng.randrange(2, 64)]
    extra = b"CompressedData = True\nCompressedDataSize = " + str(len(payload)).encode() + b"\n"
    m = re.search(rb"ElementDataFile", text)
    at = m.start() if m else len(text)
    return text[:at] + extra + text[at:] + payload


# -- JSON -----------------------------------------------------------------------------------------
_JSON_VALUES: list[Any] = [5, -1, 0, None, True, "", "x" * 1000, [], {}, 1e308, [1, 2], {"a": 1}, "nan",
                           float("inf"), int("9" * 400), [[[[]]]], "LPS", "RAS",
                           # sizes and positions a session file may hold (planes, cursors, windows)
                           [65536, 65536], [10000, 10000], [1e308, 1e308, 1e308], [-1e308, 0.0, 1e308],
                           [5e5, 0.0, 0.0], 2**63, 1e25, "\x1b]0;title\x07", "\ud800"]


def _nodes(doc: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path]
    if len(out) > 2000:
        return out
    if isinstance(doc, dict):
        for k, v in list(doc.items())[:50]:
            out.extend(_nodes(v, (*path, k)))
    elif isinstance(doc, list):
        for i, v in enumerate(doc[:50]):
            out.extend(_nodes(v, (*path, i)))
    return out


def _set(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    parent = doc
    for k in path[:-1]:
        parent = parent[k]
    parent[path[-1]] = value
    return doc


def mutate_json(data: bytes, rng: random.Random, pool: Sequence[bytes]) -> bytes:
    try:
        doc = json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError):
        return rng.choice(BYTE_MUTATORS)(data, rng, pool)
    op = rng.randrange(6)
    if op == 0:  # deep nesting, as text (json.dumps would recurse)
        depth = rng.choice([100, 1000, 10000, 100000])
        opener, closer = rng.choice([(b"[", b"]"), (b'{"a":', b"}")])
        inner = data if rng.random() < 0.5 else b"1"
        if rng.random() < 0.5:
            return opener * depth + inner + closer * depth
        nodes = _nodes(doc)
        doc = _set(doc, rng.choice(nodes), "@@DEEP@@")
        text = json.dumps(doc).encode()
        return text.replace(b'"@@DEEP@@"', opener * depth + b"1" + closer * depth, 1)
    nodes = _nodes(doc)
    path = rng.choice(nodes)
    if op == 1:  # huge integer
        doc = _set(doc, path, "@@INT@@")
        text = json.dumps(doc).encode()
        return text.replace(b'"@@INT@@"', rng.choice([b"9" * 5000, b"-" + b"9" * 50, b"1" * 40, b"1e999"]), 1)
    if op == 2:  # wrong type
        value = rng.choice(_JSON_VALUES)
        if (isinstance(value, float) and value != value) or value in (float("inf"),):
            value = 1e308
        doc = _set(doc, path, value)
    elif op == 3 and path:  # a key or item removed
        parent = doc
        for k in path[:-1]:
            parent = parent[k]
        del parent[path[-1]]
    elif op == 4 and path:  # a list made long, or an item duplicated
        parent = doc
        for k in path[:-1]:
            parent = parent[k]
        item = parent[path[-1]]
        doc = _set(doc, path, [item] * rng.choice([2, 100, 10000]))
    else:
        text = json.dumps(doc).encode()
        return replace_number(text, rng, pool)
    return json.dumps(doc, allow_nan=True).encode()


# -- CSV ------------------------------------------------------------------------------------------
def mutate_csv(data: bytes, rng: random.Random, pool: Sequence[bytes]) -> bytes:
    lines = data.split(b"\n")
    i = rng.randrange(len(lines))
    op = rng.randrange(7)
    if op == 0:  # a huge cell
        cells = lines[i].split(b",")
        j = rng.randrange(len(cells))
        cells[j] = rng.choice([b"x", b"9", b'"', b"\xe9"]) * rng.choice([70_000, 200_000, 1_000_000])
        lines[i] = b",".join(cells)
    elif op == 1:  # NULs
        k = rng.randrange(len(lines[i]) + 1)
        lines[i] = lines[i][:k] + b"\x00" * rng.choice([1, 5]) + lines[i][k:]
    elif op == 2:  # ragged rows
        cells = lines[i].split(b",")
        if rng.random() < 0.5 and len(cells) > 1:
            del cells[rng.randrange(len(cells))]
        else:
            cells.extend([b"1"] * rng.choice([1, 5, 1000]))
        lines[i] = b",".join(cells)
    elif op == 3:  # an unbalanced quote
        k = rng.randrange(len(lines[i]) + 1)
        lines[i] = lines[i][:k] + b'"' + lines[i][k:]
    elif op == 4:  # numbers
        lines[i] = replace_number(lines[i], rng, pool)
    elif op == 5:  # many rows
        lines.extend([lines[-2] if len(lines) > 1 else b"1"] * rng.choice([10, 1000]))
    else:  # the header duplicated or removed
        if rng.random() < 0.5:
            lines.insert(1, lines[0])
        else:
            del lines[0]
    return b"\n".join(lines)


# -- XML (PASCAL VOC) -----------------------------------------------------------------------------
def mutate_xml(data: bytes, rng: random.Random, pool: Sequence[bytes]) -> bytes:
    op = rng.randrange(5)
    if op == 0:
        return replace_number(data, rng, pool)
    if op == 1:  # deep nesting
        depth = rng.choice([100, 1000, 100000])
        at = data.rfind(b"</annotation>")
        at = at if at >= 0 else len(data)
        return data[:at] + b"<object>" * depth + b"</object>" * depth + data[at:]
    if op == 2:  # an element dropped
        tags = [m.span() for m in re.finditer(rb"<(\w+)>[^<]*</\1>", data)]
        if tags:
            a, b = rng.choice(tags)
            return data[:a] + data[b:]
    if op == 3:  # an entity bomb / external entity
        dtd = rng.choice([b'<!DOCTYPE a [<!ENTITY e "xxxxxxxxxx"><!ENTITY f "&e;&e;&e;&e;&e;&e;">]>',
                          b'<!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]>'])
        return dtd + data
    tags = [m.span(1) for m in re.finditer(rb">([^<]*)<", data)]
    if tags:
        a, b = rng.choice(tags)
        return data[:a] + rng.choice([b"inf", b"-inf", b"nan", b"-5", b"1e308", b"9" * 200, b"", b"x"]) + data[b:]
    return flip_bits(data, rng, pool)


# -- PNG (chunks with valid CRCs, so the decoder gets past the checksum) --------------------------
def _png_chunks(data: bytes) -> list[tuple[bytes, bytes]] | None:
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return None
    chunks, i = [], 8
    while i + 8 <= len(data):
        (n,) = struct.unpack(">I", data[i:i + 4])
        kind = data[i + 4:i + 8]
        chunks.append((kind, data[i + 8:i + 8 + n]))
        i += 12 + n
    return chunks


def _png_join(chunks: list[tuple[bytes, bytes]]) -> bytes:
    out = [b"\x89PNG\r\n\x1a\n"]
    for kind, body in chunks:
        out.append(struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body)))
    return b"".join(out)


def mutate_png(data: bytes, rng: random.Random, pool: Sequence[bytes]) -> bytes:
    chunks = _png_chunks(data)
    if not chunks:
        return flip_bits(data, rng, pool)
    op = rng.randrange(5)
    if op == 0 and chunks[0][0] == b"IHDR":  # dimensions, depth, colour type
        body = bytearray(chunks[0][1].ljust(13, b"\x00"))
        field = rng.randrange(4)
        if field == 0:
            body[0:4] = struct.pack(">I", rng.choice([0, 1, 65535, 100000, 0x7FFFFFFF, 0xFFFFFFFF]))
        elif field == 1:
            body[4:8] = struct.pack(">I", rng.choice([0, 1, 65535, 100000, 0x7FFFFFFF, 0xFFFFFFFF]))
        elif field == 2:
            body[8] = rng.choice([0, 1, 2, 4, 8, 16, 32, 255])
        else:
            body[9] = rng.choice([0, 2, 3, 4, 6, 7, 255])
        chunks[0] = (b"IHDR", bytes(body))
    elif op == 1:  # a decompression bomb in IDAT
        size = rng.choice([1 << 20, 64 << 20])
        bomb = zlib.compress(b"\x00" * size, 9)
        chunks = [c for c in chunks if c[0] != b"IDAT"]
        chunks.insert(max(1, len(chunks) - 1), (b"IDAT", bomb))
    elif op == 2:  # a zTXt / iCCP bomb
        text = zlib.compress(b"A" * rng.choice([1 << 20, 64 << 20]), 9)
        kind = rng.choice([b"zTXt", b"iCCP"])
        chunks.insert(1, (kind, b"Comment\x00\x00" + text))
    elif op == 3:  # a chunk body mutated, CRC fixed
        j = rng.randrange(len(chunks))
        kind, body = chunks[j]
        chunks[j] = (kind, rng.choice(BYTE_MUTATORS)(body, rng, pool))
    else:  # a chunk dropped or duplicated
        j = rng.randrange(len(chunks))
        if rng.random() < 0.5:
            del chunks[j]
        else:
            chunks.insert(j, chunks[j])
    return _png_join(chunks)


# -- DICOM (explicit VR little endian elements, edited in place) ----------------------------------
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR", b"UT", b"SV", b"UV"}
_DICOM_VALUES = [b"1e308\\1e308\\0", b"nan\\nan\\nan", b"inf", b"-inf", b"1\\0\\0\\0\\1\\0", b"0\\0\\0\\0\\0\\0",
                 b"9" * 200, b"-1", b"0", b"65535", b"4294967296", b"1.2.840.10008.1.2.1.99", b"1.2.840.10008.1.2.4.50",
                 b"1.2.840.10008.1.2.1.99", b"1.2.840.10008.1.2.5", b"1.2.840.10008.1.2.2", b"MONOCHROME2",
                 b"RGB", b"YBR_FULL", b"PALETTE COLOR", b"", b"x", b"1e999"]


def dicom_elements(data: bytes) -> list[tuple[int, int, int, int, int]]:
    """(tag, offset, vr_offset, length_offset+length_size<<32 packed, value_offset) for the
    top-level explicit-VR-little-endian elements after the preamble; empty when not that form."""
    out: list[tuple[int, int, int, int, int]] = []
    i = 132 if data[128:132] == b"DICM" else 0
    while i + 8 <= len(data) and len(out) < 400:
        group, elem = struct.unpack_from("<HH", data, i)
        vr = data[i + 4:i + 6]
        if not (65 <= vr[0] <= 90 and 65 <= vr[1] <= 90):
            break
        if vr in _LONG_VRS:
            if i + 12 > len(data):
                break
            (n,) = struct.unpack_from("<I", data, i + 8)
            out.append(((group << 16) | elem, i, 8, 4, i + 12))
            if n == 0xFFFFFFFF:
                break
            i += 12 + n
        else:
            (n,) = struct.unpack_from("<H", data, i + 6)
            out.append(((group << 16) | elem, i, 6, 2, i + 8))
            i += 8 + n
    return out


def mutate_dicom(data: bytes, rng: random.Random, pool: Sequence[bytes]) -> bytes:
    elements = dicom_elements(data)
    if not elements:
        return rng.choice(BYTE_MUTATORS)(data, rng, pool)
    _tag, start, len_at, len_size, value_at = rng.choice(elements)
    fmt = "<I" if len_size == 4 else "<H"
    (n,) = struct.unpack_from(fmt, data, start + len_at)
    op = rng.randrange(5)
    if op == 0:  # the length: odd, zero, huge, undefined
        limit = 0xFFFFFFFF if len_size == 4 else 0xFFFF
        new = rng.choice([n + 1, n - 1 if n else 1, 0, limit, limit - 1, n * 2 + 1, 3]) & limit
        return data[:start + len_at] + struct.pack(fmt, new) + data[start + len_at + len_size:]
    if op == 1:  # the VR: unknown, or another known one (changing how the length reads)
        vr = rng.choice([b"ZZ", b"UN", b"SQ", b"OB", b"DS", b"US", b"UL", b"FD", b"AE", b"XX", b"ox"])
        return data[:start + 4] + vr + data[start + 6:]
    if op in (2, 3):  # a value replaced, length kept honest (or odd)
        value = rng.choice(_DICOM_VALUES)
        if op == 2 and len(value) % 2:
            value += b" "
        limit = 0xFFFFFFFF if len_size == 4 else 0xFFFF
        if len(value) > limit:
            value = value[:limit]
        return (data[:start + len_at] + struct.pack(fmt, len(value)) + data[value_at:value_at]
                + value + data[value_at + n:])
    # an element duplicated or dropped
    end = value_at + n
    if rng.random() < 0.5:
        return data[:end] + data[start:end] + data[end:]
    return data[:start] + data[end:]


def deflate_dicom(data: bytes, rng: random.Random, pool: Sequence[bytes]) -> bytes:
    """Declare the deflated transfer syntax and deflate (or damage) the data set after the meta."""
    elements = dicom_elements(data)
    meta_end = max((v + struct.unpack_from("<I" if s == 4 else "<H", data, o + a)[0]
                    for t, o, a, s, v in elements if t >> 16 == 2), default=0)
    if not meta_end:
        return mutate_dicom(data, rng, pool)
    head = data[:meta_end].replace(b"1.2.840.10008.1.2.1\x00", b"1.2.840.10008.1.2.1.99")
    comp = zlib.compressobj(6, zlib.DEFLATED, -15)
    body = comp.compress(data[meta_end:]) + comp.flush()
    if rng.random() < 0.7:
        cut = rng.randrange(len(body))
        body = body[:cut] + rng.randbytes(rng.choice([0, 1, 8]))
    return head + body


# -- NIfTI (header fields at their offsets; .nii.gz inflated first) -------------------------------
_NIFTI_FIELDS = [(0, "<i"), (40, "<h"), (42, "<h"), (44, "<h"), (46, "<h"), (70, "<h"), (72, "<h"), (76, "<f"),
                 (80, "<f"), (84, "<f"), (88, "<f"), (108, "<f"), (112, "<f"), (116, "<f"), (252, "<h"),
                 (254, "<h"), (256, "<f"), (280, "<f"), (284, "<f"), (288, "<f"), (292, "<f"), (296, "<f"),
                 (300, "<f"), (304, "<f"), (308, "<f"), (312, "<f"), (316, "<f"), (320, "<f"), (324, "<f")]


def mutate_nifti(data: bytes, rng: random.Random, pool: Sequence[bytes]) -> bytes:
    gz = data[:2] == b"\x1f\x8b"
    raw = data
    if gz:
        try:
            raw = gzip.decompress(data)
        except (OSError, EOFError, zlib.error):
            return rng.choice(BYTE_MUTATORS)(data, rng, pool)
    if len(raw) < 348:
        return rng.choice(BYTE_MUTATORS)(data, rng, pool)
    out = bytearray(raw)
    for _ in range(rng.choice([1, 1, 2, 3])):
        offset, fmt = rng.choice(_NIFTI_FIELDS)
        if fmt == "<f":
            value: Any = rng.choice(INTERESTING_FLOATS)
        else:
            bits = 16 if fmt == "<h" else 32
            value = rng.choice([0, -1, 1, 2, 3, 4, 7, 8, 100, 32767, -32768, 2 ** (bits - 1) - 1, 16, 64, 128, 1024])
            value = max(-(2 ** (bits - 1)), min(2 ** (bits - 1) - 1, value))
        struct.pack_into(fmt, out, offset, _fit(fmt, value))
    if rng.random() < 0.2:
        out = out[:rng.randrange(348, len(out) + 1)]
    if gz:
        body = gzip.compress(bytes(out), compresslevel=1, mtime=0)
        if rng.random() < 0.1:
            body = body[:rng.randrange(10, len(body))]
        return body
    return bytes(out)


def mutate_gzip_inner(data: bytes, rng: random.Random, pool: Sequence[bytes]) -> bytes:
    if data[:2] != b"\x1f\x8b":
        return rng.choice(BYTE_MUTATORS)(data, rng, pool)
    try:
        raw = gzip.decompress(data)
    except (OSError, EOFError, zlib.error):
        return rng.choice(BYTE_MUTATORS)(data, rng, pool)
    return gzip.compress(rng.choice(BYTE_MUTATORS)(raw, rng, []), compresslevel=1, mtime=0)


# -- STL ------------------------------------------------------------------------------------------
def mutate_stl(data: bytes, rng: random.Random, pool: Sequence[bytes]) -> bytes:
    if data.lstrip()[:5].lower() == b"solid" and b"facet" in data[:2048]:
        return replace_number(data, rng, pool) if rng.random() < 0.7 else mutate_text_lines(data, rng, pool)
    if len(data) < 84:
        return flip_bits(data, rng, pool)
    op = rng.randrange(3)
    if op == 0:  # the triangle count
        n = (len(data) - 84) // 50
        count = rng.choice([0, 1, n + 1, n - 1, 0xFFFFFFFF, 0x7FFFFFFF, 20_000_001, n * 2])
        return data[:80] + struct.pack("<I", count & 0xFFFFFFFF) + data[84:]
    if op == 1:
        return interesting_float(data, rng, pool)
    return data[:80] + b"SPACE=RAS" + data[89:] if rng.random() < 0.5 else b"solid x\n" + data[8:]


def mutate_text_lines(data: bytes, rng: random.Random, pool: Sequence[bytes]) -> bytes:
    lines = data.splitlines(keepends=True)
    if not lines:
        return insert_bytes(data, rng, pool)
    i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
    op = rng.randrange(3)
    if op == 0:
        del lines[i]
    elif op == 1:
        lines.insert(i, lines[j])
    else:
        lines[i], lines[j] = lines[j], lines[i]
    return b"".join(lines)


KINDS: dict[str, list[tuple[Mutator, int]]] = {
    "bytes": [(m, 1) for m in BYTE_MUTATORS],
    "keyvalue": [(mutate_keyvalue, 6), (replace_number, 2), (zlib_bomb, 1), (hostile_size, 2)],
    "json": [(mutate_json, 6), (replace_number, 1)],
    "csv": [(mutate_csv, 6), (replace_number, 1)],
    "xml": [(mutate_xml, 6)],
    "png": [(mutate_png, 6)],
    "dicom": [(mutate_dicom, 8), (deflate_dicom, 1)],
    "nifti": [(mutate_nifti, 6), (mutate_gzip_inner, 2), (hostile_nifti_size, 2)],
    "stl": [(mutate_stl, 6)],
    "lines": [(mutate_text_lines, 2), (replace_number, 2)],
}


def kind_for_name(name: str) -> str:
    """The structure-aware mutator family for a file name."""
    low = name.lower()
    if low.endswith((".mha", ".mhd", ".nrrd", ".nhdr")):
        return "keyvalue"
    if low.endswith((".nii", ".nii.gz", ".gz")):
        return "nifti"
    if low.endswith(".json"):
        return "json"
    if low.endswith((".csv", ".tsv")):
        return "csv"
    if low.endswith(".xml"):
        return "xml"
    if low.endswith(".png"):
        return "png"
    if low.endswith(".stl"):
        return "stl"
    if low.endswith(".pdf") or low.endswith(".txt"):
        return "bytes"
    return "dicom"


def mutate(data: bytes, rng: random.Random, pool: Sequence[bytes], kind: str) -> bytes:
    """1-4 stacked mutations: mostly structure-aware for ``kind``, some plain byte-level."""
    table = KINDS.get(kind, KINDS["bytes"])
    mutators = [m for m, w in table for _ in range(w)]
    for _ in range(rng.choice([1, 1, 1, 2, 2, 3, 4])):
        fn = rng.choice(mutators) if rng.random() < 0.75 else rng.choice(BYTE_MUTATORS)
        data = fn(data, rng, pool)
        if len(data) > MAX_INPUT_BYTES:
            data = data[:MAX_INPUT_BYTES]
    return data
