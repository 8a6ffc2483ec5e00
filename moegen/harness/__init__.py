"""Run generated kernels: executors (rocm / emulator), the compile cache, boundary cases, verdicts."""
