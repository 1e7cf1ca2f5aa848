#!/usr/bin/env bash
# Build the Dockerfile and check the container it makes, on loopback:
#   - ready (/readyz) and healthy (its HEALTHCHECK), serving a small index mounted from here;
#   - one search by image and one by code (scripts/service_smoke.py);
#   - the server runs as a user other than root;
#   - on 0.0.0.0, a write is refused without a key, and accepted with NAC_HASH_API_KEY.
# Uses podman (installed with apt where it can be), or docker where a daemon answers. Where no registry answers,
# the base image is made from the Debian archive with mmdebstrap. Writes the image's size and the build's time to
# RESULTS (default: benchmarks/results/container/build.json).
#
# Environment: TORCH_INDEX (default PyTorch's CPU wheels, or PyPI where those cannot be reached), BASE_IMAGE
# (default python:3.11-slim, else the Debian-made one), RESULTS.
# Exit status: 0 checked, 1 a check failed, 3 no container engine can run here (nothing was checked).
set -euo pipefail
cd "$(dirname "$0")/.."
cpu_index=https://download.pytorch.org/whl/cpu
torch_index=${TORCH_INDEX:-}
results=${RESULTS:-benchmarks/results/container/build.json}
image=localhost/nac-hash:check
debian_base=localhost/nac-hash-base:debian
python=${PYTHON:-.venv/bin/python}
work=$(mktemp -d)
containers=()
cleanup() {
  for c in "${containers[@]}"; do $engine rm -f "$c" >/dev/null 2>&1 || true; done
  rm -rf "$work"
}
trap cleanup EXIT
say() { echo "container-check: $*" >&2; }

find_engine() {
  if command -v docker >/dev/null && docker info >/dev/null 2>&1; then engine=docker; return; fi
  if ! command -v podman >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing podman"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman runc mmdebstrap >/dev/null
  fi
  command -v podman >/dev/null || { say "no podman or docker can run here: skipped"; exit 3; }
  engine=podman
  # Debian's podman 4.3 with its default crun fails under these machines' limits; runc with explicit ulimits
  # runs. Only written where no configuration exists yet.
  if [ "$(id -u)" = 0 ] && [ ! -f /etc/containers/containers.conf ]; then
    local nofile
    nofile=$(ulimit -Hn)
    mkdir -p /etc/containers
    printf '[containers]\ndefault_ulimits = ["nofile=%s:%s", "nproc=32768:32768"]\n[engine]\nruntime = "runc"\n' \
      "$nofile" "$nofile" > /etc/containers/containers.conf
  fi
}

# A base image with Python 3.11 and pip from the Debian archive (no registry needed): the host's locally added
# CA certificates go in (pip must trust what the host trusts), and Debian's "externally managed" marker goes out.
debian_base_image() {
  $engine image exists "$debian_base" 2>/dev/null && return
  command -v mmdebstrap >/dev/null || { say "no registry and no mmdebstrap: cannot make a base image"; exit 3; }
  say "making $debian_base with mmdebstrap (about 2.5 minutes)"
  local suite
  suite=$(. /etc/os-release && echo "$VERSION_CODENAME")
  mmdebstrap --variant=minbase --include=python3,python3-venv,python3-pip,python-is-python3,ca-certificates,passwd \
    --customize-hook='cp -r /usr/local/share/ca-certificates/. "$1/usr/local/share/ca-certificates/" 2>/dev/null || true' \
    --customize-hook='chroot "$1" update-ca-certificates >/dev/null' \
    --customize-hook='rm -f "$1"/usr/lib/python3*/EXTERNALLY-MANAGED' \
    "$suite" "$work/base.tar" >/dev/null
  $engine import "$work/base.tar" "$debian_base" >/dev/null
}

base_image() {
  if [ -n "${BASE_IMAGE:-}" ]; then echo "$BASE_IMAGE"; return; fi
  if $engine image exists python:3.11-slim 2>/dev/null || timeout 60 $engine pull -q python:3.11-slim >/dev/null 2>&1
  then echo python:3.11-slim; return; fi
  debian_base_image
  echo "$debian_base"
}

