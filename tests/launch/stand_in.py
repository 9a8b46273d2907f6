"""A tiny stand-in for a quantizer, for the launch tests (spec key ``quantizer_command``).

It receives the quantizer's real arguments and writes what it saw to
``$PTQV_EXPORT_PATH/stand_in.json``: the phase, its argv, the time and the NOTE variable.
``STAND_IN_FAIL=<phase>`` makes that phase exit 3; ``STAND_IN_SLEEP=<s>`` sleeps first.
"""

import json
import os
import sys
import time
from pathlib import Path

phase = os.environ["PTQV_PHASE"]
time.sleep(float(os.environ.get("STAND_IN_SLEEP", "0")))
out = Path(os.environ["PTQV_EXPORT_PATH"])
out.mkdir(parents=True, exist_ok=True)
record = {"phase": phase, "argv": sys.argv[1:], "time": time.time(), "note": os.environ.get("NOTE")}
(out / "stand_in.json").write_text(json.dumps(record))
print(f"stand-in quantizer: phase {phase}, {len(sys.argv) - 1} arguments")
sys.exit(3 if os.environ.get("STAND_IN_FAIL") == phase else 0)
