#!/usr/bin/env bash
# Debian packages the tests use as real peers: mosquitto (MQTT broker), mbpoll (an
# independent Modbus client), openssh-server/-client (config flashing over SSH).
set -euo pipefail
need=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
command -v mbpoll >/dev/null 2>&1 || need+=(mbpoll)
# mosquitto_pub/_sub: the operators' commands of docs/operators.md, run as written (issue 17).
command -v mosquitto_pub >/dev/null 2>&1 || need+=(mosquitto-clients)
# tmux: the terminal wolfpack monitor's live table is captured from (issue 17).
command -v tmux >/dev/null 2>&1 || need+=(tmux)
# libmodbus (C), the peer bench/modbus.py measures our Modbus master against (via ctypes).
ldconfig -p 2>/dev/null | grep -q "libmodbus\.so\.5" || need+=(libmodbus5)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v ssh >/dev/null 2>&1 || need+=(openssh-client)
# The C firmware (firmware/, issue 19): host build with gcc, the ATmega2560 build with gcc-avr
# and avr-libc, the simavr runner (libsimavr + its uart_pty part, libelf), avrdude to flash.
command -v avr-gcc >/dev/null 2>&1 || need+=(gcc-avr)
[ -f /usr/lib/avr/include/avr/io.h ] || need+=(avr-libc)
command -v simavr >/dev/null 2>&1 || need+=(simavr)
[ -f /usr/include/simavr/sim_avr.h ] || need+=(libsimavr-dev)
ldconfig -p 2>/dev/null | grep -q "libsimavrparts\.so" || need+=(libsimavrparts1)
[ -f /usr/include/libelf.h ] || need+=(libelf-dev)
command -v avrdude >/dev/null 2>&1 || need+=(avrdude)
# A real Prometheus server that scrapes a simulated node's /metrics (issue 17, docs/metrics.md).
command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
# npm (with node): scripts/asyncapi-tools.sh installs the AsyncAPI validator with it (issue 17).
command -v npm >/dev/null 2>&1 || need+=(npm)
# RabbitMQ 3.10 with its MQTT plugin: the 3-node cluster of the fleet tests and bench (issue 18).
[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || need+=(rabbitmq-server)
# EGL + Mesa's software OpenGL: MuJoCo's offscreen renderer for the 3D training/test renders
# (issue 16, training/render3d, tests/vision/test_dataset_render3d.py; MUJOCO_GL=egl).
ldconfig -p 2>/dev/null | grep -q "libEGL_mesa\.so" || need+=(libegl-mesa0 libegl1 libgl1-mesa-dri)
# systemd-analyze: the shipped unit and its real-time drop-in checked by systemd's parser.
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
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
# Nor Prometheus (and the node exporter it may pull in): the tests start their own.
if command -v systemctl >/dev/null 2>&1; then
  $sudo systemctl disable --now prometheus prometheus-node-exporter >/dev/null 2>&1 || true
elif [ -x /etc/init.d/prometheus ]; then
  $sudo /etc/init.d/prometheus stop >/dev/null 2>&1 || true
fi
# Nor RabbitMQ (issue 18): fleet_link/brain_pool_cluster.py starts its own members on free ports.
if command -v systemctl >/dev/null 2>&1; then
  $sudo systemctl disable --now rabbitmq-server epmd.socket epmd.service >/dev/null 2>&1 || true
fi
