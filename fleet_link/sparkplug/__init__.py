"""Sparkplug B 3.0 edge node beside the native ``wolfpack/v1`` namespace (docs/sparkplug.md).

The payloads are the Eclipse Tahu protobuf definitions (``sparkplug_b.proto``, EPL-2.0, see
``NOTICE.md``) compiled by protoc into ``sparkplug_b_pb2.py``; nothing here encodes protobuf
by hand. Modules: ``topics`` (namespace), ``payload`` (values, seq, aliases, bdSeq, STATE),
``edge_node`` (the session), ``config`` (the board's ``sparkplug:`` section). Nothing is
imported here, so loading a board config does not load protobuf or paho.
"""
