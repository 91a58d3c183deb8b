"""Reads a gzip file as far as it is intact: the lines before damage or truncation survive."""

from __future__ import annotations

import io
import zlib
from pathlib import Path


def _up_to_damage(inflate, data: bytes, limit: int) -> bytes:
    """What inflate gives for data, fed in small slices, before the slice that fails."""
    out = bytearray()
    for start in range(0, len(data), 64):
        try:
            out += inflate.decompress(data[start:start + 64], limit - len(out))
        except zlib.error:
            break
        if len(out) >= limit:
            break
    return bytes(out)


class SalvagingGzip(io.RawIOBase):
    """A gzip file's decompressed bytes (concatenated members too) as far as they are intact:
    damaged or missing compressed data ends the stream early and sets `damage`, so the lines
    before it can still be kept. Output comes in bounded pieces (zip bombs stay small)."""

    _PIECE = 1 << 22

    def __init__(self, path: Path) -> None:
        super().__init__()
        self._file = path.open("rb")
        self._inflate = zlib.decompressobj(wbits=31)
        self._fed = False
        self._out = memoryview(b"")
        self.damage: str | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, target) -> int:
        while not self._out and self._fill():
            pass
        count = min(len(target), len(self._out))
        target[:count] = self._out[:count]
        self._out = self._out[count:]
        return count

    def _fill(self) -> bool:
        """Decompress the next piece; False at the end of the readable data."""
        if self._inflate.unconsumed_tail:
            data = self._inflate.unconsumed_tail
        else:
            data = (self._inflate.unused_data if self._inflate.eof else b"") or \
                self._file.read(1 << 13)  # small: an error loses only this piece's output
            if not data:
                if self._fed and not self._inflate.eof:
                    self.damage = "the compressed data ends early (file truncated)"
                return False
            if self._inflate.eof:  # the next gzip member
                self._inflate = zlib.decompressobj(wbits=31)
        self._fed = True
        before = self._inflate.copy()
        try:
            self._out = memoryview(self._inflate.decompress(data, self._PIECE))
        except zlib.error as exc:
            self.damage = f"damaged compressed data ({exc})"
            self._out = memoryview(_up_to_damage(before, data, self._PIECE))
            self._file.seek(0, 2)  # nothing after the damage is read
            self._inflate = zlib.decompressobj(wbits=31)
            self._fed = False
            return bool(self._out)
        return True

    def close(self) -> None:
        self._file.close()
        super().close()
