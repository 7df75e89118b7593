#!/usr/bin/env bash
# Install the Debian packages the integration tests need, only when missing (idempotent).
#   slurmctld slurmd slurm-client munge : the real single-node SLURM of tests/slurm_cluster.sh
#   chromium chromium-driver            : opens analysis report.html headless in a test
set -euo pipefail
pkgs=(slurmctld slurmd slurm-client munge chromium chromium-driver)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "setup_system: missing Debian packages: ${missing[*]} (run as root, or install them; tests needing them will skip)" >&2
  exit 0
fi
echo "setup_system: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
