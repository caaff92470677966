"""The node: one process per board that builds the devices from the config, runs the cell
controller and the safety machine between them, and keeps every task alive."""
