#!/usr/bin/env bash
# Prepare the helper-agent measurement of evals/README.md: a folder holding only what a fresh
# agent is handed (the installed skills, a `ptqv` on PATH, the exports, the model, a job.yaml
# stub), with the loopback cluster (sshd + SLURM) reachable from it.
#
#   evals/prepare_measurement.sh            build it (as root: it starts scripts/test-infra)
#   evals/prepare_measurement.sh --summary  what the measured agent ran through ptqv, and how
#                                           many characters each command printed
#
# Settings (environment): MEASURE_DIR (/tmp/measure, handed to the agent), MEASURE_KEY
# (/tmp/measure.key: the answers, the prompts, the call log and the venv; never handed over).
#
# Handed over:  $MEASURE_DIR/skills     the pack, from `ptqv skills install --target`
#               $MEASURE_DIR/bin/ptqv   the CLI from a wheel in a fresh venv (no checkout); it
#                                       runs with HOME=$MEASURE_DIR/home (known_hosts and
#                                       clusters.yaml of the loopback cluster `loop`) and logs
#                                       every call to $MEASURE_KEY/log
#               $MEASURE_DIR/gate-fail, gate-pass   {export,source}: two exports it has not seen
#               $MEASURE_DIR/quantize   tiny-llama (local copy) and job.yaml (quantizer only)
# On the cluster (user ptqvtest): /home/ptqvtest/measure/{models/tiny-llama, handed/{export,
# source}, the export stand-in}, jobs under /home/ptqvtest/measure/ws.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DIR="${MEASURE_DIR:-/tmp/measure}"
KEY="${MEASURE_KEY:-/tmp/measure.key}"
INFRA="${PTQV_INFRA_DIR:-/tmp/ptqv-infra}"
FIXTURES="$ROOT/tests/fixtures/data"
REMOTE=/home/ptqvtest/measure

say() { printf '[measure] %s\n' "$*" >&2; }

