"""Rendered by ptqv (llmcompressor): model_free_ptq for one PTQ job.

Usage: python quantize.py full    (run.sh passes the phase)
"""

import sys

MODEL = 'Qwen/Qwen3-8B'
SCHEME = 'FP8_DYNAMIC'
IGNORE = ['lm_head']
# phase -> (calibration samples, output directory)
PHASES = {'full': (512, '@WS@/output/checkpoint')}


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[1] not in PHASES:
        print(f"usage: quantize.py {'|'.join(PHASES)}", file=sys.stderr)
        return 2
    from llmcompressor import model_free_ptq

    _, output_dir = PHASES[argv[1]]  # data-free: no calibration samples
    model_free_ptq(model_stub=MODEL, save_directory=output_dir, scheme=SCHEME, ignore=IGNORE)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
