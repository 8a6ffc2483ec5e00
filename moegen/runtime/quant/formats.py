"""The quantized storage formats the host helpers produce: one table, read by property.

Upstream facts (ROCm/aiter e4048607, ROCm/FlyDSL 11c4174d; cited, not copied):
- fp8 is torch.float8_e4m3fnuz on gfx942 (largest finite 240) and torch.float8_e4m3fn on
  gfx950 (the OCP encoding, largest finite 448): FlyDSL tests/kernels/test_moe_gemm.py picks
  DTYPE_FP8 by arch this way.
- int8 is symmetric with 127 (aiter aiter/ops/quant.py `pertoken_quant`, dtypeMax defaults to
  iinfo(int8).max).
- int4 is symmetric with 7, held unpacked in an int8 container before packing: aiter's W4A8
  (a8w4) path quantizes weights with `pertoken_quant(w, quant_dtype=int8, dtypeMax=7)`
  (op_tests/test_moe_2stage.py), its W4A16 (a16wi4) path with `per_1x32_i4_quant`, which
  rounds and clamps to [-7, 7] (aiter/ops/quant.py); FlyDSL's moe_gemm_2stage tests do the
  same (tests/kernels/test_moe_gemm_2stage.py, `dtypeMax: 7`). -8 is never produced.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class QuantFormat:
    """How quantized values are stored and rounded.

    `storage` holds the unpacked values (int4 sits in an int8 container until `pack_int4`);
    `qmax` is the largest magnitude a value may take (the scale maps a row's amax onto it);
    `integer` formats round half to even onto integers, the others round through a cast to
    `storage` (round to nearest even, torch's float8 casts); `bits` per stored value."""

    name: str
    storage: torch.dtype
    qmax: float
    integer: bool
    bits: int

    @property
    def packed_per_byte(self) -> int:
        """Values per stored byte once packed (2 for int4, else 1)."""
        return 8 // self.bits


FORMATS: dict[str, QuantFormat] = {
    f.name: f
    for f in (
        QuantFormat("fp8_e4m3fnuz", torch.float8_e4m3fnuz, 240.0, False, 8),
        QuantFormat("fp8_e4m3fn", torch.float8_e4m3fn, 448.0, False, 8),
        QuantFormat("int8", torch.int8, 127.0, True, 8),
        QuantFormat("int4", torch.int8, 7.0, True, 4),
    )
}
"""Every format, by name. fp8 formats are also found by their torch dtype."""

_BY_DTYPE = {f.storage: f for f in FORMATS.values() if f.bits == 8}


def quant_format(fmt: str | torch.dtype | QuantFormat, what: str = "fmt") -> QuantFormat:
    """The QuantFormat named by `fmt`: a FORMATS name, an 8-bit storage dtype, or a format."""
    if isinstance(fmt, QuantFormat):
        return fmt
    found = FORMATS.get(fmt) if isinstance(fmt, str) else _BY_DTYPE.get(fmt)
    if found is None:
        raise ValueError(
            f"{what}={fmt!r} is not a quantized format; use one of {sorted(FORMATS)} "
            f"(or the torch dtypes {sorted(str(d) for d in _BY_DTYPE)})"
        )
    return found
