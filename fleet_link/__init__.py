"""MQTT session, topic namespace, durable outbox, commands and the brain-side SDK."""
