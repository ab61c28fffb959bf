"""Fast path for homogeneous file sets: learn the layout once, then read bytes at known offsets.

astropy spends ~0.4 ms per file parsing headers and building HDU objects; a cutout set from one
service repeats the same layout for every object. `FileTemplate` records, from one file read by
astropy: the file size, each HDU's header and data offsets, its *key cards* (those that decide
structure, band names, scaling, units and pixel scale), and where each band's pixels lie. For
every further file, `FileTemplate.buffer` reads the whole file in one call and checks cheaply
that the size, the keyword of every header card (hence where ``END`` and the data are) and the
bytes of every key card are unchanged; the pixels are then views of the buffer with the known
big-endian dtype. Any difference (another size, an extra ``BSCALE`` or ``HISTORY`` card, a
different ``MAGZP`` or ``CD1_1``...) returns None and the caller uses the safe astropy path, so
results never depend on the shortcut. The values of other cards, which vary per object without
changing how pixels are read (``OBJECT``, ``CRVAL1``, dates), are not compared. Tile-compressed
or gzipped files, files with ``CHECKSUM``/``DATASUM`` cards (the safe path verifies them; a file
that adds them differs from the template) and files larger than a cutout have no template
(always the safe path).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits

from .conform import BandImage, cropped, match_bands, spans, write_scaled, zoom_for
from .flags import Flag

__all__ = ["FileTemplate", "FastReader"]

# Cards that decide how pixels are read: structure (with EXTEND, which astropy validates in
# place), band names, scaling, units, pixel scale. CONTINUE cards carry the rest of a long string
# value (a band name) and HIERARCH cards may name any of these keywords: compared whole too.
_KEY_CARD = re.compile(
    rb"(?:(?:SIMPLE  |XTENSION|BITPIX  |NAXIS[0-9 ]{3}|PCOUNT  |GCOUNT  |GROUPS  |EXTEND  |"
    rb"BSCALE  |"
    rb"BZERO   |BLANK   |EXTNAME |FILTER  |BAND[0-9 ]{4}|BANDS   |BUNIT   |MAGZP   |MAGZERO |"
    rb"FLUXMAG0|PHOTFLAM|PHOTPLAM|ZIMAGE  |WCSAXES |"
    rb"CTYPE[0-9] {2}|CUNIT[0-9] {2}|CDELT[0-9] {2}|CROTA[0-9] {2}|CD[0-9]_[0-9] {3}|"
    rb"PC[0-9]_[0-9] {3}|INHERIT )= |CONTINUE|HIERARCH)")
#: Files above this size are not cutouts to be read whole per object: no template.
_MAX_TEMPLATE_BYTES = 64 * 2**20
_END_CARD = b"END" + b" " * 77
_DTYPES = {8: np.dtype("u1"), 16: np.dtype(">i2"), 32: np.dtype(">i4"), 64: np.dtype(">i8"),
           -32: np.dtype(">f4"), -64: np.dtype(">f8")}


def _card_bytes(headers, buf: bytes) -> np.ndarray:
    """Byte offsets to compare: every card's keyword and all of each key card and END card.

    Same keywords in the same places mean END, hence every data offset, is where it was and no
    key card was added; same key cards mean the same structure, bands, scaling and units.
    """
    starts, keys = [], []
    for h0, end in headers:
        cards = range(h0, end + 80, 80)
        starts.extend(cards)
        keys.extend(p for p in cards if _KEY_CARD.match(buf, p, p + 80)
                    # the card a long string starts on: damaged, astropy refuses its CONTINUEs
                    or buf[p + 80:p + 88] == b"CONTINUE")
        # END whole: astropy reads "END" followed by anything but blanks as an ordinary card,
        # which merges this header with the next HDU's
        keys.append(end)
    starts, keys = np.array(starts, np.intp), np.array(keys, np.intp)
    return np.concatenate([(starts[:, None] + np.arange(8)).ravel(),
                           (keys[:, None] + np.arange(8, 80)).ravel()])


@dataclass(frozen=True)
class _Band:
    band: str
    offset: int
    dtype: np.dtype
    shape: tuple[int, int]
    factor: float
    bscale: float
    bzero: float
    blank: int | None
    pixel_scale: float | None
    calibrated: bool


@dataclass(frozen=True)
class FileTemplate:
    """Byte layout of one FITS file, shared by a homogeneous set (picklable)."""

    size: int
    check_index: np.ndarray  # byte offsets where a matching file repeats the template's bytes
    check_bytes: bytes
    bands: tuple[_Band, ...]
    headers: tuple[tuple[int, int], ...] = ()  # byte ranges of the headers, END card included

    @classmethod
    def build(cls, path, images, sources) -> "FileTemplate | None":
        """Template from a file already read by `read_fits` (its ``images`` and ``sources``).

        Returns None when the file cannot be read by offsets (compressed, gzipped, larger than
        a cutout, or with ``CHECKSUM``/``DATASUM`` cards, which the safe path verifies).
        """
        if any(img.mask is not None for img in images):
            return None  # mask planes: per-object masking, the safe path does it
        try:
            if os.path.getsize(path) > _MAX_TEMPLATE_BYTES:
                return None
            buf = Path(path).read_bytes()
            if not buf.startswith(b"SIMPLE  ="):
                return None
            headers, hdu_info = [], []
            with fits.open(path, memmap=False, disable_image_compression=True) as hdul:
                for i, hdu in enumerate(hdul):
                    info = hdul.fileinfo(i)
                    h0, d0 = info["hdrLoc"], info["datLoc"]
                    end = next((p for p in range(h0, d0, 80) if buf[p:p + 80] == _END_CARD),
                               None)
                    if end is None:
                        return None
                    headers.append((h0, end))
                    text = buf[h0:d0].decode("ascii", "replace")
                    hdu_info.append((d0, fits.Header.fromstring(text)))
        except Exception:  # noqa: BLE001 - the shortcut is optional; read_fits read the file
            return None
        if any("CHECKSUM" in hdr or "DATASUM" in hdr for _, hdr in hdu_info):
            return None
        if any(str(v).endswith("-TAB") for _, hdr in hdu_info for v in hdr.get("CTYPE*", {}).values()):
            return None  # the pixel scale comes from a table extension's values
        bands = []
        for img, (i, plane) in zip(images, sources):
            d0, hdr = hdu_info[i]
            dtype = _DTYPES.get(hdr.get("BITPIX"))
            if (dtype is None or hdr.get("ZIMAGE")
                    or hdr.get("XTENSION", "IMAGE").strip() != "IMAGE"):
                return None
            shape = (hdr["NAXIS2"], hdr["NAXIS1"])
            offset = d0 + (plane or 0) * shape[0] * shape[1] * dtype.itemsize
            blank = hdr.get("BLANK") if dtype.kind in "iu" else None
            bands.append(_Band(img.band, offset, dtype, shape, img.factor,
                               float(hdr.get("BSCALE", 1.0)), float(hdr.get("BZERO", 0.0)),
                               blank, img.pixel_scale, img.calibrated))
        index = _card_bytes(headers, buf)
        return cls(len(buf), index, np.frombuffer(buf, np.uint8)[index].tobytes(), tuple(bands),
                   tuple((h0, end + 80) for h0, end in headers))

    def buffer(self, path) -> bytes | None:
        """The bytes of ``path`` if it has this layout, else None (use the safe path).

        Raises OSError if the file cannot be opened.
        """
        fd = os.open(path, os.O_RDONLY)  # no buffered file object: one read, a few us less
        try:
            buf = os.read(fd, self.size + 1)
        finally:
            os.close(fd)
        # One gather over all headers: several times cheaper than comparing cards in Python.
        if (len(buf) != self.size
                or np.frombuffer(buf, np.uint8)[self.check_index].tobytes() != self.check_bytes):
            return None
        # Headers are printable ASCII (FITS standard); astropy refuses a file with any other
        # byte in any card, so such a file goes to the safe path for its error.
        arr = np.frombuffer(buf, np.uint8)
        if any(arr[a:b].min() < 0x20 or arr[a:b].max() > 0x7E for a, b in self.headers):
            return None
        return buf


def _pixels(buf: bytes, b: _Band, planes: int = 1, stride: int = 0) -> np.ndarray:
    """(planes, ny, nx) view of ``planes`` images ``stride`` bytes apart, starting at ``b``."""
    ny, nx = b.shape
    size = b.dtype.itemsize
    return np.ndarray((planes, ny, nx), b.dtype, buf, b.offset, (stride, nx * size, size))


def _same_kind(a: _Band, b: _Band) -> bool:
    return (a.dtype == b.dtype and a.shape == b.shape and a.factor == b.factor
            and a.bscale == b.bscale and a.bzero == b.bzero)


class FastReader:
    """Reads objects whose files match ``templates`` straight into the output batch.

    The conform plan (band order, crop/pad windows, scaling) is the same for every matching
    object, so it is computed once here with the same functions as the safe path uses.
    Layouts that need per-pixel work beyond scaling (resampling, integer ``BLANK``) go through
    `astrozoo.io.conform.conform` instead, with the bytes still read by offsets.
    """

    def __init__(self, templates, spec, *, scale_rtol=0.01,
                 scale_max_rtol=0.25, path=None):
        self.templates, self.spec = tuple(templates), spec
        bands = [(j, b) for j, t in enumerate(self.templates) for b in t.bands]
        plan = match_bands([b.band for _, b in bands], spec.bands, path=path)
        self.flags, self.n_padded, steps = 0, 0, []
        for c, i in enumerate(plan):
            j, b = bands[i]
            zoom = zoom_for(b.pixel_scale, spec.pixel_scale, scale_rtol=scale_rtol,
                            scale_max_rtol=scale_max_rtol, path=path)
            if zoom != 1.0 or b.blank is not None:
                steps = None
                break
            if not b.calibrated:
                self.flags |= Flag.UNCALIBRATED
            src_sl, dst_sl, padded = spans(b.shape, (spec.size, spec.size))
            if cropped(b.shape, spec.size):
                self.flags |= Flag.CROPPED
            if padded:
                self.flags |= Flag.UNDERSIZED
                self.n_padded += padded
            # Runs of spec bands lying equally spaced in one file (cube planes, or MEF
            # extensions with equal headers) are read as one strided view, one numpy call.
            c0, n, first, j0, stride, _, _ = steps[-1] if steps else (0, 0, None, -1, 0, 0, 0)
            if first is not None and c0 + n == c and j0 == j and _same_kind(first, b) and (
                    b.offset - first.offset == n * stride if n > 1 else b.offset > first.offset):
                steps[-1] = (c0, n + 1, first, j, b.offset - first.offset if n == 1 else stride,
                             src_sl, dst_sl)
            else:
                steps.append((c, 1, b, j, 0, src_sl, dst_sl))
        self.steps = steps  # None: only the bytes are read fast, conform runs per object

    def images(self, files):
        """`BandImage` list of an object, or None if a file differs from its template."""
        bufs = self._buffers(files)
        if bufs is None:
            return None
        return [BandImage(b.band, _pixels(buf, b)[0], b.factor, b.bscale, b.bzero, b.blank,
                          b.pixel_scale, calibrated=b.calibrated)
                for buf, t in zip(bufs, self.templates) for b in t.bands]

    def _buffers(self, files):
        if len(files) != len(self.templates):
            return None
        bufs = []
        for p, t in zip(files, self.templates):
            try:
                buf = t.buffer(p)
            except OSError:
                return None  # the safe path reports it with the file's name
            if buf is None:
                return None
            bufs.append(buf)
        return bufs

    def read_into(self, files, dst):
        """Write the object into ``dst`` and return (flags, n_padded), or None if a file
        differs from its template (or the plan needs per-object conforming)."""
        if self.steps is None:
            return None
        bufs = self._buffers(files)
        if bufs is None:
            return None
        if self.n_padded:
            dst[...] = np.nan
        for c, n, b, j, stride, src_sl, dst_sl in self.steps:
            write_scaled(_pixels(bufs[j], b, n, stride)[(slice(None), *src_sl)],
                         dst[(slice(c, c + n), *dst_sl)], b.bscale, b.bzero, b.factor)
        return int(self.flags), self.n_padded

