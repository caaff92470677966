#!/usr/bin/env bash
# Debian packages the tests use as real peers: mosquitto (MQTT broker), mbpoll (an
# independent Modbus client), openssh-server/-client (config flashing over SSH).
set -euo pipefail
need=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
command -v mbpoll >/dev/null 2>&1 || need+=(mbpoll)
# libmodbus (C), the peer bench/modbus.py measures our Modbus master against (via ctypes).
ldconfig -p 2>/dev/null | grep -q "libmodbus\.so\.5" || need+=(libmodbus5)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v ssh >/dev/null 2>&1 || need+=(openssh-client)
[ ${#need[@]} -eq 0 ] && exit 0
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
    echo "missing Debian packages: ${need[*]}; install them as root: apt-get install ${need[*]}" >&2
    exit 1
  fi
fi
echo "==> installing Debian packages: ${need[*]}" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# The packaged broker must not run as a system service: tests start their own on free ports.
if command -v systemctl >/dev/null 2>&1; then $sudo systemctl disable --now mosquitto >/dev/null 2>&1 || true; fi
