"""Shared plumbing for every project: datasets, images, runs, CLI, callbacks, backends."""

import os

# Splitting the CPU into logical devices (to try --distribute without a GPU) has to
# reach XLA before JAX starts, so it happens here, the first thing any project imports.
# The logical devices share the same few cores, so one can reach a collective long
# after the other: XLA's default 40 s wait before aborting is too short for that.
_cpu_devices = os.environ.get("CPU_DEVICES", "")
if _cpu_devices.isdigit() and int(_cpu_devices) > 1 and "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = " ".join(
        [
            os.environ.get("XLA_FLAGS", ""),
            f"--xla_force_host_platform_device_count={_cpu_devices}",
            "--xla_cpu_collective_call_terminate_timeout_seconds=900",
            "--xla_cpu_collective_call_warn_stuck_timeout_seconds=300",
        ]
    ).strip()

# TensorFlow's C++ start-up chatter (CUDA probing on CPU machines) hides the real output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
