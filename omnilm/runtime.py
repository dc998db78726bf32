"""The machine mlx runs on: fast BLAS on Linux CPU, device and hardware facts."""
import ctypes
import os
import platform
import sys

OPENBLAS_CANDIDATES = (
    "/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0",
    "/usr/lib/aarch64-linux-gnu/openblas-pthread/libopenblas.so.0",
    "/usr/lib64/libopenblas.so.0",
)
_blas = None


def use_fast_blas():
    """Load OpenBLAS globally before mlx so its cblas symbols win over the bundled
    reference BLAS (the same effect as LD_PRELOAD). OMNILM_BLAS=reference opts out.
    Returns a short description of the BLAS in use."""
    global _blas
    if _blas is not None:
        return _blas
    if sys.platform != "linux":
        _blas = "Accelerate/Metal" if sys.platform == "darwin" else "default"
    elif os.environ.get("OMNILM_BLAS", "").lower() in ("reference", "off", "0"):
        _blas = "reference BLAS (OMNILM_BLAS=reference)"
    elif "openblas" in os.environ.get("LD_PRELOAD", ""):
        _blas = "OpenBLAS (LD_PRELOAD)"
    elif "mlx.core" in sys.modules:
        _blas = "unknown (mlx was imported before omnilm)"
    else:
        _blas = "reference BLAS (OpenBLAS not found; apt-get install libopenblas0-pthread)"
        for path in OPENBLAS_CANDIDATES:
            if os.path.exists(path):
                try:
                    lib = ctypes.CDLL(path, mode=os.RTLD_GLOBAL)
                    _blas = f"OpenBLAS ({path})"
                except OSError:
                    continue
                threads = _threads_per_local_rank()
                if threads:
                    lib.openblas_set_num_threads(threads)
                    _blas += f", {threads} thread(s) per process"
                break
    return _blas


def _threads_per_local_rank():
    """Under `mlx.launch` with several processes on this machine, each gets its share
    of the cores: left at one thread per core each, they fight over the same cores
    (measured 3x slower with 2 ranks on 2 cores). None when not launched or when the
    user set OPENBLAS_NUM_THREADS."""
    hostfile = os.environ.get("MLX_HOSTFILE")
    if "MLX_RANK" not in os.environ or not hostfile or "OPENBLAS_NUM_THREADS" in os.environ:
        return None
    import json

    try:
        nodes = json.loads(open(hostfile).read() if os.path.isfile(hostfile) else hostfile)
        local = sum(1 for node in nodes if str(node[0]).startswith(("127.", "localhost")))
    except (OSError, ValueError, TypeError, IndexError):
        return None
    return max(1, (os.cpu_count() or 1) // local) if local > 1 else None


def device_name():
    import mlx.core as mx

    dev = mx.default_device()
    return "gpu" if dev.type == mx.DeviceType.gpu else "cpu"


def on_cpu():
    return device_name() == "cpu"


def cpu_model():
    if sys.platform == "darwin":
        try:
            import subprocess

            return subprocess.check_output(["sysctl", "-n", "machdep.cpu.brand_string"], text=True).strip()
        except Exception:
            pass
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_summary():
    """One dict describing where figures were measured (they only compare on one machine)."""
    import mlx.core as mx

    info = {
        "platform": f"{platform.system()} {platform.machine()}",
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "mlx_device": device_name(),
        "mlx": mx.__version__,
        "blas": use_fast_blas(),
    }
    if info["mlx_device"] == "gpu":
        try:
            info["gpu"] = mx.device_info().get("device_name", "gpu")
        except Exception:
            pass
    return info
