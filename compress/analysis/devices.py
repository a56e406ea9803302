"""Where a model ships: named device profiles and custom ones, and whether a row fits one.

A microcontroller profile holds its RAM and flash and keeps a stated headroom of each: the
tensor arena measured in TFLite Micro (``measure.micro``) is for its reference kernels on this
machine, and a board also needs room for TFLite Micro's own code, the application, its stack
and buffers, and the scratch buffers of optimized kernels (CMSIS-NN).  ``phone`` and ``server``
constrain nothing beyond the recommendation's own limits: there LiteRT runs, as every row is
measured.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

from compress.common.errors import UserError, option

KIB, MIB = 1024, 1024 * 1024
#: What a microcontroller profile keeps free of its RAM and flash for everything but the model.
MCU_HEADROOM = 0.25

#: What an int8 pipeline takes: int8 in and out, or token ids (int32, never quantized) in.
INT8_IO = ("int8", "int32 in, int8 out")


@dataclass(frozen=True)
class Device:
    """A deployment target: what a model must fit and what its inputs and outputs must be."""

    name: str
    ram: int | None = None  # bytes; None: no constraint
    flash: int | None = None
    int8: bool = False  # inputs and outputs int8, as a microcontroller's sensor pipeline feeds them
    micro: bool = False  # runs TFLite Micro
    headroom: float = 0.0  # share of RAM and of flash kept for the runtime and the application
    about: str = ""

    @property
    def arena_limit(self) -> int | None:
        return None if self.ram is None else int(self.ram * (1 - self.headroom))

    @property
    def flash_limit(self) -> int | None:
        return None if self.flash is None else int(self.flash * (1 - self.headroom))

    def describe(self) -> str:
        """One line: the profile and what it asks of a model."""
        if not self.micro:
            return f"{self.name} ({self.about or 'LiteRT'}: no memory limit beyond the recommendation's)"
        parts = [f"RAM {_size(self.ram)}", f"flash {_size(self.flash)}"]
        keeps = f"{self.headroom:.0%} of each kept for the runtime and the application"
        io = ", int8 input and output" if self.int8 else ""
        return f"{self.name} ({', '.join(parts)}; {keeps}{io}; TFLite Micro)" + \
            (f", {self.about}" if self.about else "")


def _mcu(name: str, ram: int, flash: int, about: str) -> Device:
    return Device(name, ram, flash, int8=True, micro=True, headroom=MCU_HEADROOM, about=about)


PROFILES: dict[str, Device] = {
    "phone": Device("phone", about="LiteRT on a phone's CPU"),
    "server": Device("server", about="LiteRT on a server's CPU"),
    "nrf52840": _mcu("nrf52840", 256 * KIB, 1 * MIB, "Cortex-M4F"),
    "rp2040": _mcu("rp2040", 264 * KIB, 2 * MIB, "dual Cortex-M0+"),
    "stm32h7": _mcu("stm32h7", 1 * MIB, 2 * MIB, "Cortex-M7"),
    "esp32-s3": _mcu("esp32-s3", 512 * KIB, 8 * MIB, "Xtensa LX7, the common 8 MiB flash module"),
}
_UNITS = {"": 1, "b": 1, "k": KIB, "kb": KIB, "kib": KIB, "m": MIB, "mb": MIB, "mib": MIB}
_YES, _NO = {"yes", "true", "1", "on"}, {"no", "false", "0", "off"}


def _size(value: int | None) -> str:
    if value is None:
        return "any"
    return f"{value / MIB:g} MiB" if value >= MIB and value % MIB == 0 else f"{value / KIB:g} KiB"


@functools.lru_cache(maxsize=32)  # tune asks it of every trial it ranks
def parse_device(text: str | Device | None) -> Device | None:
    """A profile's name (``PROFILES``), or ``mcu:ram=256k,flash=1m[,int8=yes][,headroom=0.25]``
    (``k`` and ``m`` are KiB and MiB); a one-line error for anything else."""
    if text is None or isinstance(text, Device):
        return text
    given = str(text).strip().lower()
    if given in PROFILES:
        return PROFILES[given]
    name, _, settings = given.partition(":")
    if name != "mcu" or not settings:
        raise UserError(f"{option('device')} {text!r} is not a device; choose one of "
                        f"{', '.join(PROFILES)}, or describe one as mcu:ram=256k,flash=1m,int8=yes")
    values: dict[str, Any] = {"int8": True, "headroom": MCU_HEADROOM}
    for part in settings.split(","):
        key, equals, value = (piece.strip() for piece in part.partition("="))
        if not equals or key not in ("ram", "flash", "int8", "headroom"):
            raise UserError(f"{option('device')} {text!r}: {part.strip()!r} is not one of ram=SIZE, "
                            "flash=SIZE, int8=yes|no, headroom=SHARE")
        values[key] = _setting(key, value, text)
    missing = [key for key in ("ram", "flash") if key not in values]
    if missing:
        raise UserError(f"{option('device')} {text!r} needs {missing[0]}=SIZE (e.g. ram=256k,flash=1m)")
    return Device("mcu", values["ram"], values["flash"], int8=values["int8"], micro=True,
                  headroom=values["headroom"], about="custom")


def _setting(key: str, value: str, text: str) -> Any:
    if key == "int8":
        if value not in _YES | _NO:
            raise UserError(f"{option('device')} {text!r}: int8 must be yes or no, got {value!r}")
        return value in _YES
    if key == "headroom":
        try:
            share = float(value)
        except ValueError:
            share = -1.0
        if not 0 <= share < 1:
            raise UserError(f"{option('device')} {text!r}: headroom is a share from 0 to below 1, "
                            f"got {value!r}")
        return share
    found = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([a-z]*)", value)
    if found is None or found.group(2) not in _UNITS or float(found.group(1)) <= 0:
        raise UserError(f"{option('device')} {text!r}: {key}={value!r} is not a size above 0 such as "
                        "256k (KiB), 1m (MiB) or 65536 (bytes)")
    return int(float(found.group(1)) * _UNITS[found.group(2)])


def fits(row: dict[str, Any], device: Device) -> tuple[bool | None, str]:
    """Whether a finished row fits the device (None: not measured, so unknown), and why not, or
    by how much it fits."""
    if not device.micro:
        return True, "runs in LiteRT"
    if row.get("micro_runs") is None:
        return None, row.get("micro_reason") or "not measured in TFLite Micro"
    if not row["micro_runs"]:
        return False, str(row.get("micro_reason") or "does not run in TFLite Micro")
    problems = []
    arena, flash = row.get("micro_arena_bytes") or 0, row.get("micro_flash_bytes") or 0
    if device.arena_limit is not None and arena > device.arena_limit:
        problems.append(f"its arena needs {_kib(arena)}, {_kib(arena - device.arena_limit)} over the "
                        f"{_kib(device.arena_limit)} the board leaves it")
    if device.flash_limit is not None and flash > device.flash_limit:
        problems.append(f"it takes {_kib(flash)} of flash, {_kib(flash - device.flash_limit)} over the "
                        f"{_kib(device.flash_limit)} the board leaves it")
    if device.int8 and row.get("io_type") not in INT8_IO:
        problems.append(f"its inputs and outputs are {row.get('io_type') or 'unknown'}, not int8")
    if problems:
        return False, "; ".join(problems)
    return True, (f"arena {_kib(arena)} of {_kib(device.arena_limit or 0)}, flash {_kib(flash)} of "
                  f"{_kib(device.flash_limit or 0)}")


def _kib(value: float) -> str:
    return f"{value / KIB:,.1f} KiB"