if [ "${1:-}" = "--summary" ]; then
  [ -d "$KEY/log" ] || { say "no calls logged in $KEY/log yet"; exit 1; }
  total=0 count=0
  for argv in "$KEY"/log/*.argv; do
    id="${argv%.argv}"
    chars=$(( $(wc -m <"$id.out") + $(wc -m <"$id.err") ))
    total=$((total + chars)) count=$((count + 1))
    printf '%s\texit %s\t%6d chars\t%s\n' "$(basename "$id")" "$(cat "$id.rc" 2>/dev/null || echo '?')" \
      "$chars" "$(cat "$argv")"
  done
  printf 'ptqv: %d commands, %d characters printed (add the skill text and files it opened)\n' \
    "$count" "$total"
  exit 0
fi

# Start from nothing, but never delete a folder this script did not make.
for d in "$DIR" "$KEY"; do
  if [ -e "$d" ]; then
    [ -e "$d/.ptqv-measure" ] || { say "$d exists and was not made by this script: move it away"; exit 2; }
    rm -rf "$d"
  fi
  mkdir -p "$d"
  touch "$d/.ptqv-measure"
done

say "starting the loopback sshd and SLURM (scripts/test-infra/start.sh ssh slurm)"
bash "$ROOT/scripts/test-infra/start.sh" ssh slurm
ssh_key="$(sed -n 's/^PTQV_SSH_KEY=//p' "$INFRA/env")"
ssh_port="$(sed -n 's/^PTQV_SSH_PORT=//p' "$INFRA/env")"
ssh_user="$(sed -n 's/^PTQV_SSH_USER=//p' "$INFRA/env")"

say "building the wheel and a fresh venv (no checkout on the agent's path)"
python3 -m pip wheel --quiet --no-deps --no-build-isolation -w "$KEY/dist" "$ROOT"
python3 -m venv --without-pip "$KEY/venv"
python3 -m pip --python "$KEY/venv/bin/python" install --quiet "$KEY"/dist/ptq_validators-*.whl

mkdir -p "$DIR/bin" "$DIR/home/.ssh" "$DIR/home/.config/modelopt" "$KEY/log"
chmod 700 "$DIR/home/.ssh"
cp "$INFRA/ssh/known_hosts" "$DIR/home/.ssh/known_hosts"
cat >"$DIR/home/.config/modelopt/clusters.yaml" <<EOF
clusters:
  loop:
    login_node: 127.0.0.1
    port: $ssh_port
    user: $ssh_user
    ssh_key: $ssh_key
    workspace: $REMOTE/ws
    gpu_type: H100
EOF
cat >"$DIR/bin/ptqv" <<EOF
#!/usr/bin/env bash
# ptqv of the measurement: the installed wheel, with this folder's HOME; each call is logged.
n=\$(find "$KEY/log" -maxdepth 1 -name '*.argv' | wc -l)
id="$KEY/log/\$(printf '%03d' "\$((n + 1))")"
printf '%q ' ptqv "\$@" >"\$id.argv"
HOME="$DIR/home" "$KEY/venv/bin/ptqv" "\$@" 2> >(tee "\$id.err" >&2) | tee "\$id.out"
rc=\${PIPESTATUS[0]}
wait
echo "\$rc" >"\$id.rc"
exit "\$rc"
EOF
chmod +x "$DIR/bin/ptqv"
ptqv_key() { HOME="$DIR/home" "$KEY/venv/bin/ptqv" "$@"; }  # unlogged: the preparation's own calls

ptqv_key skills install --target "$DIR/skills" >/dev/null

# Gate: a ModelOpt NVFP4 MoE export with a stale pickle beside it (FAIL: safety), and a ModelOpt
# INT4 AWQ export of the tiny llama (PASS). Neither is a scenario of evals.json.
mkdir -p "$DIR/gate-fail" "$DIR/gate-pass"
cp -r "$FIXTURES/modelopt-nvfp4-moe" "$DIR/gate-fail/export"
cp -r "$FIXTURES/src-moe" "$DIR/gate-fail/source"
printf 'a stale pickle left by an earlier export\n' >"$DIR/gate-fail/export/pytorch_model.bin"
cp -r "$FIXTURES/modelopt-int4awq-llama" "$DIR/gate-pass/export"
cp -r "$FIXTURES/src-llama" "$DIR/gate-pass/source"

# Quantize on the cluster: a local copy for inspect/plan, the same model and the export stand-in
# (with the committed export it delivers beside it) on the cluster.
mkdir -p "$DIR/quantize" "$KEY/upload/tests/skills" "$KEY/upload/tests/fixtures/data" "$KEY/upload/handed"
cp -r "$FIXTURES/src-llama" "$DIR/quantize/tiny-llama"
cp "$ROOT/tests/skills/export_stand_in.py" "$KEY/upload/tests/skills/"
cp -r "$FIXTURES/modelopt-nvfp4-llama" "$FIXTURES/modelopt-nvfp4mlp-llama" "$KEY/upload/tests/fixtures/data/"
cp -r "$FIXTURES/src-llama" "$KEY/upload/models-tiny-llama"
cp -r "$FIXTURES/modelopt-fp8-llama" "$KEY/upload/handed/export"
cp -r "$FIXTURES/src-llama" "$KEY/upload/handed/source"
ptqv_key remote run loop -- rm -rf "$REMOTE"
ptqv_key remote sync loop "$KEY/upload/tests" "$REMOTE/tests" >/dev/null
ptqv_key remote sync loop "$KEY/upload/models-tiny-llama" "$REMOTE/models/tiny-llama" >/dev/null
ptqv_key remote sync loop "$KEY/upload/handed" "$REMOTE/handed" >/dev/null
cat >"$DIR/quantize/job.yaml" <<EOF
quantizer_command: [python3, $REMOTE/tests/skills/export_stand_in.py]
EOF

# The answers, for whoever scores the transcripts (computed now, from the installed wheel).
{
  echo "# Expected outcomes (never hand this folder to the measured agent)"
  for task in gate-fail gate-pass; do
    echo
    echo "## $task: ptqv gate $DIR/$task/export --source $DIR/$task/source"
    (cd "$DIR/$task" && ptqv_key gate export --source source --limit 2 | sed -n '1,2p;/^| Size vs source/p;/^| Layer precision counts/p;/| FAIL /p;/| WARN /p') || true
  done
  echo
  echo "## gate-cluster: ptqv gate $REMOTE/handed/export --cluster loop --source loop:$REMOTE/handed/source"
  ptqv_key gate "$REMOTE/handed/export" --cluster loop --source "loop:$REMOTE/handed/source" --limit 2 \
    | sed -n '1,2p;/^| Size vs source/p;/^| Layer precision counts/p' || true
  echo
  echo "## quantize: the gate at the end passes (NVFP4 of the tiny llama, Plan vs export PASS)"
  echo
  echo "## characters of the installed skills"
  wc -m "$DIR"/skills/*/SKILL.md
} >"$KEY/EXPECTED.md"
cp "$ROOT/evals/measurement-prompts.md" "$KEY/prompts.md"
say "ready: hand the agent $DIR (PATH=$DIR/bin:\$PATH; its skills folder: $DIR/skills)"
say "answers: $KEY/EXPECTED.md; prompts: $KEY/prompts.md; afterwards: $0 --summary"
say "stop the loopback services when done: bash $ROOT/scripts/test-infra/stop.sh ssh slurm"
