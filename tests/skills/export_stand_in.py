"""A stand-in quantizer that delivers a real export (for the scenario tests: no GPU here).

It takes the quantizer's arguments like tests/launch/stand_in.py and writes, into
``$PTQV_EXPORT_PATH``, the committed output of the real ModelOpt 0.47.0 NVFP4 run on the tiny
llama source (tests/fixtures/data/modelopt-nvfp4-llama), so the gate at the end of a scenario
judges bytes a real quantizer wrote.
"""

import os
import shutil
import sys
from pathlib import Path

EXPORT = Path(__file__).resolve().parents[1] / "fixtures" / "data" / "modelopt-nvfp4-llama"

out = Path(os.environ["PTQV_EXPORT_PATH"])
shutil.copytree(EXPORT, out, dirs_exist_ok=True)
print(f"export stand-in: phase {os.environ['PTQV_PHASE']}, {len(sys.argv) - 1} arguments, wrote {out}")
