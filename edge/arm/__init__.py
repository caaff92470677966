"""The sorting arm's pure control core: a SCARA with a suction cup picking parcels off a
moving belt (conveyor tracking) into chutes and totes. Facts in, actions out, no I/O, no
clock, like edge/cell/; the node and its adapters (edge/arm/node*.py, adapter*.py) drive it.
docs/arm.md describes it."""
