"""The archive-level defences of package verification, before any member is read: the end
of central directory record (entry count and directory size, read by hand so that a bomb is
refused before ``zipfile`` parses millions of entries), and each entry's name, type, flags,
method, sizes and place in the file."""

from __future__ import annotations

import stat
import struct
import unicodedata
import zipfile
from dataclasses import dataclass
from typing import IO, Final

from opencdmo.transfer.format import path_problem

EOCD: Final = b"PK\x05\x06"
ZIP64_LOCATOR: Final = b"PK\x06\x07"
ZIP64_EOCD: Final = b"PK\x06\x06"
TAIL: Final = 22 + 65535 + 20  # the record, the longest comment, the ZIP64 locator
LOCAL_HEADER: Final = 30
ENCRYPTED: Final = 0x1
MiB: Final = 1024 * 1024

# Magic bytes of archives and compressed files: a member that is one is refused.
NESTED: Final = (
    (0, b"PK\x03\x04", "a ZIP archive"),
    (0, b"PK\x05\x06", "an empty ZIP archive"),
    (0, b"PK\x07\x08", "a spanned ZIP archive"),
    (0, b"\x1f\x8b", "a gzip file"),
    (0, b"BZh", "a bzip2 file"),
    (0, b"\xfd7zXZ\x00", "an xz file"),
    (0, b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (0, b"\x28\xb5\x2f\xfd", "a zstd file"),
    (0, b"Rar!\x1a\x07", "a RAR archive"),
    (0, b"\x04\x22\x4d\x18", "an LZ4 frame"),
    (0, b"MSCF", "a cabinet archive"),
    (257, b"ustar", "a tar archive"),
)
MAGIC_SPAN: Final = 262


@dataclass(frozen=True)
class Limits:
    """Bounds that keep a hostile archive from costing more than a real one."""

    max_entries: int = 10_000
    max_total: int = 64 * 1024 * MiB  # declared and inflated bytes of all members
    max_member: int = 32 * 1024 * MiB
    max_ratio: int = 200  # inflated / compressed bytes, for members over ratio_floor
    ratio_floor: int = MiB
    max_manifest: int = 4 * MiB
    max_signature: int = 1024
    max_json: int = 16 * MiB
    max_xml: int = 32 * MiB


@dataclass(frozen=True)
class Problem:
    code: str
    message: str
    member: str | None = None


def directory_size(handle: IO[bytes], file_size: int) -> tuple[int, int, int] | None:
    """(entries, central directory bytes, its offset) from the end of central directory
    record (ZIP64 when it has one); None when the file has no such record (not a ZIP, or
    truncated)."""
    start = max(0, file_size - TAIL)
    handle.seek(start)
    tail = handle.read(file_size - start)
    at = tail.rfind(EOCD)
    if at < 0 or len(tail) - at < 22:
        return None
    entries, size, offset = struct.unpack("<HII", tail[at + 10 : at + 20])
    locator = at - 20
    if locator >= 0 and tail[locator : locator + 4] == ZIP64_LOCATOR:
        (where,) = struct.unpack("<Q", tail[locator + 8 : locator + 16])
        if where + 56 > file_size:
            return None
        handle.seek(where)
        record = handle.read(56)
        if record[:4] != ZIP64_EOCD:
            return None
        entries, size, offset = struct.unpack("<QQQ", record[32:56])
    return entries, size, offset


def names_problems(infos: list[zipfile.ZipInfo]) -> list[Problem]:
    """Unsafe names, and names equal to another one exactly, after case folding, or after
    Unicode normalisation (NFC, NFKC): on some file systems they are the same file."""
    found: list[Problem] = []
    seen: dict[str, dict[str, str]] = {"exact": {}, "NFC": {}, "NFKC": {}, "case": {}}
    for info in infos:
        name = info.filename
        why = path_problem(name)
        if why is not None:
            found.append(Problem("unsafe_name", f"The member name {name!r} {why}.", name))
        compatible = unicodedata.normalize("NFKC", name)
        keys = {
            "exact": name,
            "NFC": unicodedata.normalize("NFC", name),
            "NFKC": compatible,
            "case": compatible.casefold(),
        }
        for kind, key in keys.items():
            other = seen[kind].get(key)
            if other is not None:
                found.append(_duplicate(kind, name, other))
                break
            seen[kind][key] = name
    return found


def _duplicate(kind: str, name: str, other: str) -> Problem:
    if kind == "exact":
        return Problem("duplicate_name", f"The member {name!r} is in the archive twice.", name)
    how = "by case only" if kind == "case" else f"only by Unicode normalisation ({kind})"
    return Problem(
        "confusable_name",
        f"The member names {other!r} and {name!r} differ {how}: they would be the same file.",
        name,
    )


def entry_problems(info: zipfile.ZipInfo, limits: Limits) -> list[Problem]:
    """What makes one entry unacceptable before its bytes are read."""
    name = info.filename
    found: list[Problem] = []
    mode = info.external_attr >> 16
    if info.create_system == 3 and mode and not stat.S_ISREG(mode):
        kind = "a symbolic link" if stat.S_ISLNK(mode) else f"a {_kind(mode)}, not a file"
        found.append(Problem("not_a_file", f"The member {name!r} is {kind}.", name))
    if info.flag_bits & ENCRYPTED:
        found.append(Problem("encrypted", f"The member {name!r} is encrypted.", name))
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        found.append(
            Problem(
                "compression",
                f"The member {name!r} uses compression method {info.compress_type}; "
                "only stored (0) and deflated (8) are accepted.",
                name,
            )
        )
    if info.file_size > limits.max_member:
        found.append(
            Problem(
                "size_bomb",
                f"The member {name!r} declares {info.file_size} bytes, more than the "
                f"{limits.max_member} a member may have.",
                name,
            )
        )
    ratio_base = max(info.compress_size, 1)
    if info.file_size > limits.ratio_floor and info.file_size > limits.max_ratio * ratio_base:
        found.append(
            Problem(
                "ratio_bomb",
                f"The member {name!r} inflates {info.compress_size} bytes to "
                f"{info.file_size}: more than {limits.max_ratio} times.",
                name,
            )
        )
    return found


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISFIFO(mode):
        return "named pipe"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    if stat.S_ISSOCK(mode):
        return "socket"
    return "special file"


def layout_problems(infos: list[zipfile.ZipInfo], directory_start: int) -> list[Problem]:
    """Entries whose data overlap another's (the overlapping-files bomb) or the directory."""
    ordered = sorted(infos, key=lambda i: i.header_offset)
    found: list[Problem] = []
    for info, following in zip(ordered, [*ordered[1:], None], strict=True):
        end = info.header_offset + LOCAL_HEADER + len(info.filename.encode()) + info.compress_size
        limit = following.header_offset if following is not None else directory_start
        if end > limit:
            found.append(
                Problem(
                    "overlapping",
                    f"The member {info.filename!r} overlaps the data of another member.",
                    info.filename,
                )
            )
    return found


def total_problem(infos: list[zipfile.ZipInfo], limits: Limits) -> Problem | None:
    total = sum(i.file_size for i in infos)
    if total > limits.max_total:
        return Problem(
            "size_bomb",
            f"The members declare {total} bytes in all, more than the {limits.max_total} a "
            "package may hold.",
        )
    return None


def nested_kind(head: bytes) -> str | None:
    """What archive or compressed file the first bytes of a member say it is (None: none)."""
    for offset, magic, kind in NESTED:
        if head[offset : offset + len(magic)] == magic:
            return kind
    return None
