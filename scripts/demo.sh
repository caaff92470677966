#!/usr/bin/env bash
# The main job on a fresh machine. Until the simulated sorting cell exists: start the
# simulated MCU on a pty (with a slightly noisy line), identify it, run 2,000 round trips
# against it and show the results; the simulator is stopped on exit or Ctrl-C.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
"$root/scripts/venv.sh"
wolfpack="$root/.venv/bin/wolfpack"

work="$(mktemp -d "${TMPDIR:-/tmp}/wolfpack-demo.XXXXXX")"
link="$work/mcu"
sim_pid=""
cleanup() {
  if [ -n "$sim_pid" ] && kill -0 "$sim_pid" 2>/dev/null; then
    kill -TERM "$sim_pid" 2>/dev/null || true
    wait "$sim_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "==> starting the simulated MCU (250000 baud modelled, 1 corrupted byte in 1,000)"
"$wolfpack" sim mcu --link "$link" --baud 250000 --noise 0.001 &
sim_pid=$!
for _ in $(seq 100); do
  [ -L "$link" ] && break
  kill -0 "$sim_pid" 2>/dev/null || { echo "the simulator exited" >&2; exit 1; }
  sleep 0.05
done
[ -L "$link" ] || { echo "the simulator did not create $link" >&2; exit 1; }

echo
echo "==> wolfpack mcu info --port $link"
"$wolfpack" mcu info --port "$link"
echo
echo "==> wolfpack mcu ping --port $link --count 2000"
"$wolfpack" mcu ping --port "$link" --count 2000
echo
echo "Bad frames and retransmits above are the injected noise, met and recovered from;"
echo "'0 lost' means every command arrived exactly once."
