#!/usr/bin/env bash
# A 3-member RabbitMQ cluster (MQTT plugin) on loopback, for trying the fleet by hand:
#   scripts/rabbit-cluster.sh start /tmp/wp-rabbit   # prints each member's MQTT and AMQP URL
#   scripts/rabbit-cluster.sh stop /tmp/wp-rabbit    # stops the members by the pids it saved
# Needs the Debian package rabbitmq-server (scripts/system-deps.sh). Never touches a system
# RabbitMQ: own node names, ports, data directories and epmd port (docs/fleet-scale.md).
set -euo pipefail
cd "$(dirname "$0")/.."
py=.venv/bin/python
[ -x "$py" ] || py=python3
exec "$py" -m fleet_link.brain_pool_cluster "$@"
