"""The FlyDSL backend: tile limits, device helpers, toolchain, compile, compile entry, audit;
backend.py implements moegen.backends.base.Backend over them.

Kept empty: every generated kernel imports device.py, so this package (and its imports) are
traced into each kernel's compile-cache key.
"""
