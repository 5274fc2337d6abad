"""The playground page in a real headless Chromium: upload, read the transcript, download the SRT, record."""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

import aiohttp
import pytest

from chatscribe.core.live import pcm16_wav
from tests.audio_tools import pcm16
from tests.http.conftest import API_KEY, Running

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")

pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="needs Chromium and its driver (Debian packages: chromium chromium-driver)",
)


def _browser(download_dir: Path, *extra: str):  # type: ignore[no-untyped-def]
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=420,900",
                     # A fake microphone (a beep) that needs no permission prompt.
                     "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream", *extra):
        options.add_argument(argument)
    options.add_experimental_option("prefs", {
        "download.default_directory": str(download_dir), "download.prompt_for_download": False,
    })
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(download_dir)})
    return driver


def _wait_for_file(path: Path, timeout_s: float = 20) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.is_file() and path.stat().st_size:
            return path.read_text()
        time.sleep(0.1)
    raise AssertionError(f"{path.name} was not downloaded")


def _use_the_page(url: str, audio_dir: Path, download_dir: Path) -> dict[str, str]:
    """Drive the page like a person would; returns what they saw and downloaded."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    seen: dict[str, str] = {}
    driver = _browser(download_dir)
    try:
        wait = WebDriverWait(driver, 60)
        driver.get(url + "/")
        driver.find_element(By.CSS_SELECTOR, "#options summary").click()
        driver.find_element(By.ID, "api-key").send_keys(API_KEY)

        # A file that is not audio: a clear sentence, no transcript.
        driver.find_element(By.ID, "file").send_keys(str(audio_dir / "not_audio.ogg"))
        wait.until(ec.visibility_of_element_located((By.ID, "error")))
        seen["error"] = driver.find_element(By.ID, "error").text

        driver.find_element(By.ID, "file").send_keys(str(audio_dir / "jfk_voice.ogg"))
        wait.until(ec.visibility_of_element_located((By.ID, "result")))
        seen["transcript"] = driver.find_element(By.ID, "segments").text
        seen["meta"] = driver.find_element(By.ID, "meta").text
        driver.find_element(By.CSS_SELECTOR, "button[data-format=srt]").click()
        seen["srt"] = _wait_for_file(download_dir / "jfk_voice.srt")

        # Record two seconds from the (fake) microphone and send it.
        driver.find_element(By.ID, "record").click()
        wait.until(ec.text_to_be_present_in_element((By.ID, "record-time"), "00:02"))
        previous_line = driver.find_element(By.CSS_SELECTOR, "#segments li")
        driver.find_element(By.ID, "record").click()
        # Done when the old transcript lines are replaced by the recording's, or an error shows.
        wait.until(lambda d: (ec.staleness_of(previous_line)(d) and d.find_element(By.ID, "result").is_displayed())
                   or d.find_element(By.ID, "error").is_displayed())
        seen["recording_error"] = driver.find_element(By.ID, "error").text
        seen["recording_meta"] = driver.find_element(By.ID, "meta").text
    finally:
        driver.quit()
    return seen


async def test_upload_read_download_and_record(server: Running, audio_dir: Path, tmp_path: Path) -> None:
    # Selenium blocks: it runs in a thread while this loop serves the page and the API.
    seen = await asyncio.to_thread(_use_the_page, server.url, audio_dir, tmp_path)

    assert "couldn't read that file" in seen["error"]
    assert "ask not what your country can do for you" in seen["transcript"].lower()
    assert seen["transcript"].startswith("00:00")  # every line carries its time
    assert seen["meta"].startswith("English")

    # The SRT made in the browser is the server's own SRT of the same file.
    form = aiohttp.FormData()
    form.add_field("file", (audio_dir / "jfk_voice.ogg").read_bytes(), filename="jfk_voice.ogg")
    form.add_field("response_format", "srt")
    async with aiohttp.ClientSession() as session, session.post(
        f"{server.url}/v1/audio/transcriptions", data=form, headers={"Authorization": f"Bearer {API_KEY}"}
    ) as response:
        assert seen["srt"] == await response.text()
    assert seen["srt"].startswith("1\n00:00:00,")

    # The microphone recording made it through MediaRecorder, the upload and the decoder.
    assert seen["recording_error"] == ""
    assert seen["recording_meta"]


def _speak_live(url: str, microphone: Path, download_dir: Path) -> dict[str, str]:
    """Live mode with a fake microphone that plays `microphone`: what the page showed, and when."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    seen: dict[str, str] = {}
    driver = _browser(download_dir, f"--use-file-for-fake-audio-capture={microphone}")
    try:
        driver.get(url + "/")
        driver.find_element(By.CSS_SELECTOR, "#options summary").click()
        driver.find_element(By.ID, "api-key").send_keys(API_KEY)
        driver.find_element(By.ID, "language").send_keys("en")
        driver.find_element(By.ID, "live").click()
        # The file plays in a loop; the quote's last words show once its last phrase has been spoken.
        WebDriverWait(driver, 90).until(
            lambda d: "your country" in d.find_element(By.ID, "live-lines").text.lower()
            or d.find_element(By.ID, "error").is_displayed())
        seen["lines"] = driver.find_element(By.ID, "live-lines").text
        seen["error"] = driver.find_element(By.ID, "error").text
        seen["while_live"] = driver.find_element(By.ID, "live").text
        seen["record_disabled"] = str(not driver.find_element(By.ID, "record").is_enabled())
        driver.find_element(By.ID, "live").click()
        WebDriverWait(driver, 60).until(lambda d: "Live" in d.find_element(By.ID, "live").text
                                        and "Stop" not in d.find_element(By.ID, "live").text)
        seen["after"] = driver.find_element(By.ID, "live").text
    finally:
        driver.quit()
    return seen


async def test_live_mode_shows_words_while_the_microphone_plays(server: Running, audio_dir: Path,
                                                                tmp_path: Path) -> None:
    # Chromium's fake microphone plays a WAV: the JFK quote, then a pause, over and over.
    microphone = tmp_path / "microphone.wav"
    microphone.write_bytes(pcm16_wav(pcm16(audio_dir / "jfk.flac", rate=48000) + bytes(48000 * 2 * 2), 48000))
    seen = await asyncio.to_thread(_speak_live, server.url, microphone, tmp_path)

    assert seen["error"] == ""
    lines = seen["lines"].lower()
    # Each pause ends an utterance, so the quote comes in pieces (tiny.en is weak on the shortest ones).
    assert "fellow americans" in lines
    assert "what your country can do for you" in lines
    assert seen["while_live"] == "■ Stop live"
    assert seen["record_disabled"] == "True"  # one microphone mode at a time
    assert seen["after"] == "◉ Live"
