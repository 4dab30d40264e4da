"""Chunking a Docusaurus docs folder: front matter, routes, anchors, size bounds, bad files."""

from __future__ import annotations

import hashlib
import itertools
import re
import time
from pathlib import Path

import pytest

from tests.factories import CORPORA, SAMPLE_BOOK, write_file
from worker.knowledge.doc_routes import HeadingSlugger, doc_route, github_slug, strip_number_prefix
from worker.knowledge.documents import Chunk, DocumentError
from worker.knowledge.front_matter import split_front_matter
from worker.knowledge.markdown_chunks import chunk_book, chunk_document


def words(text: str) -> int:
    return len(text.split())


# --- front matter, titles, headings ------------------------------------------------------------


def test_front_matter_title_wins_and_heading_paths_follow_levels() -> None:
    source = """---
title: Walking Robots
sidebar_position: 3
---

# Legged Locomotion

Intro paragraph about legs.

## Gaits

Walking and running gaits.

### Static gait

One leg at a time.

## Control

Feedback control of legs.
"""
    chunks = chunk_document(source, "03-legs/01-walking.md", "/docs")
    assert [c.title for c in chunks] == ["Walking Robots"] * 4
    assert [c.heading for c in chunks] == [
        "Legged Locomotion",
        "Legged Locomotion > Gaits",
        "Legged Locomotion > Gaits > Static gait",
        "Legged Locomotion > Control",
    ]
    assert [c.url for c in chunks] == [
        "/docs/legs/walking",
        "/docs/legs/walking#gaits",
        "/docs/legs/walking#static-gait",
        "/docs/legs/walking#control",
    ]
    assert [c.position for c in chunks] == [0, 1, 2, 3]
    assert chunks[2].text == "One leg at a time."
    for chunk in chunks:
        assert chunk.content_hash == hashlib.sha256(chunk.text.encode()).hexdigest()
        assert chunk.doc == "03-legs/01-walking.md"


def test_title_falls_back_to_h1_then_file_name() -> None:
    with_h1 = chunk_document("# Sensors and Noise\n\nIMUs drift.\n", "sensors.md", "/docs")
    assert with_h1[0].title == "Sensors and Noise"
    bare = chunk_document("Just text, no heading.\n\n## Later\n\nMore.\n", "02-misc/05-notes.md", "/docs")
    assert bare[0].title == "notes"
    # without an H1 the heading path starts from the title
    assert bare[1].heading == "notes > Later"


def test_section_without_body_produces_no_chunk() -> None:
    chunks = chunk_document("# T\n\n## Empty\n\n## Full\n\nBody.\n", "a.md", "/docs")
    assert [c.heading for c in chunks] == ["T > Full"]


def test_broken_front_matter_is_a_document_error() -> None:
    with pytest.raises(DocumentError, match="invalid front matter"):
        split_front_matter("---\ntitle: [unclosed\n---\n# X\n")
    with pytest.raises(DocumentError, match="no closing"):
        split_front_matter("---\ntitle: X\n\n# Body without end of front matter\n")
    with pytest.raises(DocumentError, match="key: value"):
        split_front_matter("---\n- just\n- a list\n---\nbody\n")
    assert split_front_matter("---\n---\nbody") == ({}, "body")
    assert split_front_matter("no front matter\n---\n") == ({}, "no front matter\n---\n")


# --- routes ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("01-intro", "intro"),
        ("003 - setup", "setup"),
        ("1_basics", "basics"),
        ("2024-05-01-notes", "2024-05-01-notes"),  # a date, not a prefix
        ("1.2-release", "1.2-release"),  # a version, not a prefix
        ("42", "42"),
        ("intro", "intro"),
    ],
)
def test_number_prefixes(name: str, expected: str) -> None:
    assert strip_number_prefix(name) == expected


@pytest.mark.parametrize(
    ("doc", "front", "route"),
    [
        ("02-ros2/01-nodes-and-topics.md", {}, "/ros2/nodes-and-topics"),
        ("intro.mdx", {}, "/intro"),
        ("02-ros2/index.md", {}, "/ros2/"),
        ("02-ros2/README.md", {}, "/ros2/"),
        ("02-ros2/02-ros2.md", {}, "/ros2/"),  # a file named like its folder is the folder's index
        ("index.md", {}, "/"),
        ("02-ros2/01-nodes.md", {"id": "graph"}, "/ros2/graph"),
        ("02-ros2/01-nodes.md", {"slug": "/ros-graph"}, "/ros-graph"),
        ("02-ros2/01-nodes.md", {"slug": "graph-basics"}, "/ros2/graph-basics"),
        ("02-ros2/deep/01-nodes.md", {"slug": "../shallow"}, "/ros2/shallow"),
        ("02-ros2/01-nodes.md", {"id": "ignored-for-url", "slug": "/abs"}, "/abs"),
        ("02-ros2/index.md", {"slug": "overview"}, "/ros2/overview"),
    ],
)
def test_doc_routes(doc: str, front: dict[str, object], route: str) -> None:
    assert doc_route(doc, front) == route


