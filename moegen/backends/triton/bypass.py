"""Run one boundary case of a Triton variant with the launcher's address guard bypassed, in its
own process (a wild pointer can kill the CUDA context, or this process).

    python -m moegen.backends.triton.bypass MODULE INTER EXPERTS TOPK TOKENS MODEL_DIM ARCH

Prints the per-row verdict; exit 0 if every checked row was right, 3 if some were wrong. Any
other exit status (an illegal-address fault, a signal) is the kernel faulting. The generated
boundary test of a whole_tensor variant runs it past the variant's line and requires it to be
wrong or to fault: what the guard prevents.
"""

from __future__ import annotations

import importlib
import sys

from moegen.core.sweep import BoundaryCase
from moegen.runtime import launch

EXIT_RIGHT, EXIT_WRONG = 0, 3


def main(argv: list[str]) -> int:
    from moegen.backends.triton import harness

    executor = harness.use_interpreter_without_gpu()
    name, inter, experts, topk, tokens, model_dim, arch = argv
    module = importlib.import_module(name)
    case = BoundaryCase("bypassed", int(inter), int(experts), int(topk), "n", int(tokens), False)
    with launch.unsafe_skip_address_guards():
        result = harness.run_case(module, case, executor, model_dim=int(model_dim), arch=arch)
    print(result.summary())
    if not result.passed:
        print(result.report())
    sys.stdout.flush()
    return EXIT_RIGHT if result.passed else EXIT_WRONG


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
