"""The Triton backend: tile limits, device helpers, the CPU interpreter's executor, the AMD
compile probe; backend.py implements moegen.backends.base.Backend over them.

Kept empty: every generated Triton kernel imports device.py through this package.
"""
