"""The web demo in a real browser: headless Chromium, driven by Selenium, on the app started as a user starts it.

Run by `make test-browser` only (the file name keeps it out of `make test`). Tiny runs
of MNIST, style transfer and the poetry writer are trained first; the demo serves them
on 127.0.0.1. Chromium (Debian's, at /usr/bin/chromium, with its chromedriver: Selenium
never downloads a browser) draws a digit and uploads another, reading the predictions
from the page, stylizes a photo, writes poems, and is shown a file that is not a picture. Chromium's
DevTools log records every request its pages make: all must go to 127.0.0.1.
Screenshots go to $DEMO_SCREENSHOTS (default: the test's temporary folder).
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
from PIL import Image, ImageDraw
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from common.runs import REPOSITORY
from helpers import run_subprocess

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"

TRAINING = {
    "mnist": ["projects.mnist_cnn", "train", "--tiny", "--val-split", "0.0625", "--batch-size", "32", "--no-augment", "--epochs", "2"],
    "style": ["projects.style_transfer", "train", "--tiny", "--backbone", "vgg16", "--backbone-weights", "random",
              "--content-layers", "block2_conv2", "--style-layers", "block1_conv2,block2_conv2", "--filters", "4",
              "--residual-blocks", "1", "--epochs", "1"],
    "poetry": ["projects.tang_poetry", "train", "--tiny", "--epochs", "2"],
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """{page: run folder} of the tiny runs the demo serves."""
    folder = tmp_path_factory.mktemp("runs")
    for page, (module, *args) in TRAINING.items():
        result = run_subprocess("-m", module, *args, "--out", folder / page)
        assert result.returncode == 0, result.stderr[-3000:]
    return {page: folder / page for page in TRAINING}


@pytest.fixture(scope="module")
def demo(trained):
    """The demo's address, as `python -m demo` prints it."""
    runs = [f"--run={page}={folder}" for page, folder in trained.items()]
    process = subprocess.Popen([sys.executable, "-m", "demo", "--port", "0", *runs], cwd=REPOSITORY, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    lines = []
    for line in process.stdout:
        lines.append(line)
        if line.startswith("demo at "):
            break
    assert process.poll() is None, "".join(lines)
    yield re.search(r"http://127\.0\.0\.1:\d+/", lines[-1]).group(0)
    process.terminate()
    process.wait(timeout=30)


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory):
    return Path(os.environ.get("DEMO_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))


# Chromium's own background traffic (updates, sign-in, hints) is turned off, and whatever is left of it is sent to
# a closed port of this machine, with every host name but 127.0.0.1 unresolvable: nothing leaves the machine.
CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1100,1300",
                  "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-default-apps", "--disable-extensions", "--disable-domain-reliability", "--no-pings",
                  "--disable-features=OptimizationHints,AutofillServerCommunication,MediaRouter,Translate",
                  "--proxy-server=127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1")


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium that logs every request its pages make (DevTools' network events)."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    yield driver
    driver.quit()


def open_tab(driver, url, key):
    if not driver.current_url.startswith(url):
        driver.get(url)
    driver.find_element(By.CSS_SELECTOR, f".tab[data-tab={key}]").click()
    WebDriverWait(driver, 10).until(lambda d: d.find_element(By.ID, f"tab-{key}").is_displayed())


def run_and_wait(driver, key, what=".lines, .error", timeout=120):
    result = driver.find_element(By.ID, f"result-{key}")
    driver.execute_script("arguments[0].replaceChildren()", result)  # the last answer gone: what appears is this one's
    driver.find_element(By.CSS_SELECTOR, f"#tab-{key} button[type=submit]").click()
    return WebDriverWait(driver, timeout).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, f"#result-{key} :is({what})"))[0]


