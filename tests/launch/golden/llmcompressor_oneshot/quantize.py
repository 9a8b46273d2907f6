"""Rendered by ptqv (llmcompressor): oneshot for one PTQ job.

Usage: python quantize.py smoke|full    (run.sh passes the phase)
"""

import sys

MODEL = 'Qwen/Qwen3-8B'
DATASET = 'cnn_dailymail'
RECIPE = '@WS@/scripts/recipe.yaml'  # the scheme and the ignore list are in the recipe
MAX_SEQ_LENGTH = 384
TRUST_REMOTE_CODE = False
# phase -> (calibration samples, output directory)
PHASES = {'smoke': (4, '@WS@/output/smoke'), 'full': (512, '@WS@/output/checkpoint')}


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[1] not in PHASES:
        print(f"usage: quantize.py {'|'.join(PHASES)}", file=sys.stderr)
        return 2
    samples, output_dir = PHASES[argv[1]]
    from llmcompressor import oneshot

    oneshot(
        model=MODEL,
        dataset=DATASET,
        recipe=RECIPE,
        num_calibration_samples=samples,
        max_seq_length=MAX_SEQ_LENGTH,
        output_dir=output_dir,
        trust_remote_code_model=TRUST_REMOTE_CODE,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
