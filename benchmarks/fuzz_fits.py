"""Fuzz campaign over the FITS readers: mutated and random files, only documented errors.

Property-based (hypothesis). Each case is either a valid small FITS file (one of `SEEDS`: 2-D
float, scaled integers with ``BLANK``, 8-bit, a rotated CD matrix, a cube, a multi-extension
file, tile-compressed, gzipped, with ``CHECKSUM``, a pipeline image with mask planes) with up to
three mutations (byte flips, a header card's value or keyword replaced, a card overwritten,
truncation, bytes appended), or a file whose header is generated card by card. Every case is fed to

- `astrozoo.io.layouts.read_fits` (the safe reader),
- ``open_inputs([mutant], fast=False, on_error="flag")`` and the same with ``on_error="raise"``,
- ``open_inputs([seed, mutant], on_error="flag")``: the seed builds the fast-path template, so a
  mutant that still matches it is read by byte offsets,

and must satisfy: no exception other than `astrozoo.exceptions.AstrozooError` subclasses; every
batch finite, unreadable rows flagged ``READ_ERROR`` with zero data; the fast path gives the safe
path's outcome, values, flags and counts exactly; a file whose ``CHECKSUM``/``DATASUM`` astropy
finds wrong is never read; and, for single-image files that astropy opens, the pixels equal
astropy's (scaled, ``BLANK`` as missing, centre-cropped or padded, times the calibration factor)
with the non-finite ones counted in ``n_bad_pixels``. No file descriptor may leak.

Failures are written to ``--out`` with their seed name, and replayed with ``--replay FILE``.
The tests run a small derandomised profile of the same properties (``tests/test_fuzz_fits.py``).

Run: ``nice python benchmarks/fuzz_fits.py [--cases 10000] [--seed 0] [--out DIR]``
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import os
import re
import resource
import sys
import tempfile
import time
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from astrozoo.config import InputSpec
from astrozoo.exceptions import AstrozooError
from astrozoo.io import Flag, open_inputs
from astrozoo.io.layouts import read_fits
from astrozoo.io.units import header_factor

ONE = InputSpec(bands=("g",), pixel_scale=0.2, size=8, flux_unit="nJy")
THREE = InputSpec(bands=("g", "r", "i"), pixel_scale=0.2, size=8, flux_unit="nJy")


#: A case may raise the process's peak memory by at most this much: the files are a few kB,
#: so more means a reader allocated what a damaged header declares.
MAX_CASE_GROWTH_MB = 200


class Failure(AssertionError):
    """A property of the campaign does not hold for a case."""


@dataclass(frozen=True)
class Seed:
    name: str
    raw: bytes
    suffix: str
    spec: InputSpec
    oracle: bool  # one 2-D image: compare the pixels with astropy's


def _wcs_header(scale=0.2, rotate=0.0):
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval, w.wcs.crpix = [150.0, 2.0], [5.0, 5.0]
    c, s = np.cos(np.radians(rotate)), np.sin(np.radians(rotate))
    w.wcs.cd = np.array([[-c, s], [s, c]]) * scale / 3600
    return w.to_header()


def _bytes(hdus) -> bytes:
    buf = io.BytesIO()
    fits.HDUList(hdus).writeto(buf)
    return buf.getvalue()


def _seeds() -> dict[str, Seed]:
    rng = np.random.default_rng(16)
    f32 = rng.normal(100, 10, (10, 10)).astype(np.float32)
    f32[2, 3] = np.nan
    h = fits.PrimaryHDU(f32, header=_wcs_header())
    h.header.update(FILTER="g", BUNIT="nJy", OBJECT="obj0001")
    h.header["LONGSTR"] = "a long string value that astropy writes over CONTINUE cards " * 2
    img_f32 = _bytes([h])

    i16 = rng.integers(-300, 300, (6, 6)).astype(np.int16)
    i16[1, 1] = -32768
    h16 = fits.PrimaryHDU(i16)
    h16.header.update(BSCALE=0.5, BZERO=100.0, BLANK=-32768, FILTER="g", MAGZP=31.4)

    hu8 = fits.PrimaryHDU(rng.integers(0, 255, (8, 8)).astype(np.uint8))
    hu8.header.update(FILTER="g", BUNIT="uJy")

    h64 = fits.PrimaryHDU(rng.normal(0, 1, (12, 12)), header=_wcs_header(0.201, rotate=30.0))
    h64.header.update(FILTER="g", BUNIT="nJy")

    cube = fits.PrimaryHDU(rng.normal(5, 1, (3, 8, 8)).astype(np.float32))
    cube.header.update(BANDS="g,r,i", BUNIT="nJy")

    mef = [fits.PrimaryHDU(header=fits.Header({"BUNIT": "nJy"}))]
    for b in "irg":
        e = fits.ImageHDU(rng.integers(0, 1000, (8, 8)).astype(np.int32), name=b.upper())
        e.header["FILTER"] = b
        mef.append(e)

    comp = fits.CompImageHDU(rng.normal(50, 5, (8, 8)).astype(np.float32), name="g",
                             compression_type="RICE_1")
    comp.header["BUNIT"] = "nJy"
    comp_lossless = fits.CompImageHDU(rng.normal(50, 5, (8, 8)).astype(np.float32), name="g",
                                      compression_type="GZIP_2", quantize_level=0.0)
    comp_lossless.header["BUNIT"] = "nJy"

    buf = io.BytesIO()
    hc = fits.PrimaryHDU(rng.normal(10, 1, (8, 8)).astype(np.float32))
    hc.header.update(FILTER="g", BUNIT="nJy")
    hc.writeto(buf, checksum=True)

    pipe = [fits.PrimaryHDU(header=fits.Header({"FILTER": "g", "BUNIT": "nJy"})),
            fits.ImageHDU(rng.normal(0, 1, (8, 8)).astype(np.float32), name="IMAGE"),
            fits.ImageHDU(np.where(rng.random((8, 8)) < 0.1, 4, 0).astype(np.int32),
                          name="MASK"),
            fits.ImageHDU(np.ones((8, 8), np.float32), name="VARIANCE")]
    pipe[2].header.update(MP_BAD=0, MP_SAT=2)

    return {s.name: s for s in [
        Seed("img_f32", img_f32, ".fits", ONE, True),
        Seed("img_i16", _bytes([h16]), ".fits", ONE, True),
        Seed("img_u8", _bytes([hu8]), ".fits", ONE, True),
        Seed("img_f64_rot", _bytes([h64]), ".fits", ONE, True),
        Seed("cube", _bytes([cube]), ".fits", THREE, False),
        Seed("mef", _bytes(mef), ".fits", THREE, False),
        Seed("comp_rice", _bytes([fits.PrimaryHDU(), comp]), ".fits.fz", ONE, True),
        Seed("comp_lossless", _bytes([fits.PrimaryHDU(), comp_lossless]), ".fits.fz", ONE, True),
        Seed("checksum", buf.getvalue(), ".fits", ONE, True),
        Seed("pipeline", _bytes(pipe), ".fits", ONE, False),
        Seed("gz", gzip.compress(img_f32, mtime=0), ".fits.gz", ONE, True),
        Seed("gz_stream", gzip.compress(img_f32, mtime=0), ".fits.gz", ONE, True),
    ]}


SEEDS = _seeds()
RANDOM = Seed("random", b"", ".fits", ONE, True)

# Header values that have broken readers: extremes, wrong types, quoting, non-finite numbers.
VALUES = ["0", "1", "-1", "2", "3", "4", "8", "16", "-32", "-64", "64", "32", "1000000000",
          "99999999999999999999", "-99999999999", "1E300", "-1E300", "1E-300", "NAN", "INF",
          "0.0", "2.5", "T", "F", "''", "'g'", "'g,g'", "'g,r,i'", "'grz'", "'nJy'", "'ADU'",
          "'uJy'", "'bogus unit'", "'IMAGE   '", "'BINTABLE'", "'RA---TAN'", "'RA---TAB'",
          "'PIXEL'", "'deg'", "'arcsec'", "'furlong'", "(1, 2)", "'", "'unterminated", "=",
          "/ comment", "31.4", "-1000", "1000", "'MASK'", "'IVAR'", "'SCI'"]
KEYWORDS = ["SIMPLE", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "NAXIS3", "NAXIS4", "EXTEND",
            "GROUPS", "PCOUNT", "GCOUNT", "XTENSION", "BSCALE", "BZERO", "BLANK", "EXTNAME",
            "FILTER", "BAND", "BANDS", "BAND0", "BUNIT", "MAGZP", "MAGZERO", "FLUXMAG0",
            "PHOTFLAM", "PHOTPLAM", "ZIMAGE", "ZCMPTYPE", "ZBITPIX", "ZNAXIS1", "CTYPE1",
            "CTYPE2", "CUNIT1", "CDELT1", "CDELT2", "CD1_1", "CD2_2", "PC1_1", "CROTA2",
            "WCSAXES", "CHECKSUM", "DATASUM", "INHERIT", "MP_BAD", "CONTINUE", "HIERARCH",
            "COMMENT", "HISTORY", "END", "OBJECT", "TFIELDS", "TFORM1"]

_value = st.sampled_from(VALUES) | st.text(st.characters(min_codepoint=32, max_codepoint=126),
                                           max_size=20)
_keyword = st.sampled_from(KEYWORDS)


def _card(keyword: str, value: str) -> bytes:
    """An 80-byte card, written by hand: astropy refuses to write the invalid ones we want."""
    if keyword in ("COMMENT", "HISTORY", "CONTINUE", "END"):
        text = f"{keyword:<8}  {value}" if keyword != "END" else "END"
    elif keyword == "HIERARCH":
        text = f"HIERARCH {value} = 1"
    else:
        text = f"{keyword:<8}= {value:>20}"
    return text.encode("ascii", "replace")[:80].ljust(80)


# Mutations: (kind, position fraction, payload). Positions are fractions of the file, of its
# header cards or of its data bytes, so that one strategy serves every seed. Repeated entries
# weight the kinds towards the subtle ones (a value, a data byte) that leave the file readable.
_frac = st.floats(0, 1, allow_nan=False)
_flip = st.tuples(st.just("flip"), _frac, st.integers(0, 255))
_data_flip = st.tuples(st.just("data_flip"), _frac, st.integers(0, 255))
_value_edit = st.tuples(st.just("value"), _frac, _value)
_card_edit = st.tuples(st.just("card"), _frac, st.tuples(_keyword, _value))
_mutation = st.one_of(
    _flip, _data_flip, _data_flip, _value_edit, _value_edit, _value_edit, _card_edit, _card_edit,
    st.tuples(st.just("keyword"), _frac, _keyword),
    st.tuples(st.just("raw_card"), _frac, st.binary(min_size=80, max_size=80)),
    st.tuples(st.just("truncate"), _frac, st.none()),
    st.tuples(st.just("append"), _frac, st.binary(max_size=3000)),
    st.tuples(st.just("drop_block"), _frac, st.none()),
)


def _layout(raw: bytes) -> tuple[list[int], list[int]]:
    """Offsets of the header cards (up to each END) and the data bytes, found without astropy
    (whose parse of a damaged header is what is under test)."""
    cards, data, pos = [], [], 0
    while pos + 2880 <= len(raw):
        start = pos
        end = next((p for p in range(start, len(raw) - 79, 80) if raw[p:p + 3] == b"END"
                    and raw[p + 3:p + 80].strip() == b""), None)
        if end is None:
            break
        cards.extend(range(start, end + 1, 80))
        data0 = start + -(-(end + 80 - start) // 2880) * 2880
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                hdr = fits.Header.fromstring(raw[start:end + 80].decode("ascii", "replace"))
            naxis = int(hdr.get("NAXIS", 0))
            if not 0 <= naxis <= 999:
                break
            axes = [int(hdr.get(f"NAXIS{i}", 0)) for i in range(1, naxis + 1)]
            size = abs(int(hdr.get("BITPIX", 8))) // 8 * int(hdr.get("GCOUNT", 1)) * (
                int(hdr.get("PCOUNT", 0)) + (int(np.prod(axes)) if axes else 0))
        except Exception:  # noqa: BLE001 - a damaged header: stop looking for more
            break
        if size < 0:  # e.g. GCOUNT = -1: the walk would go backwards
            break
        data.extend(range(data0, min(data0 + size, len(raw))))
        pos = data0 + -(-size // 2880) * 2880
    return cards, data


def _pick(seq, frac):
    return seq[min(int(frac * len(seq)), len(seq) - 1)] if len(seq) else None


def mutate(raw: bytes, ops, gz: bool = False) -> bytes:
    """Apply mutation ops (see `_mutation`) to a file's bytes (``gz``: to the bytes inside the
    gzip stream, then compressed again)."""
    data = bytearray(gzip.decompress(raw) if gz else raw)
    for kind, frac, payload in ops:
        cards, pixels = _layout(bytes(data)) if kind not in ("flip", "truncate") else ([], [])
        card = _pick(cards, frac)
        pos = _pick(range(len(data)), frac)
        if kind == "flip" and pos is not None:
            data[pos] = payload
        elif kind == "data_flip" and pixels:
            data[_pick(pixels, frac)] = payload
        elif kind in ("value", "keyword", "card", "raw_card") and card is not None:
            old = bytes(data[card:card + 80])
            if kind == "value":
                new = (old[:10] + payload.encode("ascii", "replace"))[:80].ljust(80)
            elif kind == "keyword":
                new = payload.encode().ljust(8)[:8] + old[8:]
            elif kind == "card":
                new = _card(*payload)
            else:
                new = payload
            data[card:card + 80] = new
        elif kind == "truncate" and pos is not None:
            del data[pos:]
        elif kind == "append":
            data[pos or 0:pos or 0] = payload
        elif kind == "drop_block" and len(data) >= 2880:
            block = pos // 2880 * 2880
            del data[block:block + 2880]
    return gzip.compress(bytes(data), mtime=0) if gz else bytes(data)


@st.composite
def random_file(draw) -> bytes:
    """A header generated card by card (valid or not) and a data part of a random length."""
    bitpix = draw(st.sampled_from([8, 16, 32, 64, -32, -64, 0, 7, -16]))
    naxis = draw(st.integers(0, 4))
    shape = [draw(st.integers(0, 12)) for _ in range(naxis)]
    cards = [_card("SIMPLE", draw(st.sampled_from(["T", "T", "F", "1"]))),
             _card("BITPIX", str(bitpix)), _card("NAXIS", str(naxis))]
    cards += [_card(f"NAXIS{i + 1}", str(n)) for i, n in enumerate(shape)]
    extra = draw(st.lists(st.tuples(_keyword, _value), max_size=12))
    cards += [_card(k, v) for k, v in extra]
    header = b"".join(cards) + _card("END", "")
    header = header.ljust(-(-len(header) // 2880) * 2880, b" ")
    size = abs(bitpix) // 8 * int(np.prod(shape)) if naxis else 0
    exact = draw(st.booleans())
    if exact and 0 < size <= 20000:
        kind = draw(st.sampled_from(["noise", "bytes", "special"]))
        if kind == "bytes":
            body = draw(st.binary(min_size=size, max_size=size))
        else:
            dt = {8: "u1", 16: ">i2", 32: ">i4", 64: ">i8", -32: ">f4", -64: ">f8"}.get(bitpix)
            if dt is None:
                body = b"\0" * size
            else:
                rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
                vals = rng.normal(100, 30, size // (abs(bitpix) // 8))
                if kind == "special" and dt[1] == "f":
                    vals[rng.random(vals.size) < 0.3] = rng.choice(
                        [np.nan, np.inf, -np.inf, 3e38, -0.0, 1e-45])
                with np.errstate(invalid="ignore", over="ignore"):
                    body = vals.astype(dt).tobytes() if dt[1] == "f" else np.clip(
                        vals, 0, None).astype(dt).tobytes()
        body = body.ljust(-(-size // 2880) * 2880, b"\0")
    else:
        body = draw(st.binary(max_size=3000))
    return header + body


cases = st.one_of(
    st.tuples(st.sampled_from(sorted(SEEDS)), st.lists(_mutation, min_size=1, max_size=3)),
    st.tuples(st.just("random"), random_file()),
)


def materialise(case) -> tuple[Seed, bytes]:
    name, what = case
    if name == "random":
        return RANDOM, what
    seed = SEEDS[name]
    return seed, mutate(seed.raw, what, gz=name == "gz")  # gz_stream: the compressed bytes


# ---------------------------------------------------------------------------------------------
# The properties


def _call(fn, what):
    """Run a reader; documented errors are returned, anything else is a failure."""
    try:
        return fn()
    except AstrozooError as e:
        return e
    except Exception as e:  # noqa: BLE001 - that is what the campaign looks for
        raise Failure(f"{what} raised {type(e).__name__}: {e}") from e


def _check_batch(batch, what):
    if not np.isfinite(batch.data).all():
        raise Failure(f"{what}: non-finite values in the batch")
    for k, err in enumerate(batch.errors):
        if err is not None and not (batch.flags[k] == Flag.READ_ERROR
                                    and (batch.data[k] == 0).all()):
            raise Failure(f"{what}: row {k} has an error but flags {batch.flags[k]} or data")
    bad = batch.n_bad_pixels > 0
    if (bad != ((batch.flags & Flag.BAD_PIXELS) != 0)).any():
        raise Failure(f"{what}: BAD_PIXELS flag does not follow n_bad_pixels")


def _checksum_mismatch(path) -> bool | None:
    """Whether astropy finds a wrong CHECKSUM/DATASUM (None: astropy cannot open the file)."""
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        try:
            with fits.open(path, memmap=False, checksum=True):
                pass
        except Exception:  # noqa: BLE001 - the oracle's own failure: no verdict
            return None
    return any("verification failed" in str(x.message) for x in w)


def _astropy_expected(path, spec):
    """(expected pixels with NaN for missing, cropped/padded to the spec) from astropy alone,
    or None where astropy does not read the file as one 2-D image."""
    try:
        with fits.open(path, memmap=False) as hl:
            imgs = [h for h in hl if h.is_image and h.header.get("NAXIS", 0) > 0]
            if len(imgs) != 1 or imgs[0].data is None or imgs[0].data.ndim != 2:
                return None
            h = imgs[0]
            raw = np.array(h.data)
            hdr, primary = h.header, hl[0].header
            blank = hdr.get("BLANK") if raw.dtype.kind in "iu" else None

            def get(key):
                v = hdr.get(key)
                return primary.get(key) if v is None else v

            factor, _ = header_factor(get, spec.flux_unit)
    except Exception:  # noqa: BLE001 - astropy (or the calibration) cannot read it: no oracle
        return None
    with np.errstate(all="ignore"):
        pix = raw.astype(np.float64)
        if blank is not None:
            pix[raw == blank] = np.nan
        pix = (pix * factor).astype(np.float32)
    s = spec.size
    out = np.full((s, s), np.nan, np.float32)
    (ny, nx) = pix.shape
    sy, dy = ((ny - s) // 2, 0) if ny >= s else (0, (s - ny) // 2)
    sx, dx = ((nx - s) // 2, 0) if nx >= s else (0, (s - nx) // 2)
    hy, hx = min(ny, s), min(nx, s)
    out[dy:dy + hy, dx:dx + hx] = pix[sy:sy + hy, sx:sx + hx]
    return out


def check(seed: Seed, raw: bytes, work: Path, stats: Counter | None = None) -> None:
    """Feed one case to every reader and check the properties; raise `Failure` if one fails."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # astropy's warnings about damaged files
        _check(seed, raw, work, Counter() if stats is None else stats)


