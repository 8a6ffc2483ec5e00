"""moegen: a declarative generator of AMD GPU (FlyDSL) kernels for Mixture-of-Experts layers.

Pipeline (one module each): spec -> expand -> address_model -> render -> write/check
-> compile -> audit -> emulator.
"""

__version__ = "0.1.0"