def command_output(*args):
    result = run_subprocess(*args)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_the_pages_answer_as_the_commands_do_and_the_browser_requests_nothing_but_the_demo(
        demo, trained, browser, screenshots, tmp_path):
    driver = browser
    requested = []
    digit = tmp_path / "digit.png"
    picture = Image.new("L", (120, 120), 255)
    ImageDraw.Draw(picture).line([(60, 15), (60, 105)], fill=0, width=14)
    picture.save(digit)
    photo = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(photo)
    not_a_picture = tmp_path / "notes.png"
    not_a_picture.write_text("these are notes, not a picture")

    # MNIST: a digit drawn with the mouse is read.
    open_tab(driver, demo, "mnist")
    requested += requested_addresses(driver)
    canvas = driver.find_element(By.CSS_SELECTOR, "#tab-mnist canvas")
    ActionChains(driver).move_to_element_with_offset(canvas, 10, -90).click_and_hold().move_by_offset(-20, 60) \
        .move_by_offset(-20, 60).move_by_offset(-10, 40).release().perform()
    assert run_and_wait(driver, "mnist").text.startswith("prediction: ")
    driver.save_screenshot(str(screenshots / "demo-mnist-drawn.png"))

    # MNIST: the digit uploaded, its prediction read from the page; the command line reads the same.
    driver.find_element(By.CSS_SELECTOR, "#tab-mnist input[type=file]").send_keys(str(digit))
    shown = run_and_wait(driver, "mnist").text
    expected = command_output("-m", "projects.mnist_cnn", "predict", "--model", trained["mnist"], digit).split("\t")
    assert shown.startswith(f"prediction: {expected[1]} ({float(expected[2]):.1%})"), (shown, expected)
    assert len(driver.find_elements(By.CSS_SELECTOR, "#result-mnist .bar")) == 10
    driver.save_screenshot(str(screenshots / "demo-mnist.png"))

    # A file that is not a picture: one readable line on the page.
    driver.find_element(By.CSS_SELECTOR, "#tab-mnist input[type=file]").send_keys(str(not_a_picture))
    error = run_and_wait(driver, "mnist", ".error").text
    assert error.startswith("notes.png: not a readable image") and "Traceback" not in driver.page_source, error

    # Style transfer: the photo and its stylized version, both shown.
    open_tab(driver, demo, "style")
    driver.find_element(By.CSS_SELECTOR, "#tab-style input[type=file]").send_keys(str(photo))
    run_and_wait(driver, "style", "figure")
    pictures = driver.find_elements(By.CSS_SELECTOR, "#result-style figure img")
    assert [picture.get_attribute("alt") for picture in pictures] == ["photo", "stylized"]
    assert all(driver.execute_script("return arguments[0].naturalWidth", picture) == 64 for picture in pictures)
    driver.save_screenshot(str(screenshots / "demo-style.png"))

    # Poems: those the command writes with the same seed.
    open_tab(driver, demo, "poetry")
    shown = run_and_wait(driver, "poetry").text
    printed = command_output("-m", "projects.tang_poetry", "generate", "--model", trained["poetry"], "--n", "2", "--seed", "0")
    assert shown.strip() == printed.split("\n\n2 poem(s)")[0].strip()
    driver.save_screenshot(str(screenshots / "demo-poetry.png"))

    # A project without a trained run: one line saying how to train one.
    open_tab(driver, demo, "flappy")
    assert driver.find_element(By.CSS_SELECTOR, "#tab-flappy .missing").text == \
        "No trained Game agent model yet: make train-flappy trains one."

    requested += requested_addresses(driver)
    assert any(address.startswith(f"{demo}run/mnist") for address in requested), requested
    assert all(address.startswith(("data:", "blob:")) or urlsplit(address).hostname == "127.0.0.1"
               for address in requested), requested


def requested_addresses(driver):
    """The address of every request the browser's pages made since the last call (the log empties as it is read)."""
    found = []
    for entry in driver.get_log("performance"):
        event = json.loads(entry["message"])["message"]
        if event["method"] == "Network.requestWillBeSent":
            found.append(event["params"]["request"]["url"])
        elif event["method"] == "Network.webSocketCreated":
            found.append(event["params"]["url"])
    return found
