"""A site's own images as a data set: COCO read/write (``coco.py``) and what a node captures
(``capture.py``). Part of the ``vision`` library: imports neither ``edge`` nor ``sim_hardware``."""