def test_url_joins_base_url_and_honours_front_matter() -> None:
    source = "---\nslug: /vla\ntitle: VLA\n---\n\n# VLA\n\nText.\n\n## What is a VLA?\n\nMore.\n"
    chunks = chunk_document(source, "04-vla/01-vla.md", "https://book.example.org/docs/")
    assert [c.url for c in chunks] == [
        "https://book.example.org/docs/vla",
        "https://book.example.org/docs/vla#what-is-a-vla",
    ]


def test_id_with_slash_is_rejected() -> None:
    with pytest.raises(DocumentError, match="'id'"):
        chunk_document("---\nid: a/b\n---\ntext\n", "x.md", "/docs")


# --- anchors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("heading", "slug"),
    [
        ("What is a URDF?", "what-is-a-urdf"),
        ("C++ & Python: basics", "c--python-basics"),
        ("The perception\u2013action loop", "the-perceptionaction-loop"),  # an en dash
        ("Über Roboter", "über-roboter"),
        ("snake_case and kebab-case", "snake_case-and-kebab-case"),
        ("ROS 2 (Humble)", "ros-2-humble"),
    ],
)
def test_github_slug(heading: str, slug: str) -> None:
    assert github_slug(heading) == slug


def test_duplicate_anchors_get_counters() -> None:
    slugger = HeadingSlugger()
    assert [slugger.slug(h) for h in ["Example", "Example", "Example 1", "Example"]] == [
        "example",
        "example-1",
        "example-1-1",
        "example-2",
    ]


def test_duplicate_headings_in_a_document_and_inline_markup() -> None:
    source = (
        "# Page\n\n## Setup\n\nA.\n\n## Setup\n\nB.\n\n## Using `rclpy` with **QoS**\n\nC.\n\n"
        "## Custom {#my-anchor}\n\nD.\n"
    )
    chunks = chunk_document(source, "page.md", "/docs")
    assert [c.url.split("#")[1] for c in chunks] == ["setup", "setup-1", "using-rclpy-with-qos", "my-anchor"]
    assert chunks[2].heading == "Page > Using rclpy with QoS"
    assert chunks[3].heading == "Page > Custom"


# --- MDX, JSX, admonitions ---------------------------------------------------------------------


def test_mdx_imports_and_jsx_tags_are_dropped_but_prose_and_code_kept() -> None:
    source = """---
title: Tabs
---
import Tabs from '@theme/Tabs';
import TabItem from '@theme/TabItem';

# Installing

<Tabs>
<TabItem value="apt" label="Ubuntu">

Install the binary packages with apt.

```bash
sudo apt install ros-humble-desktop
```

</TabItem>
</Tabs>

<details>
<summary>Why Humble?</summary>
It is a long-term support release.
</details>

{/* a comment for editors */}

```python
import rclpy
export_value = 1
```
"""
    text = "\n\n".join(c.text for c in chunk_document(source, "install.mdx", "/docs"))
    assert "@theme" not in text
    assert "<" not in text.replace("<=", "")
    assert "Install the binary packages with apt." in text
    assert "sudo apt install ros-humble-desktop" in text
    assert "Why Humble?" in text
    assert "long-term support release" in text
    assert "a comment for editors" not in text
    assert "```python\nimport rclpy\nexport_value = 1\n```" in text  # imports inside code are code


def test_admonitions_keep_their_text_with_a_label() -> None:
    source = """# Safety

:::warning Before you power on
Keep the emergency stop within reach.

```bash
ros2 service call /estop std_srvs/srv/Trigger
```
:::

:::tip[Hint]
Start in simulation.
:::

After the admonitions.
"""
    text = chunk_document(source, "safety.md", "/docs")[0].text
    assert "Warning (Before you power on): Keep the emergency stop within reach." in text
    assert "```bash\nros2 service call /estop std_srvs/srv/Trigger\n```" in text
    assert "Tip (Hint): Start in simulation." in text
    assert "After the admonitions." in text
    assert ":::" not in text