def _check(seed: Seed, raw: bytes, work: Path, stats: Counter) -> None:
    mutant = work / f"case{seed.suffix}"
    mutant.write_bytes(raw)
    template = work / f"seed{seed.suffix}"
    if seed.raw and (not template.exists() or template.read_bytes() != seed.raw):
        template.write_bytes(seed.raw)
    single = seed.spec.bands[0] if len(seed.spec.bands) == 1 else None
    direct = _call(lambda: read_fits(mutant, seed.spec.flux_unit, default_band=single),
                   "read_fits")
    safe = _call(lambda: open_inputs([mutant], seed.spec, fast=False, on_error="flag")
                 .read_batch([0]), "safe path (on_error='flag')")
    raised = _call(lambda: open_inputs([mutant], seed.spec, fast=False).read_batch([0]),
                   "safe path (on_error='raise')")
    fast = None
    if seed.raw:
        cs = open_inputs([template, mutant], seed.spec, on_error="flag")
        fast = _call(lambda: cs.read_batch([0, 1]), "fast path")
        if cs._reader is not None and cs._reader.templates[0].buffer(mutant) is not None:
            stats["fast path read the mutant"] += 1
    if isinstance(raised, AstrozooError):
        stats["error: " + _reason(raised)] += 1
    stats["read_fits ok" if not isinstance(direct, AstrozooError) else "read_fits InputError"] += 1
    if isinstance(safe, AstrozooError):
        stats["open_inputs raised"] += 1
        return
    _check_batch(safe, "safe path")
    ok = safe.errors[0] is None
    stats["row read" if ok else "row flagged READ_ERROR"] += 1
    if ok == isinstance(raised, AstrozooError):
        raise Failure(f"on_error='raise' {'raised ' + str(raised) if ok else 'did not raise'} "
                      f"but on_error='flag' {'read the row' if ok else 'flagged it'}")
    if fast is not None and not isinstance(fast, AstrozooError):
        _check_batch(fast, "fast path")
        if fast.errors[0] is not None:
            raise Failure(f"the seed itself failed on the fast path: {fast.errors[0]}")
        if (fast.errors[1] is None) != ok:
            raise Failure(f"fast path {'read' if fast.errors[1] is None else 'refused'} the "
                          f"file, safe path {'read' if ok else 'refused'} it: "
                          f"{fast.errors[1] or safe.errors[0]}")
        if ok and not (np.array_equal(fast.data[1], safe.data[0])
                       and fast.flags[1] == safe.flags[0]
                       and fast.n_bad_pixels[1] == safe.n_bad_pixels[0]):
            raise Failure(f"fast path differs from the safe path: flags {fast.flags[1]} vs "
                          f"{safe.flags[0]}, n_bad {fast.n_bad_pixels[1]} vs "
                          f"{safe.n_bad_pixels[0]}, max |diff| "
                          f"{np.abs(fast.data[1] - safe.data[0]).max()}")
    if not ok:
        return
    if _checksum_mismatch(mutant):
        raise Failure("astropy finds a CHECKSUM/DATASUM mismatch but the file was read")
    if seed.oracle and not safe.flags[0] & Flag.RESAMPLED:
        expected = _astropy_expected(mutant, seed.spec)
        if expected is None:
            return
        stats["compared with astropy"] += 1
        got = safe.data[0, 0]
        good = np.isfinite(expected)
        if safe.n_bad_pixels[0] != (~good).sum():
            raise Failure(f"n_bad_pixels {safe.n_bad_pixels[0]}, astropy's pixels have "
                          f"{(~good).sum()} missing")
        if not np.allclose(got[good], expected[good], rtol=1e-6, atol=1e-37):
            raise Failure(f"pixels differ from astropy's: max |diff| "
                          f"{np.abs(got[good] - expected[good]).max()}")


