"""The Hub code path (download, cache, offline mode, errors) against a loopback server."""

import json
import shutil

import pytest

from astrozoo.registry import default_model, get_entry

from conftest import run_cli, run_python
from hubserver import HubServer

# subprocesses: left out of the fast loop (pytest -m 'not slow'); CI runs them
pytestmark = pytest.mark.slow

LENS = default_model("lens-finding")

CHECK = """
import astrozoo, torch

m = astrozoo.load({ref!r})
x = torch.linspace(0, 50, m.spec.shape[0] * 64 * 64 * 2).reshape(2, *m.spec.shape)
with torch.no_grad():
    print("OUT", m(m.preprocess(x)).flatten().tolist())
"""


@pytest.fixture
def repo_dir(tmp_path):
    d = tmp_path / "repo"
    shutil.copytree(get_entry(LENS).weights.bundled_dir, d)
    return d


def _out(res):
    return [l for l in res.stdout.splitlines() if l.startswith("OUT")][0]


def test_hf_hub_download_cache_then_offline(tmp_path, repo_dir):
    home = tmp_path / "hf_home"
    ref = "hf-hub:astro/lens@main"
    bundled = _out(run_python(CHECK.format(ref=LENS)))
    server = HubServer({"astro/lens": repo_dir})
    with server as url:
        online = run_python(CHECK.format(ref=ref), env={"HF_ENDPOINT": url, "HF_HOME": str(home)})
    assert _out(online) == bundled
    assert any(r.startswith("GET /astro/lens/resolve/main/model.safetensors") for r in server.requests)
    assert list((home / "hub").glob("models--astro--lens/snapshots/*/model.safetensors"))
    # server gone and offline mode on: the cache alone serves the model
    offline = run_python(CHECK.format(ref=ref), env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(home)})
    assert _out(offline) == bundled


def test_offline_and_not_cached_names_model_and_command(tmp_path):
    res = run_python(CHECK.format(ref="hf-hub:astro/missing"), check=False,
                     env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path)})
    assert res.returncode != 0
    assert "WeightsNotAvailableError" in res.stderr
    assert "hf-hub:astro/missing" in res.stderr and "astrozoo download hf-hub:astro/missing" in res.stderr


def test_hub_file_with_wrong_sha_is_refused(tmp_path, repo_dir):
    cfg = json.loads((repo_dir / "config.json").read_text())
    cfg["weights_sha256"] = "f" * 64
    (repo_dir / "config.json").write_text(json.dumps(cfg))
    with HubServer({"astro/lens": repo_dir}) as url:
        res = run_python(CHECK.format(ref="hf-hub:astro/lens"), check=False,
                         env={"HF_ENDPOINT": url, "HF_HOME": str(tmp_path / "h")})
    assert res.returncode != 0 and "IntegrityError" in res.stderr and "sha256 mismatch" in res.stderr


def test_registered_hub_model_and_cli_download(tmp_path, repo_dir):
    """A registry entry with only a Hub source: `astrozoo download` caches it, then load works
    offline; the registry's sha256 pin is what is verified."""
    sha = get_entry(LENS).sha256
    register = (f"from astrozoo.registry import ModelEntry, WeightsSource, register_model, list_models; list_models(); register_model(ModelEntry("
                f"name='hub-lens', task='lens-finding', sha256={sha!r}, "
                f"weights=WeightsSource(hub_repo='astro/lens', revision='main')))\n")
    env = {"HF_HOME": str(tmp_path / "h")}
    with HubServer({"astro/lens": repo_dir}) as url:
        res = run_python(register + "from astrozoo.cli import main; raise SystemExit(main(['download', 'hub-lens']))",
                         env={**env, "HF_ENDPOINT": url})
    assert "hub-lens: files verified" in res.stdout
    out = run_python(register + CHECK.format(ref="hub-lens"), env={**env, "HF_HUB_OFFLINE": "1"})
    assert _out(out) == _out(run_python(CHECK.format(ref=LENS)))
    # offline with an empty cache: one clear error from the CLI
    res = run_cli("download", "hf-hub:astro/lens", check=False,
                  env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "empty")})
    assert res.returncode == 2 and "astrozoo download hf-hub:astro/lens" in res.stderr
