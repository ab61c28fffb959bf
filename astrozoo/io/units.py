"""Flux units: the factor that turns a file's pixel values into the model's ``flux_unit``.

A FITS header states its calibration by an AB zero point ``MAGZP`` (pixel value ``p`` has AB
magnitude ``MAGZP - 2.5 log10 p``) or by a flux unit ``BUNIT``. ``MAGZP`` wins when both are
present, since survey headers often keep ``BUNIT = 'ADU'`` next to it. A header with neither is
taken to be in the model's unit already. Maggies are defined against the AB reference flux
(3631 Jy), so nanomaggy has zero point 22.5 and nJy 31.4.
"""

from __future__ import annotations

import functools
import math

import astropy.units as u

__all__ = ["AB_REFERENCE", "ab_zero_point", "parse_flux_unit", "unit_factor", "header_factor"]

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


def header_factor(get, target: str) -> float:
    """Factor from a header's ``MAGZP`` or ``BUNIT`` to ``target`` (1 when it has neither).

    Parameters
    ----------
    get : callable
        ``get(keyword)`` returns the header value or None (lets callers fall back to the
        primary header of a multi-extension file).
    target : str
        The model's flux unit.

    Raises
    ------
    ValueError
        If ``BUNIT`` is not a flux unit and there is no ``MAGZP`` to calibrate it.
    """
    magzp = get("MAGZP")
    if magzp is not None:
        return 10 ** (-0.4 * (float(magzp) - ab_zero_point(target)))
    bunit = get("BUNIT")
    if bunit is None or not str(bunit).strip():
        return 1.0
    try:
        return unit_factor(str(bunit), target)
    except (ValueError, u.UnitsError) as e:
        raise ValueError(f"BUNIT={bunit!r} is not a flux unit convertible to {target} and "
                         f"there is no MAGZP to calibrate it ({e})") from None
