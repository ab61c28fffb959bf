"""FITS layouts as cutout services deliver them, read safely with astropy.

One file gives one or more bands:

- **multi-extension FITS**: each image HDU is a band named by ``FILTER``, ``BAND`` or
  ``EXTNAME`` (keywords missing from an extension are inherited from the primary header);
- **3-D cube** ``(band, y, x)`` in one HDU, bands named by ``BANDS='g,r,i'`` (or ``'grz'``,
  as the Legacy Survey cutout service writes it, or space-separated) or ``BAND0``, ``BAND1``, ...;
- **2-D image**: one band, named by ``FILTER`` or ``BAND`` (per-band files are grouped per
  object by the caller);
- **pipeline images** (LSST/HSC ``calexp``, HST): ``IMAGE``/``SCI`` extensions with ``MASK``
  (or ``DQ``) and ``VARIANCE``/``IVAR``/``WEIGHT`` planes. Only the image planes are bands; the
  mask marks bad pixels (the bits of LSST's ``BAD``, ``SAT``, ``CR``, ``EDGE``, ``NO_DATA`` and
  ``SUSPECT`` planes when the header defines ``MP_*`` bits, else any non-zero value) and a zero
  inverse variance or weight does too.

Where a file names no band, the caller's ``bands=`` does (in plane or extension order); where
both name them and disagree, the file is refused rather than guessed at.

Tile-compressed HDUs, big-endian data and integer data with ``BSCALE``/``BZERO``/``BLANK`` are
decoded by astropy. ``CHECKSUM``/``DATASUM`` cards, where present, are verified. Any failure
(missing, truncated, corrupt or non-FITS file, checksum mismatch, random-groups or table-only
file, unknown layout, unusable calibration) raises `InputError` naming the file.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import math
import os
import re
import warnings
import zipfile
from pathlib import Path

import numpy as np
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.utils.exceptions import AstropyUserWarning
from astropy.wcs import WCS, FITSFixedWarning
from astropy.wcs.utils import proj_plane_pixel_scales

from ..exceptions import InputError
from .conform import BandImage
from .units import header_factor

__all__ = ["read_fits", "celestial_wcs", "pixel_scale_of", "parse_band_list", "calibration",
           "FITS_SUFFIXES"]

FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fits.fz", ".fz")
#: Files above this size are memory-mapped rather than read whole.
_MMAP_BYTES = 64 * 2**20


def celestial_wcs(header, fobj=None, path=None):
    """The celestial WCS of an image header, or None where the header has none.

    Parameters
    ----------
    header : astropy.io.fits.Header
    fobj : astropy.io.fits.HDUList, optional
        The open file: astropy needs it to apply lookup-table distortions (``D2IMARR`` and
        ``WCSDVARR`` extensions, ``CPDIS``/``D2IMDIS`` keywords) and ``-TAB`` axes.
    path : optional
        The file, named in the error.

    Returns
    -------
    astropy.wcs.WCS or None
        None where no pair of axes is celestial (``CTYPE1='PIXEL'``, ``'LINEAR'``...).

    Raises
    ------
    InputError
        If astropy cannot build the WCS (an invalid ``CUNIT``, a reference point that is not a
        number, a lookup table or ``-TAB`` extension missing from the file, inconsistent
        keywords).
    """
    if "CTYPE1" not in header and "CTYPE2" not in header:
        return None
    broken = next(iter(_broken_reference(header)), None)
    if broken is not None:  # wcslib would drop it, default it to 0 and lose the CD matrix
        value = header[broken]
        what = "has no value" if value is None or not str(value).strip() else \
            f"= {value!r} is not a number"
        raise InputError(f"invalid WCS in the header: {broken} {what}", path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FITSFixedWarning)
            wcs = WCS(header, fobj=fobj)
    except Exception as e:  # astropy raises ValueError, KeyError, wcslib's own error classes...
        raise InputError(f"invalid WCS in the header ({type(e).__name__}: {_wcslib_text(e)})",
                         path) from None
    if not wcs.has_celestial:
        return None
    return wcs if wcs.naxis == 2 else wcs.celestial


def _wcslib_text(error) -> str:
    """An astropy WCS error's message without wcslib's C source locations."""
    lines = [ln.strip() for ln in str(error).splitlines()]
    return " ".join(ln for ln in lines if ln and not re.match(r"ERROR \d+ in \w+\(\)", ln))


def pixel_scale_of(header, fobj=None, path=None) -> float | None:
    """Mean celestial pixel scale in arcsec/pixel from a header's WCS, or None without one.

    ``fobj`` and ``path`` are as for `celestial_wcs`, which raises `InputError` for a WCS that
    astropy cannot build.
    """
    cel = celestial_wcs(_without_broken_reference(header), fobj, path)
    return None if cel is None else _wcs_pixel_scale(cel)


def _broken_reference(header) -> list[str]:
    """The ``CRPIXn``/``CRVALn`` keywords whose value is not a number."""
    return [k for k in header if re.fullmatch(r"CR(PIX|VAL)[0-9]", k)
            and not isinstance(header[k], (int, float))]


def _without_broken_reference(header):
    """The header less any ``CRPIXn``/``CRVALn`` card whose value is not a number.

    The reference point does not change the linear pixel scale, but wcslib, given an
    unparseable one (``CRPIX2 =`` blank), also loses the CD matrix and reads a 0.2"/px image as
    1 deg/px. Kept where an axis is ``-TAB``: its scale is measured at pixels through the table.
    """
    broken = _broken_reference(header)
    if not broken or any(str(v).endswith("-TAB") for k, v in header.items()
                         if k.startswith("CTYPE")):
        return header
    header = header.copy()
    for key in broken:
        del header[key]
    return header


def _wcs_pixel_scale(cel) -> float:
    """Mean pixel scale in arcsec/pixel of a celestial WCS."""
    if any(t.endswith("-TAB") for t in cel.wcs.ctype):
        # a -TAB axis's CDELT/PC step through its table, not over the sky: measure one pixel
        # step at the image centre instead (astropy has no local-scale function)
        c = np.array(cel.pixel_shape, float) / 2 if cel.pixel_shape else cel.wcs.crpix - 1
        world = cel.all_pix2world([c, c + (1, 0), c + (0, 1)], 0)
        sky = SkyCoord(world[:, cel.wcs.lng], world[:, cel.wcs.lat], unit="deg")
        return float(np.mean(sky[0].separation(sky[1:]).arcsec))
    scales = proj_plane_pixel_scales(cel) * np.array([u.to("arcsec") for u in cel.wcs.cunit])
    return float(np.mean(scales))


#: EXTNAMEs of planes that are not bands: masks, uncertainty planes, and WCS lookup tables.
_MASK_PLANES = {"MASK", "DQ", "BITMASK", "BADPIX", "FLAGS"}
_ZERO_IS_BAD_PLANES = {"IVAR", "INVVAR", "WEIGHT", "WHT"}
_IGNORED_PLANES = {"VARIANCE", "VAR", "SIGMA", "ERR", "ERROR", "NOISE", "RMS", "STDEV",
                   "D2IMARR", "WCSDVARR"}
_IMAGE_PLANES = {"IMAGE", "SCI", "DATA"}
#: LSST/HSC mask planes whose bits mark a pixel as unusable (others: DETECTED, INTRP...).
_BAD_MASK_PLANES = ("BAD", "SAT", "CR", "EDGE", "NO_DATA", "SUSPECT")


def parse_band_list(value, n: int | None = None) -> list[str]:
    """Band names from a ``BANDS`` keyword: ``'g,r,i'``, ``'g r i'`` or ``'grz'``.

    A run of letters with no separator is read as one band per letter only when that gives
    `n` bands (the Legacy Survey writes ``BANDS='grz'``), so ``'HSC-G'`` stays one name.
    """
    text = str(value).strip()
    if "," in text:
        names = [b.strip() for b in text.split(",")]
    elif " " in text:
        names = text.split()
    elif n is not None and len(text) == n and n > 1 and text.isalpha():
        names = list(text)
    else:
        names = [text]
    return [b for b in names if b]


def _cube_bands(get, n: int, path, declared) -> list[str]:
    bands = get("BANDS")
    if bands is not None:
        names = parse_band_list(bands, n)
    elif get("BAND0") is not None:
        names = [get(f"BAND{i}") for i in range(n)]
        if any(b is None for b in names):
            raise InputError(f"3-D cube with {n} planes but BAND0..BAND{n - 1} do not name "
                             "all of them", path)
        names = [str(b).strip() for b in names]
    elif declared is not None:
        names = list(declared)
    else:
        raise InputError(f"3-D cube with {n} planes but no BANDS or BAND0..BAND{n - 1} "
                         "keywords naming them (pass bands=[...] to name them)", path)
    if len(names) != n:
        raise InputError(f"BANDS names {len(names)} bands ({names}) but the cube has {n} "
                         "planes", path)
    _check_declared(names, declared, path)
    return names


def _check_declared(names, declared, path) -> None:
    if declared is not None and [str(b) for b in declared] != list(names):
        from .conform import match_bands

        try:
            same = match_bands(list(names), list(declared), path=path) == list(range(len(names)))
        except InputError:
            same = False
        if not same:
            raise InputError(f"the file names its bands {list(names)} but bands="
                             f"{list(declared)} was given; which is right?", path)


def _mask_bits(hdr) -> int | None:
    """Bits of the unusable LSST/HSC mask planes from ``MP_*`` keywords, None without them."""
    bits = [hdr.get(f"MP_{name}") for name in _BAD_MASK_PLANES]
    if all(b is None for b in bits):
        return None
    return sum(1 << int(b) for b in bits if b is not None)


def read_fits(path, flux_unit: str, *, default_band: str | None = None, bands=None,
              unit: str | None = None, zeropoint: float | None = None):
    """Read every band of one FITS file.

    Parameters
    ----------
    path : str or Path
    flux_unit : str
        The model's unit; each band's ``factor`` converts to it.
    default_band : str, optional
        Name for a single 2-D image whose header names no band (a one-band spec, or the band
        a per-band file name gives); checked against the header when it names one.
    bands : list of str, optional
        The caller's names of the file's bands, in plane (cube) or extension (MEF) order.
    unit, zeropoint : optional
        The caller's calibration, overriding the header's (`astrozoo.io.units.header_factor`).

    Returns
    -------
    images : list of BandImage
    sources : list of (hdu_index, plane or None)
        Where each band lives in the file (for the fast-path template).
    """
    path = Path(path)
    # A broken file is reported through InputError (or a flagged row); astropy's VerifyWarnings
    # about it would only repeat that on stderr, once per file in a million-row run. Three of
    # its warnings mean the file is damaged, and become errors: a checksum mismatch, and a
    # header it cannot parse (astropy then drops that HDU and every one after it).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fits.verify.VerifyWarning)
        warnings.filterwarnings("ignore", "(File may have been truncated|Unexpected extra "
                                "padding)", AstropyUserWarning)  # checked in _read_hdul
        warnings.filterwarnings("error", "(Check|Data)sum verification failed",
                                AstropyUserWarning)
        warnings.filterwarnings("error", "Error validating header", fits.verify.VerifyWarning)
        try:
            # Our own file object, closed here: where fits.open raises, astropy leaves the file
            # it opened to the garbage collector, one descriptor per bad file until then.
            fobj = open(path, "rb")
        except FileNotFoundError:
            raise InputError("file not found", path) from None
        except OSError as e:
            raise InputError(f"cannot open the file ({type(e).__name__}: {e})", path) from None
        with fobj:
            try:
                # Cutouts are read whole; a file far larger than one is mapped, so that only the
                # central window is read (conform crops it, and flags it).
                memmap = os.fstat(fobj.fileno()).st_size > _MMAP_BYTES
                _screen_headers(fobj, path)
                hdul = fits.open(_decompressed(fobj), memmap=memmap, checksum=True)
            except InputError:
                raise
            except fits.verify.VerifyWarning as e:  # before its base class, AstropyUserWarning
                raise InputError(f"corrupt FITS file: {' '.join(str(e).split())}", path) \
                    from None
            except AstropyUserWarning as e:
                raise InputError(f"checksum mismatch: {str(e).strip()} The file is corrupt.",
                                 path) from None
            except Exception as e:  # astropy raises OSError, ValueError, TypeError... on corrupt files
                raise InputError(f"not a readable FITS file ({type(e).__name__}: {e})", path) \
                    from None
            with hdul:
                try:
                    return _read_hdul(hdul, path, flux_unit, default_band, bands, unit,
                                      zeropoint)
                except InputError:
                    raise
                except Exception as e:
                    raise InputError(f"cannot read FITS data, file corrupt or truncated? "
                                     f"({type(e).__name__}: {e})", path) from None


#: An integer-valued card (fixed or free format; astropy reads ``HIERARCH NAXIS`` as NAXIS).
_INT_CARD = re.compile(rb"(?:HIERARCH +)?([A-Z0-9_-]+) *= *([-+]?[0-9]+) *(?:/|$)")
#: Counts that astropy loops over while building an HDU; the FITS standard allows 0..999.
_COUNT_KEYS = (b"NAXIS", b"ZNAXIS", b"TFIELDS")
#: Compressed streams astropy opens, by magic bytes.
_STREAMS = {b"\x1f\x8b": lambda f: gzip.GzipFile(fileobj=f), b"BZh": bz2.BZ2File,
            b"\xfd7zXZ": lzma.LZMAFile, b"PK\x03\x04": lambda f: _zip_member(f)}


def _zip_member(fobj):
    """The first member of a zip file (astropy reads single-member zips)."""
    archive = zipfile.ZipFile(fobj)
    return archive.open(archive.namelist()[0])


def _stream_opener(fobj):
    """The opener of a compressed stream astropy would open (by magic bytes), or None."""
    magic = fobj.read(6)
    fobj.seek(0)
    return next((f for m, f in _STREAMS.items() if magic.startswith(m)), None)


def _decompressed(fobj):
    """A compressed file's decompressed bytes (an in-memory file), else `fobj` itself.

    On a stream, where astropy cannot know the size, a damaged header makes it read HDU after
    HDU for ever; from bytes it stops at the end. Costs no extra memory: astropy cannot map a
    compressed file and reads its data whole anyway.
    """
    opener = _stream_opener(fobj)
    if opener is None:
        return fobj
    try:
        with opener(fobj) as stream:
            return io.BytesIO(stream.read())
    except (OSError, EOFError, ValueError, lzma.LZMAError, zipfile.BadZipFile):
        return fobj  # a damaged stream: astropy names the problem (rewound below)
    finally:
        fobj.seek(0)


def _screen_headers(fobj, path) -> None:
    """Refuse a file that does not start with ``SIMPLE``, a header whose NAXIS, ZNAXIS or
    TFIELDS is outside 0..999, or one with a negative axis length, PCOUNT or GCOUNT, before
    astropy parses it: astropy loops that many times building the HDU (``NAXIS = 1E20`` hangs it
    while memory runs out), or steps backwards and rereads the file forever. The headers are walked by hand because any astropy parse of the HDU loops; a
    header this walk cannot follow is left to astropy, which reports it."""
    opener = _stream_opener(fobj)
    try:
        stream = fobj if opener is None else opener(fobj)
        first = stream.read(80)
        if first and not re.match(rb"SIMPLE\s*=\s*[TF]", first):
            # astropy's own test, which it skips on compressed streams (their size is unknown)
            # and then loops while memory runs out
            raise InputError("not a FITS file: the first header card is not SIMPLE = T", path)
        stream.seek(0)
        while True:
            values, groups = {}, False
            while True:  # the header's blocks, up to the one holding END
                block = stream.read(2880)
                if len(block) < 2880:
                    return
                cards = [block[p:p + 80] for p in range(0, 2880, 80)]
                for card in cards:
                    if card.startswith(b"END") and not card[3:].strip():
                        break
                    groups = groups or re.match(rb"GROUPS  = +T", card) is not None
                    m = _INT_CARD.match(card)
                    if m is None:
                        continue
                    key, value = m.group(1), int(m.group(2))
                    if key in _COUNT_KEYS and not 0 <= value <= 999:
                        raise InputError(f"{key.decode()} = {value} in a header: not a FITS file "
                                         "(the standard allows at most 999)", path)
                    values.setdefault(key, value)
                else:
                    continue
                break
            axes = [values.get(b"NAXIS%d" % i, 0) for i in range(1, values.get(b"NAXIS", 0) + 1)]
            if axes and axes[0] == 0 and groups:
                axes = axes[1:]  # random groups: NAXIS1 = 0
            negative = [k.decode() for k, v in values.items() if v < 0 and (
                k in (b"GCOUNT", b"PCOUNT") or re.fullmatch(rb"NAXIS[0-9]+", k))]
            if negative:
                # astropy then steps backwards through the file and rereads it forever
                raise InputError(f"{negative[0]} = {values[negative[0].encode()]} in a header: "
                                 "not a FITS file (sizes cannot be negative)", path)
            size = abs(values.get(b"BITPIX", 8)) // 8 * values.get(b"GCOUNT", 1) * (
                values.get(b"PCOUNT", 0) + (math.prod(axes) if axes else 0))
            stream.seek(-(-size // 2880) * 2880, os.SEEK_CUR)
    except InputError:
        raise
    except (OSError, EOFError, ValueError, OverflowError, IndexError, lzma.LZMAError,
            zipfile.BadZipFile):
        return  # a damaged or truncated stream: astropy reports it
    finally:
        fobj.seek(0)


def calibration(get, flux_unit: str, unit, zeropoint, path) -> tuple[float, str | None]:
    """`~astrozoo.io.units.header_factor`, with a factor that is not a positive finite number
    (``MAGZP = 1000``, ``MAGZP = NAN``) refused rather than zeroing or blanking every pixel.

    Raises
    ------
    InputError
        Naming the file, for an unusable or absurd calibration.
    """
    try:
        factor, source = header_factor(get, flux_unit, unit=unit, zeropoint=zeropoint)
    except ValueError as e:
        raise InputError(str(e), path) from None
    except (ArithmeticError, TypeError) as e:  # a zero point of 1e300, of a complex number
        raise InputError(f"unusable flux calibration ({type(e).__name__}: {e})", path) from None
    if not (math.isfinite(factor) and factor > 0):
        raise InputError(f"the flux calibration ({source}) gives a conversion factor of "
                         f"{factor!r} to {flux_unit}, not a positive number", path)
    return factor, source


def _check_not_truncated(hdul, i, hdu, path) -> None:
    """Refuse an HDU whose header declares more data than the file holds, before astropy
    allocates it (a damaged ``NAXIS`` can declare terabytes)."""
    if isinstance(hdu, fits.CompImageHDU):
        return  # its header gives the decompressed size; astropy checks the table's rows
    info = hdul.fileinfo(i)
    end, size = info["datLoc"] + hdu.size, info["file"].size
    if size and end > size:
        raise InputError(f"truncated: HDU {i} declares {hdu.size} bytes of data, the file "
                         f"ends {size - info['datLoc']} bytes after its header", path)


def _plane_kind(hdr) -> str:
    name = str(hdr.get("EXTNAME", "")).strip().upper()
    if name in _MASK_PLANES:
        return "mask"
    if name in _ZERO_IS_BAD_PLANES:
        return "weight"
    if name in _IGNORED_PLANES:
        return "ignored"
    return "image"


def _read_hdul(hdul, path, flux_unit, default_band, declared, unit, zeropoint):
    primary = hdul[0].header
    hdus = [(i, h) for i, h in enumerate(hdul) if h.is_image and h.header.get("NAXIS", 0) > 0]
    if not hdus:
        if any(isinstance(h, fits.GroupsHDU) for h in hdul):
            raise InputError("random-groups data (interferometer visibilities), not an image",
                             path)
        if any(isinstance(h, (fits.BinTableHDU, fits.TableHDU)) for h in hdul):
            raise InputError("only table HDUs, no image (a catalogue goes in catalog=, with "
                             "survey images as {band: path})", path)
        raise InputError("no image data in any HDU", path)
    for i, h in hdus:
        _check_not_truncated(hdul, i, h, path)
    kinds = [_plane_kind(h.header) for _, h in hdus]
    science = [(i, h) for (i, h), k in zip(hdus, kinds) if k == "image"]
    if not science:
        raise InputError("no image plane (only mask or uncertainty planes)", path)
    pipeline = len(science) < len(hdus)
    if declared is not None and len(science) > 1 and len(declared) != len(science):
        raise InputError(f"bands={list(declared)} names {len(declared)} bands but the file "
                         f"has {len(science)} image extensions", path)
    images, sources = [], []
    for n_sci, (i, h) in enumerate(science):
        hdr = h.header

        def get(key, hdr=hdr):
            v = hdr.get(key)
            return primary.get(key) if v is None else v

        data = h.data
        if data is None:
            raise InputError(f"HDU {i} has NAXIS>0 but no data", path)
        factor, source = calibration(get, flux_unit, unit, zeropoint, path)
        scale = pixel_scale_of(hdr, hdul, path)
        blank = hdr.get("BLANK") if data.dtype.kind in "iu" else None
        mask = _pipeline_mask(hdul, hdus, kinds, i, data.shape, path) if pipeline else None
        kw = dict(factor=factor, blank=blank, pixel_scale=scale, calibrated=source is not None)
        if data.ndim == 3:
            names = _cube_bands(get, data.shape[0], path, declared)
            for k, name in enumerate(names):
                images.append(BandImage(name, data[k], mask=None if mask is None else mask[k],
                                        **kw))
                sources.append((i, k))
        elif data.ndim == 2:
            name = _image_band(hdr, primary, len(science) > 1 and not pipeline)
            if declared is not None:
                given = declared[n_sci] if len(science) > 1 else (
                    declared[0] if len(declared) == 1 else None)
                if given is not None:
                    if name is not None:
                        _check_declared([str(name).strip()], [given], path)
                    name = given
            if default_band is not None:
                if name is not None:
                    _check_declared([str(name).strip()], [default_band], path)
                name = name if name is not None else default_band
            if name is None:
                raise InputError("image names no band (no FILTER, BAND or EXTNAME keyword; "
                                 "pass bands=[...] to name it)", path)
            images.append(BandImage(str(name).strip(), data, mask=mask, **kw))
            sources.append((i, None))
        else:
            raise InputError(f"HDU {i} has {data.ndim} dimensions; expected a 2-D image or a "
                             "3-D (band, y, x) cube", path)
    return images, sources


def _image_band(hdr, primary, extname_is_band: bool):
    name = hdr.get("FILTER", hdr.get("BAND"))
    if name is None and extname_is_band:
        name = hdr.get("EXTNAME")
    if name is None:
        name = primary.get("FILTER", primary.get("BAND"))
    return name


def _pipeline_mask(hdul, hdus, kinds, image_index, shape, path):
    """Bad-pixel mask of the image at `image_index` from the mask and weight planes that follow
    it (up to the next image plane), or None when there are none."""
    pos = [i for i, _ in hdus].index(image_index)
    mask = None
    for (i, h), kind in zip(hdus[pos + 1:], kinds[pos + 1:]):
        if kind == "image":
            break
        if kind == "ignored":
            continue
        plane = np.asarray(h.data)
        if plane.shape != shape:
            raise InputError(f"{h.header.get('EXTNAME')} plane (HDU {i}) has shape {plane.shape}, "
                             f"the image {shape}", path)
        if kind == "mask":
            bits = _mask_bits(h.header)
            bad = (plane.astype(np.int64) & bits) != 0 if bits is not None else plane != 0
        else:
            bad = ~(plane > 0)
        mask = bad if mask is None else mask | bad
    return mask