def _reason(error) -> str:
    """The kind of an error, for the campaign's tally: its message without file or values."""
    text = getattr(error, "reason", str(error))
    return re.split(r"[(:\d'\"]", text, maxsplit=1)[0].strip()[:60]


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else 0


# ---------------------------------------------------------------------------------------------
# The campaign


def campaign(n_cases: int, seed: int, out: Path) -> int:
    stats, failures = Counter(), []
    work = Path(tempfile.mkdtemp(prefix="astrozoo-fuzz-"))
    out.mkdir(parents=True, exist_ok=True)

    @hypothesis_seed(seed)
    @settings(max_examples=n_cases, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(cases)
    def run(case):
        stats["cases"] += 1
        s, raw = materialise(case)
        # kept until the case returns: a case that kills the process (OOM) is left for --replay
        (out / f"current{s.suffix}").write_bytes(raw)
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        try:
            check(s, raw, work, stats)
            grew = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024
            if grew > MAX_CASE_GROWTH_MB:
                raise Failure(f"peak memory grew by {grew:.0f} MB on a {len(raw)}-byte file")
        except (Failure, MemoryError) as e:
            digest = hashlib.sha256(raw).hexdigest()[:12]
            path = out / f"{s.name}-{digest}{s.suffix}"
            path.write_bytes(raw)
            failures.append((s.name, f"{type(e).__name__}: {e}", path, case))

    fds0, t0 = open_fds(), time.perf_counter()
    run()
    wall = time.perf_counter() - t0
    leaked = open_fds() - fds0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"cases tried: {stats['cases']}")
    print(f"failures: {len(failures)}")
    for name, why, path, case in failures[:50]:
        print(f"  [{name}] {why}\n    reproducer: python benchmarks/fuzz_fits.py --replay {path}"
              f"\n    case: {case!r}"[:2000])
    print(f"wall time: {wall:.1f} s ({1000 * wall / max(stats['cases'], 1):.1f} ms/case)")
    print(f"open file descriptors leaked: {leaked}; peak RSS {peak:.0f} MB")
    print("outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(stats.items())
                                   if k != "cases" and not k.startswith("error: ")))
    errors = sorted(((v, k[7:]) for k, v in stats.items() if k.startswith("error: ")),
                    reverse=True)
    print("InputError reasons (on_error='raise'): "
          + "; ".join(f"{k} {v}" for v, k in errors))
    by_seed = Counter(name for name, *_ in failures)
    if by_seed:
        print("failures by seed: " + ", ".join(f"{k} {v}" for k, v in sorted(by_seed.items())))
    return 1 if failures or leaked > 2 else 0


def replay(path: Path) -> int:
    name = next((n for n in sorted(SEEDS, key=len, reverse=True) if path.name.startswith(n + "-")),
                "random")
    seed = SEEDS.get(name, RANDOM)
    work = Path(tempfile.mkdtemp(prefix="astrozoo-fuzz-"))
    check(seed, path.read_bytes(), work)
    print(f"{path}: all properties hold (seed {name})")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "astrozoo-fuzz")
    ap.add_argument("--replay", type=Path)
    ap.add_argument("--max-memory-gb", type=float, default=4.0,
                    help="address-space limit, so a reader that allocates what a damaged header "
                         "declares fails here rather than exhausting the machine")
    args = ap.parse_args(argv)
    limit = int(args.max_memory_gb * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
    if args.replay:
        return replay(args.replay)
    return campaign(args.cases, args.seed, args.out)


if __name__ == "__main__":
    sys.exit(main())
