"""Host-side quantization for the quantized MoE variants: formats (formats), scales and
int8smooth (scales), int4 packing and its preshuffled layouts (int4). Every name a caller
needs is re-exported here."""

from moegen.runtime.quant.formats import FORMATS, QuantFormat, quant_format
from moegen.runtime.quant.int4 import (
    INT4_LAYOUTS,
    group_scales_for_kernel,
    group_scales_from_kernel,
    int4_offset,
    pack_int4,
    shuffle_int4,
    unpack_int4,
    unshuffle_int4,
)
from moegen.runtime.quant.scales import (
    DEFAULT_GROUP,
    Quantized,
    dequantize,
    expanded_row,
    quantize_per_channel,
    quantize_per_group,
    quantize_rows,
    quantize_smooth,
    smooth,
)

__all__ = [
    "DEFAULT_GROUP",
    "FORMATS",
    "INT4_LAYOUTS",
    "QuantFormat",
    "Quantized",
    "dequantize",
    "expanded_row",
    "group_scales_for_kernel",
    "group_scales_from_kernel",
    "int4_offset",
    "pack_int4",
    "quant_format",
    "quantize_per_channel",
    "quantize_per_group",
    "quantize_rows",
    "quantize_smooth",
    "shuffle_int4",
    "smooth",
    "unpack_int4",
    "unshuffle_int4",
]
