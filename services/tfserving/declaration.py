"""The TF Serving architectures: Django forwards to TensorFlow Serving over REST or gRPC."""
from pathlib import Path

from servebench.registry import Architecture, Need, RuntimeValue, Service, ref, register, register_service
from services.frontend.declaration import FRONT

ORDER = 40
BACKEND = "services.tfserving.backend:TFServingBackend"


def _generated(settings, run_dir, batching: bool) -> list[Path]:
    """Natively, the files come from SB_MODEL's card with the local path, written into the run dir
    (services/tfserving/config.py); a model TF Serving cannot load stops the start with a CardError."""
    from servebench.modelcard import read_card
    from services.tfserving import config

    card = read_card(settings.model_base, settings.model_version)
    base, _ = config.saved_model_layout(card, settings.model_base)
    return config.write(card, settings, settings.model_base, str(Path(base).resolve()), Path(run_dir) / "tfserving",
                        batching=batching)


def models_config(settings, run_dir) -> str:
    return str(_generated(settings, run_dir, batching=False)[0])


def batching_config(settings, run_dir) -> str:
    # TF Serving refuses a batching file without --enable_batching, so it is empty unless set.
    return str(_generated(settings, run_dir, batching=True)[1]) if settings.tfserving_batching else ""


register_service(Service(
    name="tfserving",
    port_field="tfserving_rest_port",
    command=(
        "tensorflow_model_server",
        "--port=" + ref("tfserving_grpc_port"),
        "--rest_api_port=" + ref("tfserving_rest_port"),
        "--model_config_file=${SB_TFSERVING_MODELS_CONFIG}",
        "--enable_batching=" + ref("tfserving_batching"),
        # TF Serving refuses a batching file without --enable_batching, so it is empty unless set.
        "--batching_parameters_file=${SB_TFSERVING_BATCHING_CONFIG}",
        "--tensorflow_intra_op_parallelism=" + ref("intra_op_threads"),
        "--tensorflow_inter_op_parallelism=" + ref("inter_op_threads"),
    ),
    runtime_vars={
        "SB_TFSERVING_MODELS_CONFIG": RuntimeValue(native=models_config, docker=lambda s: "/models/models.config"),
        "SB_TFSERVING_BATCHING_CONFIG": RuntimeValue(
            native=batching_config,
            docker=lambda s: "/models/batching.config" if s.tfserving_batching else ""),
    },
    health_path="/v1/models/{model_name}",
    image="tensorflow/serving:2.19.0",
    volumes=("./models/cifar10_cnn:/models/cifar10_cnn:ro",
             "./services/tfserving/models.config:/models/models.config:ro",
             "./services/tfserving/batching.config:/models/batching.config:ro"),
), order=ORDER)

NEEDS = (Need(
    "binary", "tensorflow_model_server",
    "TensorFlow Serving is not installed: no `tensorflow_model_server` on PATH. Install it from Google's apt "
    "repository (package tensorflow-model-server), or run it under docker compose (RUNTIME=docker), which uses "
    "the official tensorflow/serving image. Nothing is substituted for it. See services/tfserving/README.md.",
    runtimes=("native",)),)

register(Architecture(
    name="tfserving-rest", title="TF Serving REST", color="tab:red", services=("tfserving", *FRONT),
    profile="tfserving", backend=BACKEND, backend_port="tfserving_rest_port", protocol="rest", needs=NEEDS,
    study="docker-serving", study_label="TF Serving",
    description="Django forwards to TensorFlow Serving over REST"), order=ORDER)
# They measured TF Serving over REST only (gRPC is discussed as faster), so no study label.
register(Architecture(
    name="tfserving-grpc", title="TF Serving gRPC", color="tab:purple", services=("tfserving", *FRONT),
    profile="tfserving", backend=BACKEND, backend_port="tfserving_grpc_port", protocol="grpc", needs=NEEDS,
    study="docker-serving",
    description="Django forwards to TensorFlow Serving over gRPC"), order=ORDER)
