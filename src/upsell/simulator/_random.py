"""Counter-based random numbers: every draw is a pure function of (seed, purpose, account, day, n).

The simulator never consumes a shared random stream. A draw for account ``i`` on day ``d`` is a hash
of those numbers (SplitMix64's finaliser, Steele, Lea and Flood, "Fast splittable pseudorandom number
generators", OOPSLA 2014), so it does not depend on which other accounts exist, on how many events they
produced, or on the offers they were made. That is what makes the counterfactual world exact: an
account nobody made an offer to lives the same life, draw for draw, in both worlds.
"""

from __future__ import annotations

import hashlib

import numpy as np
import numpy.typing as npt

U64 = npt.NDArray[np.uint64]
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S11 = (np.uint64(s) for s in (30, 27, 31, 11))
_TO_UNIT = 2.0**-53


def _mix(z: U64) -> U64:
    z = z + _GOLDEN
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


def stream(seed: int, purpose: str) -> int:
    """A 64-bit key for one kind of draw, stable across Python versions and platforms."""
    digest = hashlib.blake2b(f"{seed}:{purpose}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def bits(key: int, accounts: npt.ArrayLike, day: int = 0, n: npt.ArrayLike = 0) -> U64:
    """64 random bits per element, a function of (key, account, day, n) only."""
    a = np.asarray(accounts, dtype=np.uint64)
    z = _mix(a ^ np.uint64(key))
    z = _mix(z ^ np.uint64(day & 0xFFFFFFFF))
    return _mix(z ^ np.asarray(n, dtype=np.uint64))


def uniform(key: int, accounts: npt.ArrayLike, day: int = 0, n: npt.ArrayLike = 0) -> F64:
    """Uniform on [0, 1) per element."""
    return (bits(key, accounts, day, n) >> _S11).astype(np.float64) * _TO_UNIT


def normal(key: int, accounts: npt.ArrayLike, day: int = 0, n: npt.ArrayLike = 0) -> F64:
    """Standard normal per element (Box-Muller over two independent uniforms)."""
    n_arr = np.asarray(n, dtype=np.uint64) << np.uint64(1)
    u1 = uniform(key, accounts, day, n_arr)
    u2 = uniform(key, accounts, day, n_arr | np.uint64(1))
    return np.sqrt(-2.0 * np.log1p(-u1)) * np.cos(2.0 * np.pi * u2)


def poisson(u: F64, lam: npt.ArrayLike) -> I64:
    """Poisson quantiles of uniforms `u` (inverse CDF; a normal approximation above lambda 60)."""
    lam_arr = np.broadcast_to(np.asarray(lam, dtype=np.float64), u.shape)
    out = np.zeros(u.shape, dtype=np.int64)
    big = lam_arr > 60
    if big.any():
        # Wilson-Hilferty-free normal approximation with continuity: fine for counts this large.
        z = _ndtri(u[big])
        out[big] = np.maximum(0, np.rint(lam_arr[big] + np.sqrt(lam_arr[big]) * z)).astype(np.int64)
    idx = np.flatnonzero(~big & (lam_arr > 0))
    if idx.size == 0:
        return out
    lam_s, u_s = lam_arr[idx], u[idx]
    p = np.exp(-lam_s)
    cdf = p.copy()
    k = 0
    while idx.size:
        more = u_s > cdf
        idx, lam_s, u_s, p, cdf = idx[more], lam_s[more], u_s[more], p[more], cdf[more]
        if not idx.size or k > 400:
            break
        k += 1
        out[idx] += 1
        p = p * lam_s / k
        cdf = cdf + p
    return out


def _ndtri(u: F64) -> F64:
    """The standard normal quantile (Acklam's rational approximation, relative error < 1.2e-9)."""
    a = (-3.969683028665376e01, 2.209460984245205e02, -2.759285104469687e02,
         1.383577518672690e02, -3.066479806614716e01, 2.506628277459239e00)  # fmt: skip
    b = (-5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02,
         6.680131188771972e01, -1.328068155288572e01)  # fmt: skip
    c = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e00,
         -2.549732539343734e00, 4.374664141464968e00, 2.938163982698783e00)  # fmt: skip
    d = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00, 3.754408661907416e00)
    u = np.clip(u, 1e-300, 1 - 1e-16)
    out = np.empty_like(u)
    low, high = u < 0.02425, u > 1 - 0.02425
    mid = ~(low | high)
    q = u[mid] - 0.5
    r = q * q
    out[mid] = (
        (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5])
        * q
        / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1)
    )
    for mask, sign, tail in ((low, 1.0, u[low]), (high, -1.0, 1 - u[high])):
        q = np.sqrt(-2 * np.log(tail))
        out[mask] = sign * (
            (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5])
            / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1)
        )
    return out


def choose(u: F64, weights: F64) -> I64:
    """Row-wise categorical draw: `weights` is (len(u), k) and rows need not be normalised."""
    cum = np.cumsum(weights, axis=1)
    total = cum[:, -1:]
    picked = np.minimum((u[:, None] * total >= cum).sum(axis=1), weights.shape[1] - 1)
    return np.asarray(picked, dtype=np.int64)
