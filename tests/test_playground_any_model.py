"""The playground's form follows the served model's schema, in a real headless Chromium against a
live ``python app.py``: a select of the categories for a text field, whole steps for an integer,
a checkbox for a boolean, a "missing" box where the model takes null, and a regressor's value.
One server; each model is imported into its model directory while it runs (the server follows)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.ui import WebDriverWait
from sklearn.linear_model import LogisticRegression

from modeler.modeler import Modeler
from tests.browser import chromium
from tests.support import clean_env, copy_project, free_port, running, wait_ready
from tests.test_serving_any_model import churn_pipeline, price_regressor

WAIT = 20


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    project = copy_project(tmp_path_factory.mktemp("playground-any"))
    model, frame = churn_pipeline()
    Modeler(project / "models").import_model(model, sample=frame)
    port = free_port()
    with running(["app.py", "--port", str(port)], project, port, env=clean_env(), log=project / "server.log") as (
        url,
        _,
    ):
        wait_ready(url + "/ready")
        yield url, project / "models"


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    with chromium(tmp_path_factory.mktemp("chromium-profile"), window_size="1100,900") as driver:
        yield driver


def shown_answer(driver: WebDriver, accept) -> str:
    WebDriverWait(driver, WAIT).until(lambda d: accept(d.find_element(By.ID, "predicted-class").text))
    return driver.find_element(By.ID, "predicted-class").text


def switch_to(base: str, models: Path, import_model) -> str:
    """Import a model into the served directory and wait until the server serves it."""
    version = import_model(Modeler(models)).version
    WebDriverWait(None, WAIT, poll_frequency=0.2).until(
        lambda _: requests.get(base + "/model", timeout=10).json()["version"] == version
    )
    return version


def test_the_form_follows_each_models_fields_and_types(served, browser: WebDriver) -> None:
    base, models = served
    model, _ = churn_pipeline()
    browser.get(base + "/")
    shown_answer(browser, lambda text: text in ("yes", "no"))
    plan = Select(browser.find_element(By.ID, "text-plan"))
    assert [o.text for o in plan.options] == ["basic", "plus", "pro"]
    tenure = browser.find_element(By.ID, "number-tenure_months")
    assert tenure.get_attribute("step") == "1"
    assert browser.find_element(By.ID, "slider-tenure_months").get_attribute("step") == "1"
    assert browser.find_element(By.ID, "path-title").is_displayed() is False  # a general model: no explain
    plan.select_by_visible_text("basic")
    row = {
        "plan": "basic",
        "monthly_spend": float(browser.find_element(By.ID, "number-monthly_spend").get_attribute("value")),
        "tenure_months": int(tenure.get_attribute("value")),
    }
    expected = model.predict(pd.DataFrame([row]))[0]
    WebDriverWait(browser, WAIT).until(
        lambda d: requests.post(base + "/predict", json=row, timeout=10).json()["Class"] == expected
    )
    assert shown_answer(browser, lambda text: text == expected) == expected
    bars = browser.find_elements(By.CSS_SELECTOR, "#probabilities .bar")
    assert [b.get_attribute("data-class") for b in bars] == ["no", "yes"]

    # A regressor that takes missing values: a "missing" box per field, a value, no bars.
    regressor, _ = price_regressor()
    switch_to(base, models, lambda m: m.import_model(regressor, sample=price_regressor()[1]))
    browser.get(base + "/")
    shown_answer(browser, lambda text: text not in ("", "…"))
    assert browser.find_element(By.ID, "predicted-label").text.startswith("Predicted value")
    assert browser.find_elements(By.CSS_SELECTOR, "#probabilities .bar") == []
    browser.find_element(By.ID, "null-area").click()
    assert browser.find_element(By.ID, "number-area").get_attribute("disabled") == "true"
    rooms = float(browser.find_element(By.ID, "number-rooms").get_attribute("value"))
    age = float(browser.find_element(By.ID, "number-age").get_attribute("value"))
    value = regressor.predict(pd.DataFrame([{"rooms": rooms, "area": np.nan, "age": age}]))[0]
    want = str(float(f"{value:.6g}"))
    shown = shown_answer(browser, lambda text: text and float(text) == float(want))
    assert float(shown) == float(want)

    # A boolean field: a checkbox, sent as true/false.
    frame = pd.DataFrame({"member": [True, False] * 50, "spend": np.arange(100.0)})
    flag = LogisticRegression().fit(
        frame, (frame["member"] & (frame["spend"] > 20)).map({True: "gold", False: "plain"})
    )
    switch_to(base, models, lambda m: m.import_model(flag, sample=frame))
    browser.get(base + "/")
    shown_answer(browser, lambda text: text in ("gold", "plain"))
    box = browser.find_element(By.ID, "bool-member")
    assert box.get_attribute("type") == "checkbox"
    spend = float(browser.find_element(By.ID, "number-spend").get_attribute("value"))
    for checked in (True, False):
        if box.is_selected() != checked:
            box.click()
        expected = flag.predict(pd.DataFrame([{"member": checked, "spend": spend}]))[0]
        assert shown_answer(browser, lambda text, e=expected: text == e) == expected