# An index of a few generated images, built on the host, mounted into the container at the same path (the
# catalog records the images' folder) and writable by the container's user.
make_index() {
  "$python" - "$work/photos" <<'PY'
import sys
from pathlib import Path
import numpy as np
from PIL import Image
rng = np.random.default_rng(0)
for c in range(2):
    (Path(sys.argv[1]) / f"class{c}").mkdir(parents=True)
    for i in range(4):
        pixels = np.clip(rng.normal(60 + 120 * c, 30, (48, 48, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(Path(sys.argv[1]) / f"class{c}" / f"{i}.png")
PY
  .venv/bin/nac-hash index build "$work/photos" --out "$work/index" --no-progress >/dev/null
  chmod -R a+rwX "$work"
}

# run NAME PORT [ENV...]: start the image serving the index on 127.0.0.1:PORT.
run_container() {
  local name=$1 port=$2
  shift 2
  local env=()
  for e in "$@"; do env+=(-e "$e"); done
  containers+=("$name")
  # podman starts HEALTHCHECK timers through systemd, absent in containers like CI's: wait_healthy runs it instead.
  [ "$engine" = podman ] && env+=(--health-interval=disable)
  $engine run -d --name "$name" -p "127.0.0.1:$port:8000" -v "$work:$work" -e "NAC_HASH_INDEX=$work/index" \
    "${env[@]}" "$image" >/dev/null
}

wait_healthy() {
  [ "$engine" = podman ] || return 0  # docker runs the HEALTHCHECK itself; podman needs a timer, so run it here
  for _ in $(seq 60); do
    $engine healthcheck run "$1" >/dev/null 2>&1 && return
    sleep 2
  done
  say "$1: HEALTHCHECK never passed"; $engine logs "$1" | tail -20 >&2; exit 1
}

add_item() {  # add_item PORT [KEY] -> HTTP status of POST /items
  local key=()
  [ -n "${2:-}" ] && key=(-H "X-API-Key: $2")
  curl -s -o /dev/null -w '%{http_code}' "${key[@]}" -F "image=@$work/photos/class0/0.png" \
    "http://127.0.0.1:$1/items"
}

find_engine
started=$(date +%s)
base=$(base_image)
base_s=$(( $(date +%s) - started ))
# Whether this machine can run a container at all (not our image): where it cannot, nothing is checked.
$engine run --rm "$base" true >/dev/null 2>&1 || { say "$engine cannot run a container here: skipped"; exit 3; }
if [ -z "$torch_index" ]; then
  torch_index=$cpu_index
  curl -sf -o /dev/null --max-time 15 "$cpu_index/torch/" || { torch_index=https://pypi.org/simple
    say "PyTorch's CPU index cannot be reached: torch comes from PyPI (the CUDA build, several GB)"; }
fi
say "building $image on $base with torch from $torch_index"
previous=$($engine image inspect "$image" --format '{{.Id}}' 2>/dev/null || true)
started=$(date +%s)
$engine build -q --format docker --build-arg "BASE_IMAGE=$base" --build-arg "TORCH_INDEX=$torch_index" \
  -t "$image" . >/dev/null
build_s=$(( $(date +%s) - started ))
# The image this build replaced would stay behind untagged (several GB with torch): remove it.
if [ -n "$previous" ] && [ "$previous" != "$($engine image inspect "$image" --format '{{.Id}}')" ]; then
  $engine rmi "$previous" >/dev/null 2>&1 || true
fi
size=$($engine image inspect "$image" --format '{{.Size}}')

make_index
free_port() { "$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
open_port=$(free_port)
run_container nac-hash-check-open "$open_port"
"$python" scripts/service_smoke.py "http://127.0.0.1:$open_port" "$work/photos/class1/2.png" --wait 180 >&2
wait_healthy nac-hash-check-open
user=$($engine exec nac-hash-check-open id -u)
[ "$user" != 0 ] || { say "the server runs as root"; exit 1; }
status=$(add_item "$open_port")
[ "$status" = 403 ] || { say "a write without a key on 0.0.0.0 answered $status, not 403"; exit 1; }

key_port=$(free_port)
run_container nac-hash-check-key "$key_port" NAC_HASH_API_KEY=check-key
"$python" scripts/service_smoke.py "http://127.0.0.1:$key_port" "$work/photos/class0/1.png" --wait 180 >/dev/null
wrong=$(add_item "$key_port" wrong-key)
right=$(add_item "$key_port" check-key)
[ "$wrong" = 401 ] && [ "$right" = 201 ] || { say "writes with a wrong and the right key: $wrong, $right"; exit 1; }

mkdir -p "$(dirname "$results")"
"$python" - "$results" "$engine" "$base" "$torch_index" "$base_s" "$build_s" "$size" "$user" <<'PY'
import datetime, json, os, subprocess, sys
from nac_hash.provenance import cpuinfo_field
out, engine, base, index, base_s, build_s, size, user = sys.argv[1:]
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
version = subprocess.run([engine, "--version"], capture_output=True, text=True).stdout.strip()
json.dump({"command": "bash scripts/container-check.sh", "commit": commit, "date": datetime.date.today().isoformat(),
           "machine": f"{cpuinfo_field('model name')}, {os.cpu_count()} cores", "engine": version,
           "base_image": base, "torch_index": index, "base_image_s": int(base_s), "build_s": int(build_s), "image_bytes": int(size),
           "server_uid": int(user), "checks": ["readyz", "healthcheck", "search by image", "search by code",
           "non-root user", "write refused without a key (403)", "wrong key 401", "right key 201"]},
          open(out, "w"), indent=2)
PY
say "passed: built in ${build_s} s, image $(( size / 1000000 )) MB, server uid $user (results: $results)"
