"""The package as a user installs it: a wheel of the project, installed alone in a fresh virtualenv
(no checkout beside it), samples, ingests, queries and serves, reading the model files it ships."""

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import requests

from .conftest import free_port, wait_for

ROOT = Path(__file__).resolve().parents[1]


def test_a_wheel_installed_alone_samples_ingests_queries_and_serves(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(ROOT),
                    "-w", str(tmp_path / "dist")], check=True, cwd=tmp_path, capture_output=True)
    [wheel] = (tmp_path / "dist").glob("opportunity_kg-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for folder in ("ontology", "shapes", "mappings", "queries"):
        shipped = {n for n in names if n.startswith(f"opportunity_kg/model/{folder}/")}
        assert shipped and len(shipped) == sum(1 for p in (ROOT / folder).rglob("*") if p.is_file()
                                               and "__pycache__" not in p.parts), folder
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    # the dependencies come from this environment, without a download: a path line adds its
    # folder but not the .pth files in it, so not this checkout's editable install
    site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    (site / "okg-test-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True)
    env = {k: v for k, v in os.environ.items() if k not in ("OKG_HOME", "PYTHONPATH")}
    work = tmp_path / "elsewhere"
    work.mkdir()

    def okg(*args):
        return subprocess.run([venv / "bin" / "okg", *map(str, args)], cwd=work, env=env, capture_output=True,
                              text=True, check=True).stdout

    home = subprocess.run([python, "-c", "from opportunity_kg import paths; print(paths.HOME)"], cwd=work, env=env,
                          capture_output=True, text=True, check=True).stdout.strip()
    assert home.startswith(str(venv)) and home.endswith("opportunity_kg/model")
    okg("sample", "--out", "export", "--opportunities", "60")
    assert "snapshot salesforce as of" in okg("ingest", "export", "--store", "store")
    table = okg("query", "weighted-pipeline", "--param", "period=2026", "--store", "store", "--format", "csv")
    assert table.startswith("owner,opportunities,amount,weighted_amount") and len(table.splitlines()) > 2
    port = free_port()
    server = subprocess.Popen([venv / "bin" / "okg", "serve", "--store", "store", "--host", "127.0.0.1",
                               "--port", str(port)], cwd=work, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(base + "/health", server)
        assert len(requests.get(base + "/api/queries").json()["queries"]) == len(list((ROOT / "queries").glob("*.rq")))
        assert requests.get(base + "/").status_code == 200
    finally:
        server.terminate()
        server.wait(timeout=10)
