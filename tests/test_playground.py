"""The playground page in a real headless Chromium (Debian's chromium + chromedriver, driven by
selenium) against a live ``python app.py``. Screenshots go to test-artifacts/ (git-ignored)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import requests
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from modeler.explanation import short_threshold
from modeler.modeler import Modeler
from tests.browser import chromium
from tests.support import PETAL_LENGTH_SEED, REPO, clean_env, copy_project, free_port, running, wait_ready

ARTIFACTS = REPO / "test-artifacts"
WAIT = 15  # seconds for the page to react; each reaction takes well under one


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``python app.py`` serving a model whose root split is petal_length <= 2.45."""
    project = copy_project(tmp_path_factory.mktemp("playground"))
    model = Modeler(project / "models", random_state=PETAL_LENGTH_SEED).fit().ensure_ready()
    root = (model.features[model.predictor.tree.feature[0]], short_threshold(model.predictor.tree.threshold[0]))
    assert root == ("petal_length", "2.45")
    port = free_port()
    with running(["app.py", "--port", str(port)], project, port, env=clean_env(), log=project / "server.log") as (
        url,
        _,
    ):
        wait_ready(url + "/ready")
        yield url


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    """Debian's headless Chromium through its own chromedriver: no driver or browser download."""
    with chromium(tmp_path_factory.mktemp("chromium-profile"), window_size="1100,820") as driver:
        yield driver


def text_of(driver: WebDriver, element_id: str) -> str:
    return driver.find_element(By.ID, element_id).text


def wait_for_class(driver: WebDriver, accept) -> str:
    WebDriverWait(driver, WAIT).until(lambda d: accept(text_of(d, "predicted-class")))
    return text_of(driver, "predicted-class")


def test_page_is_self_contained(base: str) -> None:
    res = requests.get(base + "/", timeout=10)
    assert res.status_code == 200 and res.headers["Content-Type"].startswith("text/html")
    assert not re.search(r"(src|href)=[\"'](https?:)?//", res.text)  # nothing from elsewhere
    assert "default-src 'none'" in res.headers["Content-Security-Policy"]


def test_slider_moves_the_prediction_and_shows_path_bars_and_warnings(base: str, browser: WebDriver) -> None:
    browser.get(base + "/")
    wait_for_class(browser, lambda text: text not in ("", "…"))
    slider = browser.find_element(By.ID, "slider-petal_length")
    assert (slider.get_attribute("min"), slider.get_attribute("max")) == ("1", "6.9")  # from /model

    slider.send_keys(Keys.HOME)  # petal_length to its minimum, 1.0: below 2.45
    assert wait_for_class(browser, lambda text: text == "setosa") == "setosa"
    assert browser.find_element(By.ID, "number-petal_length").get_attribute("value") == "1"
    assert text_of(browser, "path").startswith("petal_length is 1.0, at or below the split at 2.45")
    bars = browser.find_elements(By.CSS_SELECTOR, "#probabilities .bar")
    assert {b.get_attribute("data-class"): float(b.get_attribute("data-probability")) for b in bars}["setosa"] == 1.0
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "playground-setosa.png"))

    slider.send_keys(Keys.END)  # to its maximum, 6.9: above 2.45
    other = wait_for_class(browser, lambda text: text in ("versicolor", "virginica"))
    assert text_of(browser, "path").startswith("petal_length is 6.9, above the split at 2.45")
    assert not browser.find_element(By.ID, "warnings").is_displayed()

    number = browser.find_element(By.ID, "number-petal_width")  # beyond the slider: a warning
    number.send_keys(Keys.CONTROL, "a")
    number.send_keys("4")
    WebDriverWait(browser, WAIT).until(lambda d: d.find_element(By.ID, "warnings").is_displayed())
    assert "petal_width = 4 is outside the training range 0.1 to 2.5" in text_of(browser, "warnings")
    assert text_of(browser, "predicted-class") in ("versicolor", "virginica")
    browser.save_screenshot(str(ARTIFACTS / "playground.png"))
    assert other and (ARTIFACTS / "playground.png").stat().st_size > 10_000


def test_api_key_is_sent_as_bearer_and_kept_in_the_page_only(base: str, browser: WebDriver) -> None:
    browser.get(base + "/")
    wait_for_class(browser, lambda text: text not in ("", "…"))
    # Record what the page's own fetch calls send (the server here has no keys configured).
    browser.execute_script(
        "window.sentAuth = [];"
        "const original = window.fetch;"
        "window.fetch = (url, options) => {"
        "  window.sentAuth.push((options && options.headers && options.headers.Authorization) || null);"
        "  return original(url, options);"
        "};"
    )
    browser.find_element(By.CSS_SELECTOR, "#auth summary").click()
    browser.find_element(By.ID, "api-key").send_keys("s3cret")
    WebDriverWait(browser, WAIT).until(lambda d: "Bearer s3cret" in d.execute_script("return window.sentAuth"))
    stored = browser.execute_script("return [localStorage.length, sessionStorage.length, document.cookie]")
    assert stored == [0, 0, ""]
    assert text_of(browser, "status") == ""  # the prediction still answered
