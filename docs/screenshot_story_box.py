"""Take README.md's picture of the story box: the app over a trained run, in headless Chromium,
with a story written for a prompt.

    python docs/screenshot_story_box.py --checkpoint runs/cpu/best_model_params.pt

It needs what tests/test_story_box.py needs (gradio, selenium, Debian's chromium and
chromium-driver) and writes docs/story-box.png.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import sys
from pathlib import Path

from slm_helpers.app import story_box
from slm_helpers.errors import SlmError

OUT = Path(__file__).resolve().parent / "story-box.png"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="a run's best_model_params.pt")
    parser.add_argument("--prompt", default="Tom and his dog went to the park.")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver_path):
        sys.exit("error: no Chromium here: apt-get install chromium chromium-driver (Debian)")
    from selenium import webdriver
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        box = story_box(args.checkpoint)
    except SlmError as e:
        sys.exit(f"error: {e}")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    box.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1100,1200"):
        options.add_argument(flag)
    browser = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver_path))
    try:
        browser.get(f"http://127.0.0.1:{port}/")
        wait = WebDriverWait(browser, 120)
        prompt = wait.until(lambda b: b.find_element(By.CSS_SELECTOR, "#prompt textarea"))
        prompt.clear()
        prompt.send_keys(args.prompt)
        seed = browser.find_element(By.CSS_SELECTOR, "#seed input")
        seed.clear()
        seed.send_keys(str(args.seed))
        browser.find_element(By.CSS_SELECTOR, "#write").click()
        story = browser.find_element(By.CSS_SELECTOR, "#story textarea")
        # the story streams in: wait until it has stopped growing for two seconds
        last = [None]

        def settled(b) -> bool:
            value = story.get_attribute("value")
            done = bool(value) and value == last[0]
            last[0] = value
            return done

        WebDriverWait(browser, 120, poll_frequency=2).until(settled)
        browser.save_screenshot(str(OUT))
    finally:
        browser.quit()
        box.close()
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
