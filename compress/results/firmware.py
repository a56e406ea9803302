"""A model as a C array for a TFLite Micro firmware, with the arena it needs as a constant:
the file a board's project includes, written beside each row that fits its device."""

from __future__ import annotations

import re

#: Bytes per line of the array: short lines diff well and stay readable.
_PER_LINE = 12


def c_identifier(text: str) -> str:
    """``text`` as a C identifier: letters, digits and underscores, not starting with a digit."""
    name = re.sub(r"[^0-9A-Za-z_]+", "_", text).strip("_") or "model"
    return f"m_{name}" if name[0].isdigit() else name


def c_header(flatbuffer: bytes, name: str, arena_bytes: int, about: str) -> str:
    """A C++ header holding the flatbuffer (16-byte aligned, as TFLite Micro reads it in place)
    and its arena size; ``about`` is said in its first comment."""
    ident = c_identifier(name)
    lines = [", ".join(f"0x{b:02x}" for b in flatbuffer[i:i + _PER_LINE])
             for i in range(0, len(flatbuffer), _PER_LINE)]
    body = ",\n    ".join(lines)
    return (f"// {about}\n"
            f"// Made by compress. Give TFLite Micro a tensor arena of at least {ident}_arena_bytes:\n"
            "// the smallest it built and ran in, measured in TFLite Micro's reference kernels.\n"
            "#pragma once\n#include <cstddef>\n#include <cstdint>\n\n"
            f"constexpr std::size_t {ident}_arena_bytes = {arena_bytes};\n"
            f"alignas(16) const std::uint8_t {ident}_model[] = {{\n    {body}\n}};\n"
            f"constexpr std::size_t {ident}_model_bytes = sizeof({ident}_model);\n")
