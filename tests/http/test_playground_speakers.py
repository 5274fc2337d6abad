"""The playground with speaker labels, in a real headless Chromium: the shared two-channel call uploaded with
"Speaker labels: On" shows each turn under its speaker, and its downloads are the server's own txt and VTT."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

from tests.http.conftest import API_KEY, Running
from tests.http.test_playground import _browser, _wait_for_file, pytestmark  # noqa: F401 (skips without Chromium)

CALL = "stereo_diarization.wav"


def _upload_with_speakers(url: str, audio_dir: Path, download_dir: Path) -> dict[str, str]:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select, WebDriverWait

    seen: dict[str, str] = {}
    driver = _browser(download_dir)
    try:
        driver.get(url + "/")
        driver.find_element(By.CSS_SELECTOR, "#options summary").click()
        driver.find_element(By.ID, "api-key").send_keys(API_KEY)
        Select(driver.find_element(By.ID, "speakers")).select_by_value("on")
        driver.find_element(By.ID, "file").send_keys(str(audio_dir / CALL))
        WebDriverWait(driver, 60).until(ec.visibility_of_element_located((By.ID, "result")))
        seen["transcript"] = driver.find_element(By.ID, "segments").text
        for fmt in ("vtt", "txt"):
            driver.find_element(By.CSS_SELECTOR, f"button[data-format={fmt}]").click()
            seen[fmt] = _wait_for_file(download_dir / f"stereo_diarization.{fmt}")
    finally:
        driver.quit()
    return seen


async def test_speaker_labels_on_the_playground(server: Running, audio_dir: Path, tmp_path: Path) -> None:
    seen = await asyncio.to_thread(_upload_with_speakers, server.url, audio_dir, tmp_path)

    lines = seen["transcript"].splitlines()
    assert any(line.split(" ", 1)[1].startswith("Left: ") for line in lines), lines
    assert any(line.split(" ", 1)[1].startswith("Right: ") for line in lines), lines
    for fmt, response_format in (("vtt", "vtt"), ("txt", "text")):
        form = aiohttp.FormData()
        form.add_field("file", (audio_dir / CALL).read_bytes(), filename=CALL)
        form.add_field("response_format", response_format)
        form.add_field("speakers", "on")
        async with aiohttp.ClientSession() as session, session.post(
            f"{server.url}/v1/audio/transcriptions", data=form, headers={"Authorization": f"Bearer {API_KEY}"}
        ) as response:
            assert seen[fmt] == await response.text(), fmt  # the browser's download is the server's own
    assert "<v Left>" in seen["vtt"]
