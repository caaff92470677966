"""VDA 5050 2.1 vehicle side: topics, message models, bounded and schema-checked decoding of
what the master control sends, header-stamped builders of what the vehicle sends, and the MQTT
client with the standard's QoS, retain and last-will rules. Knows nothing of ``edge``."""
