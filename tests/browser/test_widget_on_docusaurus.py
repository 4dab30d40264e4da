"""The book widget on the sample book's real Docusaurus build (tests/fixtures/docusaurus, Faster on), loaded
by the build's own `scripts` entry: it keeps clear of the book's back-to-top button and phone drawer, takes
the book's primary colour, and a restored panel shows the latest answer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from playwright.async_api import Locator, Page, expect

from tests.browser.conftest import PHONE, docusaurus_book, screenshot
from tests.conftest import SettingsFactory
from tests.stack import running_stack

CHAPTER = "/docs/ros2/nodes-and-topics"
# The template's custom.css: --ifm-color-primary in light and in dark mode.
BOOK_GREEN = "rgb(46, 133, 85)"
BOOK_GREEN_DARK = "rgb(37, 194, 160)"


@asynccontextmanager
async def book_with_tutor(make_settings: SettingsFactory) -> AsyncIterator[str]:
    """The built book on one origin, the tutor on another, source links pointing into the book."""
    async with docusaurus_book() as book:
        settings = make_settings(allowed_origins=[book.url], book_base_url=f"{book.url}/docs")
        async with running_stack(settings) as tutor:
            book.tutor_url = tutor
            yield book.url


async def open_chapter(page: Page, url: str) -> Locator:
    """Loads a page of the book and waits for React to take it over; returns the widget's launcher."""
    await page.goto(url)
    await expect(page.locator("html")).to_have_attribute("data-has-hydrated", "true")
    launcher = page.get_by_role("button", name="Ask the tutor")
    await expect(launcher).to_be_visible()
    return launcher


async def background(locator: Locator) -> str:
    color: str = await locator.evaluate("node => getComputedStyle(node).backgroundColor")
    return color


def overlap(a: dict[str, float], b: dict[str, float]) -> bool:
    return not (
        a["x"] + a["width"] <= b["x"]
        or b["x"] + b["width"] <= a["x"]
        or a["y"] + a["height"] <= b["y"]
        or b["y"] + b["height"] <= a["y"]
    )


async def test_the_back_to_top_button_stays_clickable(make_settings: SettingsFactory, page: Page) -> None:
    async with book_with_tutor(make_settings) as book:
        launcher = await open_chapter(page, book + CHAPTER)
        # Docusaurus shows its button once the reader scrolls back up from far down the page.
        await page.evaluate("window.scrollTo(0, document.documentElement.scrollHeight)")
        await page.mouse.move(500, 400)
        await page.mouse.wheel(0, -300)
        back_to_top = page.get_by_role("button", name="Scroll back to top")
        await expect(back_to_top).to_be_visible()
        await expect(back_to_top).to_have_css("opacity", "1")  # its fade-in has ended
        launcher_box = await launcher.bounding_box()
        button_box = await back_to_top.bounding_box()
        assert launcher_box and button_box and not overlap(launcher_box, button_box)
        assert launcher_box["y"] + launcher_box["height"] < button_box["y"], "the launcher sits above it"
        await screenshot(page, "docusaurus-1-back-to-top")

        assert await page.evaluate("scrollY") > 1000
        await back_to_top.click()  # a real click: it fails if anything of the widget receives it instead
        await page.wait_for_function("scrollY === 0")

        # The book's colours are the widget's: its green, then its dark-mode green.
        assert await background(launcher) == BOOK_GREEN
        # The reader picks dark mode with the navbar's switch (it cycles system, light, dark).
        switch = page.get_by_role("button", name="Switch between dark and light mode")
        html = page.locator("html")
        for _ in range(3):
            choice = await html.get_attribute("data-theme-choice") or ""
            if choice == "dark":
                break
            await switch.click()
            await expect(html).not_to_have_attribute("data-theme-choice", choice)
        await expect(html).to_have_attribute("data-theme", "dark")
        await expect(launcher).to_have_css("background-color", BOOK_GREEN_DARK)
        await launcher.click()
        panel = page.get_by_role("dialog", name="Ask the book")
        await expect(panel).to_be_visible()
        panel_box = await panel.bounding_box()
        navbar_box = await page.get_by_role("navigation", name="Main").bounding_box()
        assert panel_box and navbar_box
        assert panel_box["y"] >= navbar_box["y"] + navbar_box["height"], "the panel leaves the book's navbar free"
        await screenshot(page, "docusaurus-2-dark-panel")
        await switch.click()  # still reachable with the panel open
        await expect(html).not_to_have_attribute("data-theme-choice", "dark")
        # A book that wants another accent sets --tutor-accent, which wins over its primary colour.
        await page.evaluate("document.documentElement.style.setProperty('--tutor-accent', '#0b7285')")
        await expect(launcher).to_have_css("background-color", "rgb(11, 114, 133)")


