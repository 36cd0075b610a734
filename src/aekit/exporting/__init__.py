"""Export (``aekit export``): a run as an ONNX graph, checked in onnxruntime before it is kept
(``onnx``). Named ``exporting`` so that ``aekit.export``, the function, keeps its name."""
