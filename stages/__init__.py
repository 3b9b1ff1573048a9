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

# OpenCV picks its kernels by processor, and its AVX-512 ones round a few last bits differently
# from its AVX2 ones: IPP's (SIFT's orientations, filter2D) and OpenCV's own dispatched code
# (SIFT's descriptors). That is enough to change a borderline figure's masks between two hosts
# (3 of the 72 validation figures). Both are held at AVX2, so an AVX-512 host answers as an AVX2
# host does, at no measurable cost (`bench` records the IPP path in `machine`). OpenCV reads
# these once, when cv2 loads, so they are set here, before any stage imports cv2. Explicit
# OPENCV_IPP and OPENCV_CPU_DISABLE settings win.
AVX2_ONLY = {"OPENCV_IPP": "avx2", "OPENCV_CPU_DISABLE": "AVX512-SKX,AVX512-CLX,AVX512F,AVX512-COMMON"}
if "cv2" in sys.modules and not AVX2_ONLY.keys() <= os.environ.keys():
    warnings.warn("cv2 was imported before stages, so OpenCV's kernels follow this processor and the "
                  "keypoint detector may answer borderline figures differently from the record; import "
                  "stages first, or set " + " and ".join(f"{k}={v}" for k, v in AVX2_ONLY.items()),
                  RuntimeWarning, stacklevel=2)
for name, value in AVX2_ONLY.items():
    os.environ.setdefault(name, value)
