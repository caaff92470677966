"""wolfpack-edge node: config, supervisor, cell controller, safety and the `wolfpack` CLI."""
