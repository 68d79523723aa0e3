"""The triton architecture: Django forwards to Triton Inference Server (PyTriton, CPU) over KServe v2 REST."""
import subprocess

from servebench.registry import MODEL_BASE, Architecture, Need, RuntimeValue, Service, ref, register, register_service
from servebench.settings import REPO_ROOT
from services.frontend.declaration import FRONT

ORDER = 50

# Triton runs from its own venv (requirements-triton.txt, `make setup-triton`): nvidia-pytriton pins
# numpy<2 and pulls protobuf 6, which .venv's TensorFlow stack does not allow.
TRITON_VENV = ".venv-triton"


def _python_native(settings, run_dir) -> str:
    return str(REPO_ROOT / TRITON_VENV / "bin" / "python")


_LIBDIRS: dict[str, str] = {}


def python_libdir(python: str) -> str:
    """The lib folder of the Python build behind ``python`` (its sysconfig LIBDIR); '' when it cannot run."""
    if python not in _LIBDIRS:
        try:
            out = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_config_var('LIBDIR') or '')"],
                                 capture_output=True, text=True, timeout=60, check=True).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""  # no venv yet: the architecture's Need says how to make it
        _LIBDIRS[python] = out
    return _LIBDIRS[python]


def _ld_library_path(settings, run_dir) -> str:
    """Triton's Python backend stub links libpython3.11.so.1.0, found through the system's loader path
    (Debian's 3.11.2) unless told otherwise; a venv built from another Python (pyenv here) then fails to
    load the model ('_thread.RLock' object has no attribute '_recursion_count'). Point at the venv's own build."""
    return python_libdir(_python_native(settings, run_dir))


register_service(Service(
    name="triton",
    port_field="triton_http_port",
    command=("${SB_TRITON_PYTHON}", "-m", "services.triton.server",
             "--host", "127.0.0.1", "--port", ref("triton_http_port")),
    environment={"TF_CPP_MIN_LOG_LEVEL": "2"},  # as the Python image gives its services
    runtime_env={
        "SB_MODEL_BASE": MODEL_BASE,
        # The image's python3 and its libpython are one build (python:* images and Debian's alike).
        "LD_LIBRARY_PATH": RuntimeValue(native=_ld_library_path, docker=lambda s: ""),
    },
    runtime_vars={"SB_TRITON_PYTHON": RuntimeValue(native=_python_native, docker=lambda s: "python")},
    # The model's readiness, not the server's: PyTriton loads the model through Triton's API once the
    # server is up, and /v2/health/ready answers 200 in between (no model is loaded yet to wait for).
    health_path="/v2/models/{model_name}/ready",
    dockerfile="docker/triton.Dockerfile",
), order=ORDER)

NEEDS = (Need(
    "venv", TRITON_VENV,
    "Triton's virtual environment .venv-triton is missing: run `make setup-triton` (nvidia-pytriton with its "
    "bundled tritonserver, and TensorFlow: about 2 GB from PyPI; it cannot share .venv, numpy<2 and protobuf 6), "
    "or run it under docker compose (RUNTIME=docker), whose image installs it.",
    runtimes=("native",)),)

register(Architecture(
    name="triton", title="Triton", color="tab:brown", services=("triton", *FRONT), profile="triton",
    backend="services.triton.backend:TritonBackend", backend_port="triton_http_port", protocol="rest",
    needs=NEEDS, study="saturation",
    description="Django forwards to Triton Inference Server (PyTriton, CPU) over KServe v2 REST; "
                "Triton's dynamic batcher combines requests when SB_BATCH_MAX_SIZE > 1"), order=ORDER)
