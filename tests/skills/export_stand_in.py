"""A stand-in quantizer that delivers a real export (for the scenario tests: no GPU here).

It takes the quantizer's arguments like tests/launch/stand_in.py and writes, into
``$PTQV_EXPORT_PATH``, the committed output of the real ModelOpt 0.47.0 run on the tiny llama
source for the ``--qformat`` it is given (``EXPORTS``), so the gate at the end of a scenario
judges bytes a real quantizer wrote for the recipe that was asked for. A qformat with no
recorded export exits 2, naming the ones it has, as a quantizer refuses an unknown format.
"""

import os
import shutil
import sys
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "fixtures" / "data"
EXPORTS = {"nvfp4": "modelopt-nvfp4-llama", "nvfp4_mlp_only": "modelopt-nvfp4mlp-llama"}

args = sys.argv[1:]
qformat = args[args.index("--qformat") + 1] if "--qformat" in args[:-1] else "nvfp4"
if qformat not in EXPORTS:
    print(f"export stand-in: no recorded export for --qformat {qformat} (have: {', '.join(EXPORTS)})")
    sys.exit(2)
out = Path(os.environ["PTQV_EXPORT_PATH"])
shutil.copytree(DATA / EXPORTS[qformat], out, dirs_exist_ok=True)
print(f"export stand-in: phase {os.environ['PTQV_PHASE']}, --qformat {qformat}, wrote {out}")
