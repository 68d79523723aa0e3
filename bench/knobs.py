"""The harness tools' knobs (a section of servebench.settings.Settings): what locust's processes read.

``bench.load`` sets them from its command line and passes them to the locust
processes as ``SB_LOAD_*`` variables (``settings.env_for(LOCUST)``); the
locustfile reads them as ``Settings().section("load")``.
"""
from pathlib import Path

from servebench.knobs import KnobSection, knob, not_recorded

LOCUST = "locust"  # locust's processes: the master (or only) one and its workers
TEST_SET_IMAGES = 10000  # CIFAR-10's test set (bench.options has the same: this module imports nothing of bench)


class Knobs(KnobSection):
    section_name = "load"

    load_codec: str = knob("json", "request body format of locust's users (make load's CODEC)", (LOCUST,))
    load_batch: int = knob(1, "images per request of locust's users (make load's BATCH)", (LOCUST,), ge=1)
    load_images: int = knob(1000, "test images each locust process encodes and cycles through", (LOCUST,),
                            ge=1, le=TEST_SET_IMAGES)
    load_totals_file: Path | None = not_recorded(
        default=None, to=(LOCUST,), description="where the master (or only) locust process writes the final totals")
    load_data_dir: Path | None = not_recorded(default=None, to=(LOCUST,),
                                              description="cifar-10-batches-py folder (None: the data's default)")
