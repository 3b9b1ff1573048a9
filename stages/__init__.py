"""The pipeline's stages; `stages.common` is the library they share."""
import os
import sys
import warnings

# Idle torch (OpenMP) threads sleep instead of spinning. libgomp reads this once, when torch
# loads, so it is set here, before any stage imports torch. On a busy machine a spinning pool
# keeps every core busy and then waits for the thread that another process holds: with one
# competing process, training ran at a sixteenth of its speed. `python -m bench.train_under_load`
# measures the policies side by side. An explicit OMP_WAIT_POLICY in the environment wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# OpenCV's IPP picks its kernels by processor, and its AVX-512 kernels round a few last bits
# differently from its AVX2 ones (SIFT's orientations, filter2D): enough to flip a borderline figure
# between two hosts. Pinned to the AVX2 kernels, an AVX-512 host answers as an AVX2 host does, at
# no measurable cost (`bench` records the path in `machine`). OpenCV reads this once, when cv2
# loads, so it is set here, before any stage imports cv2. An explicit OPENCV_IPP wins.
if "cv2" in sys.modules and "OPENCV_IPP" not in os.environ:
    warnings.warn("cv2 was imported before stages, so OpenCV's IPP kernels follow this processor and the "
                  "keypoint detector may answer borderline figures differently from the record; import "
                  "stages first, or set OPENCV_IPP=avx2", RuntimeWarning, stacklevel=2)
os.environ.setdefault("OPENCV_IPP", "avx2")
