"""Flux units: the factor that turns a file's pixel values into the model's ``flux_unit``.

A FITS header states its calibration, in this order of precedence, by

- an AB zero point ``MAGZP`` or ``MAGZERO`` (pixel value ``p`` has AB magnitude
  ``ZP - 2.5 log10 p``; DES, PanSTARRS, SExtractor-style headers);
- ``FLUXMAG0``, the pixel value of a zero-magnitude source (HSC and SDSS ``calexp``), i.e.
  ``ZP = 2.5 log10 FLUXMAG0``;
- ``PHOTFLAM`` with ``PHOTPLAM`` (HST: erg s^-1 cm^-2 A^-1 per e-/s, and the pivot wavelength in
  A), i.e. ``ZP = -2.5 log10 PHOTFLAM - 5 log10 PHOTPLAM - 2.408``;
- a flux unit ``BUNIT`` (``nJy``, ``nanomaggy``, ...).

Zero points win over ``BUNIT`` since survey headers often keep ``BUNIT = 'ADU'`` next to them.
A caller's ``unit=`` or ``zeropoint=`` overrides the header. A header with none of these is
**uncalibrated**: `header_factor` says so, and the input pipeline warns and flags the row
(`Flag.UNCALIBRATED`) rather than silently assuming the model's unit. Maggies are defined
against the AB reference flux (3631 Jy), so nanomaggy has zero point 22.5 and nJy 31.4.
"""

from __future__ import annotations

import functools
import math

import astropy.units as u

__all__ = ["AB_REFERENCE", "ab_zero_point", "parse_flux_unit", "unit_factor", "header_factor",
           "zeropoint_factor", "CALIBRATION_KEYWORDS"]

#: Header keywords that state a flux calibration (see the module docstring).
CALIBRATION_KEYWORDS = ("MAGZP", "MAGZERO", "FLUXMAG0", "PHOTFLAM", "PHOTPLAM", "BUNIT")

#: Flux of AB magnitude 0.
AB_REFERENCE = 3631 * u.Jy
# Maggies are dimensionless in astropy; this equivalency ties them to Jy.
_MAGGY_EQUIV = u.zero_point_flux(AB_REFERENCE)
# Spellings found in survey headers that astropy's parser does not know.
_ALIASES = {"nanomaggies": "nanomaggy", "nanomaggys": "nanomaggy", "nmgys": "nmgy",
            "maggies": "maggy", "microjy": "uJy", "µjy": "uJy", "njy": "nJy", "ujy": "uJy",
            "mjy": "mJy", "jy": "Jy"}


@functools.lru_cache(maxsize=64)
def parse_flux_unit(name: str) -> u.UnitBase:
    """Parse a flux unit name (``"nJy"``, ``"nanomaggy"``, ...) that converts to Jy.

    Raises
    ------
    ValueError
        If the name is not a unit or not a spectral flux density.
    """
    s = str(name).strip()
    unit = u.Unit(_ALIASES.get(s.lower(), s))
    (1 * unit).to(u.Jy, _MAGGY_EQUIV)  # raises UnitConversionError for ADU, counts, ...
    return unit


@functools.lru_cache(maxsize=64)
def ab_zero_point(unit: str) -> float:
    """AB magnitude of one ``unit``: 31.4 for nJy, 22.5 for nanomaggy."""
    jy = (1 * parse_flux_unit(unit)).to_value(u.Jy, _MAGGY_EQUIV)
    return -2.5 * math.log10(jy / AB_REFERENCE.to_value(u.Jy))


@functools.lru_cache(maxsize=256)
def unit_factor(unit: str, target: str) -> float:
    """Multiply values in ``unit`` by this to get ``target``."""
    return (1 * parse_flux_unit(unit)).to_value(parse_flux_unit(target), _MAGGY_EQUIV)


def zeropoint_factor(zeropoint: float, target: str) -> float:
    """Factor from pixel values on an AB zero point to ``target``."""
    return 10 ** (-0.4 * (float(zeropoint) - ab_zero_point(target)))


def _header_zeropoint(get) -> tuple[float, str] | None:
    for key in ("MAGZP", "MAGZERO"):
        if get(key) is not None:
            return float(get(key)), key
    if get("FLUXMAG0") is not None:
        f0 = float(get("FLUXMAG0"))
        if not f0 > 0:
            raise ValueError(f"FLUXMAG0={f0!r} is not a positive flux")
        return 2.5 * math.log10(f0), "FLUXMAG0"
    if get("PHOTFLAM") is not None:
        flam, plam = float(get("PHOTFLAM")), get("PHOTPLAM")
        if plam is None:
            raise ValueError("PHOTFLAM without PHOTPLAM (the pivot wavelength) cannot be "
                             "turned into an AB zero point; pass zeropoint=")
        return -2.5 * math.log10(flam) - 5 * math.log10(float(plam)) - 2.408, "PHOTFLAM"
    return None


def header_factor(get, target: str, *, unit: str | None = None,
                  zeropoint: float | None = None) -> tuple[float, str | None]:
    """Factor from a header's calibration (or the caller's override) to ``target``.

    Parameters
    ----------
    get : callable
        ``get(keyword)`` returns the header value or None (lets callers fall back to the
        primary header of a multi-extension file).
    target : str
        The model's flux unit.
    unit, zeropoint : optional
        The caller's statement of the pixels' unit or AB zero point; overrides the header.

    Returns
    -------
    factor : float
        1.0 when uncalibrated.
    source : str or None
        What calibrated it (``"MAGZP"``, ``"BUNIT"``, ``"unit="``, ...), None when nothing did.

    Raises
    ------
    ValueError
        If the calibration present cannot be used (``BUNIT='ADU'`` with no zero point,
        ``PHOTFLAM`` without ``PHOTPLAM``).
    """
    if unit is not None and zeropoint is not None:
        raise ValueError("give unit= or zeropoint=, not both")
    if zeropoint is not None:
        return zeropoint_factor(zeropoint, target), "zeropoint="
    if unit is not None:
        return unit_factor(str(unit), target), "unit="
    zp = _header_zeropoint(get)
    if zp is not None:
        return zeropoint_factor(zp[0], target), zp[1]
    bunit = get("BUNIT")
    if bunit is None or not str(bunit).strip():
        return 1.0, None
    try:
        return unit_factor(str(bunit), target), "BUNIT"
    except (ValueError, u.UnitsError) as e:
        raise ValueError(f"BUNIT={bunit!r} is not a flux unit convertible to {target} and "
                         f"there is no zero point (MAGZP, FLUXMAG0, PHOTFLAM) to calibrate it; "
                         f"pass unit= or zeropoint= ({e})") from None
