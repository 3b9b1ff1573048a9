"""The pipeline's stages; `stages.common` is the library they share."""
import os

# Idle torch (OpenMP) threads sleep instead of spinning. libgomp reads this once, when torch
# loads, so it is set here, before any stage imports torch. On a busy machine a spinning pool
# keeps every core busy and then waits for the thread that another process holds: with one
# competing process, training ran at a sixteenth of its speed. `python -m bench.train_under_load`
# measures the policies side by side. An explicit OMP_WAIT_POLICY in the environment wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
