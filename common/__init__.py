"""Shared plumbing for every project: datasets, images, runs, CLI, callbacks, backends."""

import os

# Splitting the CPU into logical devices (to try --distribute without a GPU) has to
# reach XLA before JAX starts, so it happens here, the first thing any project imports.
_cpu_devices = os.environ.get("CPU_DEVICES", "")
if _cpu_devices.isdigit() and int(_cpu_devices) > 1 and "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={_cpu_devices}".strip()

# TensorFlow's C++ start-up chatter (CUDA probing on CPU machines) hides the real output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
