"""3D belt scenes (MuJoCo, EGL) for training and cross-domain evaluation."""
