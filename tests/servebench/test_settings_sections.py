"""One settings model with sections: the studies' and the tools' knobs are fields of ``Settings``, read from the
same ``SB_*`` variables as before, recorded by their short names, listed by ``servebench.topology knobs``, and
passed to exactly the processes that receive them. Nothing else reads ``SB_*``."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from pydantic import field_validator

from servebench import settings as settings_mod, topology
from servebench.knobs import KnobSection, knob
from servebench.settings import REPO_ROOT, HarnessSettings, Settings, build_settings, from_environment

pytestmark = pytest.mark.unit

SECTIONS = {"offload": "bench/studies/offloading/knobs.py", "serverless": "bench/studies/serverless/knobs.py",
            "load": "bench/knobs.py"}


@pytest.fixture
def clean_env(monkeypatch):
    for name in list(__import__("os").environ):
        if name.startswith("SB_"):
            monkeypatch.delenv(name)
    return monkeypatch


def test_every_study_and_tool_section_is_part_of_the_one_model():
    s = Settings.from_env({})
    for name in SECTIONS:
        values = s.section(name)
        for short, value in values.as_dict().items():
            assert getattr(s, f"{name}_{short}") == value
    with pytest.raises(KeyError, match="no settings section"):
        s.section("nope")


def test_the_variables_keep_their_names_and_an_empty_one_means_the_default(clean_env):
    clean_env.setenv("SB_OFFLOAD_LINK_MBIT", "40")
    clean_env.setenv("SB_OFFLOAD_MODELS", "mobilenet, cifar10_cnn")
    clean_env.setenv("SB_SERVERLESS_RECORD_SIZES", "100 250 500")
    clean_env.setenv("SB_SERVERLESS_MODELS", "")
    clean_env.setenv("SB_LOAD_BATCH", "4")
    s = Settings()
    assert s.section("offload").link_mbit == 40 and s.section("offload").models == ("mobilenet", "cifar10_cnn")
    assert s.section("serverless").record_sizes == (100, 250, 500) and s.serverless_models == ("alexnet",)
    assert s.section("load").batch == 4
    assert "serverless_models" not in s.model_fields_set  # given empty: as if unset


def test_a_bad_study_value_names_its_variable(clean_env):
    clean_env.setenv("SB_OFFLOAD_LINK_MBIT", "fast")
    with pytest.raises(SystemExit, match=r"^error: bad setting: SB_OFFLOAD_LINK_MBIT='fast': "):
        from_environment()


def test_the_knobs_round_trip_through_the_variables_the_stack_records():
    s = Settings.given(offload_models=("alexnet",), serverless_parallelism=(1, 8), serverless_memmin=False)
    assert Settings.from_env(s.knob_env()).knob_env() == s.knob_env()


def test_records_keep_the_keys_of_the_committed_results():
    s = Settings.from_env({})
    for pattern, section in (("*-offloading-*", "offload"), ("*-serverless", "serverless")):
        committed = sorted((REPO_ROOT / "results").glob(f"{pattern}/summary.json"))
        if not committed:
            pytest.skip(f"no committed {section} result")
        keys = set(json.loads(committed[0].read_text())["settings"]) - {"quick", "n"}
        assert set(s.section(section).recorded()) == keys


def test_nothing_recorded_is_a_path_or_a_secret():
    rec = Settings.from_env({}).recorded()
    for name in ("load_totals_file", "load_data_dir", "serverless_store_access_key", "serverless_store_secret_key",
                 "offload_port", "objectstore_port", "run_dir", "cifar10_dir"):
        assert name not in rec
    assert not any(isinstance(v, Path) for v in rec.values())
    assert "store_secret_key" not in Settings.from_env({}).section("serverless").recorded()
    assert "SB_SERVERLESS_STORE_SECRET_KEY" not in Settings.from_env({}).knob_env()


def test_a_process_gets_exactly_the_knobs_declared_for_it(tmp_path):
    s = Settings.given(load_codec="raw", load_totals_file=tmp_path / "t.json")
    assert s.env_for("locust") == {"SB_LOAD_CODEC": "raw", "SB_LOAD_BATCH": "1", "SB_LOAD_IMAGES": "1000",
                                   "SB_LOAD_TOTALS_FILE": str(tmp_path / "t.json")}  # the unset path left out
    assert s.env_for("edge-server") == {"SB_OFFLOAD_BUILD_MODE": "proposed", "SB_OFFLOAD_PORT": "8050",
                                        "SB_OFFLOAD_HOST": "127.0.0.1"}
    assert set(s.env_for("serverless-function")) == {"SB_SERVERLESS_STORE_ENDPOINT", "SB_SERVERLESS_STORE_BUCKET"}


def test_topology_knobs_lists_the_sections_with_their_receivers():
    rows = {var: who for var, _, _, who, _ in topology.knobs_table()}
    assert rows["SB_OFFLOAD_LINK_MBIT"] == "offloading-study"
    assert rows["SB_OFFLOAD_PORT"] == "edge-server,edge-client"
    assert rows["SB_SERVERLESS_STORE_BUCKET"] == "serverless-study,serverless-function"
    assert rows["SB_LOAD_CODEC"] == "locust" and rows["SB_OBJECTSTORE_PORT"] == "objectstore"
    assert "SB_SERVERLESS_STORE_SECRET_KEY" not in rows and "SB_LOAD_TOTALS_FILE" not in rows


def test_sections_that_would_clash_when_merged_are_refused():
    class A(KnobSection):
        section_name = "same"
        same_a: int = knob(1, "a", ("x",))

        @field_validator("same_a")
        @classmethod
        def _check(cls, v):
            return v

    class B(KnobSection):
        section_name = "same"
        same_b: int = knob(1, "b", ("x",))

    class C(KnobSection):
        other_c: int = knob(1, "c", ("x",))

        @field_validator("other_c")
        @classmethod
        def _check(cls, v):
            return v

    with pytest.raises(ValueError, match="two settings sections are named 'same'"):
        build_settings([A, B])
    with pytest.raises(ValueError, match="validator '_check'"):
        build_settings([A, C])
    assert build_settings([A])().section("same").a == 1


def test_the_harness_section_keeps_its_aliases_and_is_never_recorded(clean_env):
    clean_env.setenv("SB_CIFAR10_DIR", "")
    clean_env.setenv("CI", "1")
    clean_env.setenv("BASE_IMAGE", "img:2")
    h = HarnessSettings()
    assert h.cifar10_dir is None and h.ci and not h.downloads_allowed and h.base_image == "img:2"
    assert HarnessSettings(run_dir="/tmp/x").run_dir == Path("/tmp/x")
    assert not set(HarnessSettings.model_fields) & set(Settings.model_fields)


def test_the_lambda_handler_reads_its_knobs_through_the_settings(clean_env, monkeypatch):
    from bench.studies.serverless import handler

    clean_env.setenv("SB_SERVERLESS_STORE_BUCKET", "fn-bucket")
    seen = {}
    monkeypatch.setattr(handler, "handle", lambda event, config: seen.setdefault("config", config))
    handler.lambda_handler({"stage": "Conv_1"}, None)
    assert seen["config"].bucket == "fn-bucket" and seen["config"].endpoint_url is None


CODE_FOLDERS = ("servebench", "services", "bench", "models")
READS_SB = re.compile(r"""(environ|getenv)\b[^\n]*['"]SB_""")


def test_nothing_outside_the_settings_reads_sb_variables():
    offenders = []
    for folder in CODE_FOLDERS:
        for path in (REPO_ROOT / folder).rglob("*.py"):
            if path == Path(settings_mod.__file__):
                continue
            text = path.read_text()
            if READS_SB.search(text) or re.search(r"^class \w+\(BaseSettings\)", text, re.M):
                offenders.append(str(path.relative_to(REPO_ROOT)))
    assert offenders == []
