"""Camera sources, ONNX parcel detection, label reading, tracking and measurement."""
