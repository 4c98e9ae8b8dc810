"""What a person sees in a real browser (Debian's Chromium, driven by Playwright) after the smoke pipeline:
the MLflow runs table with each cell's `model/cell` and accuracy columns, and the DVC plots page offline.

Screenshots go to pytest's tmp folder, or to `--screenshots DIR` (the README's come from
`pytest tests/test_browser.py --screenshots docs`)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest

from dvc_repo import run

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no `chromium` on PATH (apt-get install chromium)")
CELLS = {"rnn": "rnn", "lstm": "lstm", "gru": "gru", "bilstm": "lstm"}  # conf/model/<name>.yaml: cell
COLUMNS = ("model/cell", "val/acc_best", "test/acc")


@pytest.fixture(scope="module")
def browser() -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # `executable_path`: the system Chromium; `playwright install` would download a browser
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture
def shots(request, tmp_path) -> Path:
    folder = request.config.getoption("--screenshots")
    return Path(folder).resolve() if folder else tmp_path


@pytest.fixture(scope="module")
def mlflow_ui(smoke_pipeline) -> Iterator[str]:
    """`mlflow ui` on the smoke pipeline's store, on a free port of 127.0.0.1; its base URL."""
    work, env, _ = smoke_pipeline
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", f"sqlite:///{work / 'mlflow.db'}"]
    server = subprocess.Popen(
        [*command, "--host", "127.0.0.1", "--port", str(port)],
        cwd=work,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240
        while True:
            assert server.poll() is None, f"mlflow ui exited with {server.returncode}"
            try:
                urllib.request.urlopen(f"{url}/health", timeout=2)
                break
            except OSError:
                assert time.monotonic() < deadline, "mlflow ui did not answer /health within 240 s"
                time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def add_column(page, name: str) -> None:
    """The runs table's Columns menu, as a user does it: search the name, tick it."""
    page.get_by_role("button", name="Columns", exact=True).click()
    page.get_by_placeholder("Search columns").fill(name)
    # the item whose whole label is `name`: the menu highlights the search in every match (test/acc_len_...)
    page.locator(f"xpath=//*[normalize-space(.)='{name}' and normalize-space(..)='{name}']").last.click()
    page.keyboard.press("Escape")


def row_values(page, run_name: str) -> dict[str, str]:
    """The text of the added columns in the runs table's row of `run_name` (the grid splits a row into a
    pinned and a scrolling part that share its `row-index`)."""
    named = page.locator('[role="row"]', has=page.get_by_text(run_name, exact=True)).first
    row = page.locator(f'[role="row"][row-index="{named.get_attribute("row-index")}"]')
    kinds = {column: "params" if column == "model/cell" else "metrics" for column in COLUMNS}
    return {
        column: row.locator(f'[col-id="{kinds[column]}.`{column}`"]').inner_text().strip()
        for column in COLUMNS
    }


def test_runs_table_shows_each_cell_with_its_params_and_metrics(smoke_pipeline, mlflow_ui, browser, shots):
    work, _, _ = smoke_pipeline
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{work / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("imdb").experiment_id
    runs = client.search_runs([experiment])
    reports = {name: json.loads((work / f"reports/imdb/train/{name}.json").read_text()) for name in CELLS}
    page = browser.new_page(viewport={"width": 2400, "height": 900})
    # MLflow 3's experiment landing page is a GenAI overview: the runs table has its own route
    page.goto(f"{mlflow_ui}/#/experiments/{experiment}/runs")
    page.get_by_text(f"{len(runs)} matching runs").wait_for(timeout=120_000)
    for column in COLUMNS:
        add_column(page, column)
    page.locator('[col-id="metrics.`test/acc`"]').first.wait_for()
    page.screenshot(path=str(shots / "mlflow_runs.png"), clip={"x": 0, "y": 0, "width": 1780, "height": 520})
    for name, cell in CELLS.items():
        run_ = client.get_run(reports[name]["run_id"])
        assert run_.info.run_name.startswith(f"imdb-{name}-") and run_.data.tags["cell"] == cell
        row = row_values(page, run_.info.run_name)
        assert row["model/cell"] == cell, (run_.info.run_name, row)  # the cell it trained, not the default
        for column, key in (("val/acc_best", "val_acc_best"), ("test/acc", "test/acc")):
            assert float(row[column].rstrip(".")) == pytest.approx(reports[name][key], abs=1e-3), row
    page.close()


def test_dvc_plots_page_renders_offline(smoke_pipeline, browser, shots, tmp_path):
    """`dvc plots show dvc.yaml` with every request off the machine refused: each Vega plot draws (Vega is
    inlined by .dvc/plots/offline.html), the four cells' validation accuracy by epoch among them."""
    work, env, _ = smoke_pipeline
    run(["dvc", "plots", "show", "dvc.yaml", "-o", str(tmp_path / "plots")], work, env)
    html = (tmp_path / "plots" / "index.html").read_text()
    # the curves' data: one line per cell, named by the shortest distinct part of its history CSV path
    assert all(f'"filename": "{cell}.csv"' in html for cell in CELLS)
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    requested, errors = [], []
    page.route("http*://**", lambda route: (requested.append(route.request.url), route.abort()))
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto((tmp_path / "plots" / "index.html").as_uri())
    plots = [
        "Validation_accuracy_by_epoch",
        "Validation_loss_by_epoch",
        "Training_loss_by_epoch",
        "ROC__test_",
    ]
    for plot in plots:  # DVC's element ids: the plot titles
        page.locator(f"#{plot}.vega-embed canvas").wait_for(timeout=60_000)
    assert requested == [] and errors == []
    page.locator("#Validation_accuracy_by_epoch").screenshot(path=str(shots / "dvc_val_acc_by_epoch.png"))
    page.close()
