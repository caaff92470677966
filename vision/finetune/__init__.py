"""Fine-tuning the shipped parcel model on a site's own data, on a CPU, and exporting it in
the form the runtime loads (``head.py``), and evaluating a model on a data set
(``evaluate.py``). Needs only numpy, OpenCV, onnx and onnxruntime: no torch on the board."""