async def test_the_phone_drawer_is_not_covered(make_settings: SettingsFactory, page: Page) -> None:
    await page.set_viewport_size(PHONE)
    async with book_with_tutor(make_settings) as book:
        launcher = await open_chapter(page, book + CHAPTER)
        spot = await launcher.bounding_box()
        assert spot
        await page.get_by_role("button", name="Toggle navigation bar").click()
        drawer = page.locator(".navbar-sidebar")
        await expect(drawer).to_be_visible()
        await expect(launcher).to_be_hidden()
        # Where the launcher was, the reader touches the drawer (or its backdrop, which closes it), not the widget.
        at_spot = await page.evaluate(
            "([x, y]) => { const hit = document.elementFromPoint(x, y); return hit.id !== 'physical-ai-tutor'"
            " && Boolean(hit.closest('.navbar-sidebar, .navbar-sidebar__backdrop')); }",
            [spot["x"] + spot["width"] / 2, spot["y"] + spot["height"] / 2],
        )
        assert at_spot
        await screenshot(page, "docusaurus-3-phone-drawer")

        await drawer.get_by_role("link", name="Describing a Robot with URDF and TF").click()
        await expect(page).to_have_url(f"{book}/docs/ros2/robot-description")
        await expect(drawer).to_be_hidden()
        await expect(launcher).to_be_visible()  # back once the drawer has closed


async def test_a_restored_panel_shows_the_latest_answer(make_settings: SettingsFactory, page: Page) -> None:
    async with book_with_tutor(make_settings) as book:
        launcher = await open_chapter(page, book + CHAPTER)
        await page.get_by_text("A node is a single, focused unit of computation").click(click_count=3)
        await page.get_by_role("button", name="Ask about this").click()
        panel = page.get_by_role("dialog", name="Ask the book")
        question = panel.get_by_label("Your question")
        await expect(question).to_be_focused()
        # The placeholder that says Enter explains the passage fits the 420 px panel on one line.
        room = await question.evaluate(
            """input => {
              const style = getComputedStyle(input);
              const context = document.createElement('canvas').getContext('2d');
              context.font = `${style.fontStyle} ${style.fontWeight} ${style.fontSize} ${style.fontFamily}`;
              const width = input.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
              return width - context.measureText(input.placeholder).width;
            }"""
        )
        assert room >= 0, f"the placeholder overflows by {-room:.0f} px"
        await screenshot(page, "docusaurus-4-selection")
        await page.keyboard.press("Enter")
        turns = panel.locator(".turn")
        for asked, follow_up in enumerate(["What is a topic?", "What does QoS reliability change?"], start=1):
            # The widget draws a new turn on the next animation frame: until then the last turn is the previous,
            # already answered one, and an ask typed then would be refused (one answer at a time).
            await expect(turns).to_have_count(asked)
            await expect(turns.last).to_have_attribute("data-status", "done")
            await question.fill(follow_up)
            await question.press("Enter")
        await expect(turns).to_have_count(3)
        await expect(turns.last).to_have_attribute("data-status", "done")

        async def latest_answer_in_view() -> None:
            scroller = await panel.locator(".scroller").bounding_box()
            answer = await turns.last.locator(".answer-body").bounding_box()
            assert scroller and answer
            assert scroller["y"] - 1 <= answer["y"] < scroller["y"] + scroller["height"], "its start is shown"
            first = await turns.first.bounding_box()
            assert first and first["y"] + first["height"] <= scroller["y"] + 1, "the first turn is scrolled away"

        await latest_answer_in_view()
        await page.reload()
        await expect(page.locator("html")).to_have_attribute("data-has-hydrated", "true")
        await expect(panel).to_be_visible()
        await expect(turns.last).to_have_attribute("data-status", "done")
        await latest_answer_in_view()
        await screenshot(page, "docusaurus-5-restored")

        # Following a source link loads that page of the book, with the panel open at the same answer.
        await turns.last.get_by_text("Sources (").click()
        link = turns.last.locator(".source a").first
        href = await link.get_attribute("href")
        assert href and href.startswith(f"{book}/docs/")
        await link.click()
        await expect(page).to_have_url(href)
        await expect(page.locator("html")).to_have_attribute("data-has-hydrated", "true")
        await expect(panel).to_be_visible()
        await latest_answer_in_view()
        await expect(launcher).to_have_attribute("aria-expanded", "true")