def test_tables_and_lists_are_rendered_as_text() -> None:
    source = "# T\n\n| Joint | Motion |\n|---|---|\n| revolute | rotation |\n\n- first item\n- second item\n"
    text = chunk_document(source, "t.md", "/docs")[0].text
    assert "| Joint | Motion |" in text
    assert "| revolute | rotation |" in text
    assert "- first item\n- second item" in text


# --- size bounds, overlap, code fences ---------------------------------------------------------


def numbered_prose(count: int, start: int = 0) -> str:
    """Sentences of ten distinct words, so every word can be located."""
    tokens = [f"w{i:05d}" for i in range(start, start + count)]
    sentences = [" ".join(tokens[i : i + 10]) + "." for i in range(0, count, 10)]
    return " ".join(sentences)


def test_long_sections_are_bounded_and_overlap() -> None:
    source = "# Long\n\n" + "\n\n".join(numbered_prose(100, start=i * 100) for i in range(12))
    chunks = chunk_document(source, "long.md", "/docs", max_words=350, overlap_words=40)
    assert len(chunks) >= 4
    assert all(words(c.text) <= 350 for c in chunks)
    for previous, current in itertools.pairwise(chunks):
        tail = previous.text.split()[-40:]
        assert current.text.split()[:40] == tail
    # nothing lost: every word appears somewhere
    seen = {w.rstrip(".") for c in chunks for w in c.text.split()}
    assert {f"w{i:05d}" for i in range(1200)} <= seen


def test_a_single_huge_paragraph_is_cut_at_sentences() -> None:
    source = "# Huge\n\n" + numbered_prose(1000)
    chunks = chunk_document(source, "huge.md", "/docs", max_words=120, overlap_words=20)
    assert all(words(c.text) <= 120 for c in chunks)
    for previous, current in itertools.pairwise(chunks):
        assert current.text.split()[:20] == previous.text.split()[-20:]
    # pieces of the paragraph end at sentence ends, not in the middle of a sentence
    assert chunks[0].text.endswith(".")


def code_block(lines: int, tag: str = "c") -> str:
    body = "\n".join(f"x_{tag}{i} = compute({i}, {i + 1})" for i in range(lines))
    return f"```python\n{body}\n```"


def test_code_fence_that_fits_is_never_cut() -> None:
    code = code_block(30)  # 30 lines * 4 words = 120 words
    source = "# Code\n\n" + numbered_prose(300) + "\n\n" + code + "\n\n" + numbered_prose(100, start=300)
    chunks = chunk_document(source, "code.md", "/docs", max_words=350, overlap_words=40)
    holders = [c for c in chunks if "x_c0 =" in c.text]
    assert len(holders) == 1
    assert code in holders[0].text
    for chunk in chunks:
        assert words(chunk.text) <= 350
        assert chunk.text.count("```") % 2 == 0  # every fence opened is closed


def test_overlap_never_starts_inside_code() -> None:
    code = code_block(60)  # 240 words, fits alone but not with much prose
    source = "# Code\n\n" + numbered_prose(200) + "\n\n" + code + "\n\n" + numbered_prose(200, start=200)
    chunks = chunk_document(source, "code.md", "/docs", max_words=350, overlap_words=40)
    for chunk in chunks:
        first_line = chunk.text.split("\n", 1)[0]
        assert not first_line.startswith("x_c"), "a chunk starts inside a code block"
        assert chunk.text.count("```") % 2 == 0


def test_code_longer_than_the_bound_is_split_into_fenced_pieces() -> None:
    code = code_block(200)  # 800 words
    chunks = chunk_document("# Big\n\n" + code, "big.md", "/docs", max_words=350, overlap_words=40)
    assert len(chunks) >= 3
    for chunk in chunks:
        assert words(chunk.text) <= 350
        assert chunk.text.startswith("```python\n")
        assert chunk.text.endswith("\n```")
    lines = [line for c in chunks for line in c.text.split("\n") if line.startswith("x_c")]
    assert len(set(lines)) == 200


def test_bounds_are_validated() -> None:
    with pytest.raises(ValueError):
        chunk_document("# x\n\ntext", "x.md", "/docs", max_words=5)
    with pytest.raises(ValueError):
        chunk_document("# x\n\ntext", "x.md", "/docs", max_words=100, overlap_words=60)


# --- folders and bad files ---------------------------------------------------------------------


def test_bad_files_are_skipped_with_reasons(tmp_path: Path) -> None:
    write_file(tmp_path, "01-good/01-fine.md", "---\ntitle: Fine\n---\n\n# Fine\n\nUseful text.\n")
    write_file(tmp_path, "01-good/02-binary.md", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    write_file(tmp_path, "01-good/03-latin1.md", "# Caf\xe9\n\nna\xefve\n".encode("latin-1"))
    write_file(tmp_path, "01-good/04-empty.md", "  \n\n")
    write_file(tmp_path, "01-good/05-yaml.md", "---\ntitle: [oops\n---\n\n# Broken\n\ntext\n")
    write_file(tmp_path, "01-good/06-unclosed.md", "---\ntitle: Unclosed\n\n# Body\n")
    write_file(tmp_path, "01-good/07-draft.md", "---\ndraft: true\n---\n\n# Draft\n\ntext\n")
    write_file(tmp_path, "01-good/08-only-front-matter.md", "---\ntitle: Nothing\n---\n")
    write_file(tmp_path, "01-good/_partial.md", "# Partial\n\ntext\n")
    write_file(tmp_path, "01-good/image.png", b"\x89PNG")
    write_file(tmp_path, ".hidden/secret.md", "# Hidden\n\ntext\n")
    (tmp_path / "01-good" / "09-dangling.md").symlink_to(tmp_path / "missing-target.md")

    book = chunk_book(tmp_path, "/docs")
    assert book.documents == 1
    assert {c.doc for c in book.chunks} == {"01-good/01-fine.md"}
    reasons = {item.doc: item.reason for item in book.skipped}
    assert set(reasons) == {
        "01-good/02-binary.md",
        "01-good/03-latin1.md",
        "01-good/04-empty.md",
        "01-good/05-yaml.md",
        "01-good/06-unclosed.md",
        "01-good/07-draft.md",
        "01-good/08-only-front-matter.md",
        "01-good/_partial.md",
        "01-good/09-dangling.md",
    }
    assert "binary" in reasons["01-good/02-binary.md"]
    assert "UTF-8" in reasons["01-good/03-latin1.md"]
    assert "empty" in reasons["01-good/04-empty.md"]
    assert "invalid front matter" in reasons["01-good/05-yaml.md"]
    assert "line 2" in reasons["01-good/05-yaml.md"]
    assert "closing" in reasons["01-good/06-unclosed.md"]
    assert "draft" in reasons["01-good/07-draft.md"]
    assert "no text" in reasons["01-good/08-only-front-matter.md"]
    assert "partial" in reasons["01-good/_partial.md"]
    assert "unreadable" in reasons["01-good/09-dangling.md"]


def test_missing_source_folder_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        chunk_book(tmp_path / "nope", "/docs")


def test_crlf_and_bom_are_handled(tmp_path: Path) -> None:
    write_file(tmp_path, "a.md", "\ufeff---\r\ntitle: Windows\r\n---\r\n\r\n# Head\r\n\r\nLine one.\r\n")
    book = chunk_book(tmp_path, "/docs")
    assert book.skipped == []
    assert book.chunks[0].title == "Windows"
    assert book.chunks[0].text == "Line one."


# --- the sample book and the corpora -----------------------------------------------------------


def test_sample_book_chunks_cleanly() -> None:
    book = chunk_book(SAMPLE_BOOK, "/docs")
    assert book.skipped == []
    assert book.documents >= 4
    urls = {c.url.split("#")[0] for c in book.chunks}
    assert "/docs/ros2/nodes-and-topics" in urls
    topic = [c for c in book.chunks if c.url == "/docs/ros2/nodes-and-topics#what-is-a-topic"]
    assert topic and "publish" in topic[0].text
    assert all(re.fullmatch(r"/docs/[a-z0-9/-]+(#[a-z0-9-]+)?", c.url) for c in book.chunks)


@pytest.mark.parametrize("name", ["book-a", "book-b"])
def test_public_corpora_chunk_fast_and_almost_completely(name: str) -> None:
    source = CORPORA / name
    files = [p for p in source.rglob("*") if p.suffix in {".md", ".mdx"}]
    started = time.perf_counter()
    book = chunk_book(source, "/docs")
    elapsed = time.perf_counter() - started
    assert len(files) > 20
    assert book.documents >= 0.95 * len(files)
    assert book.documents + len(book.skipped) == len(files)
    assert all(isinstance(c, Chunk) and 0 < words(c.text) <= 350 for c in book.chunks)
    assert len({(c.doc, c.position) for c in book.chunks}) == len(book.chunks)
    assert elapsed < 5.0, f"chunking {name} took {elapsed:.2f}s"
