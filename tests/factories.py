"""Test data and settings built in one place, shared by the tests of every folder."""

from __future__ import annotations

import math
import re
import time
import uuid
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from starlette.responses import Response

from shared.db.database import Database
from shared.db.migrate import migrate
from shared.db.readers import create_reader
from shared.db.turn_history import write_turns
from shared.history import CitationRecord, TurnRecord
from shared.protocol import Source
from shared.settings import Settings
from worker.knowledge.documents import Passage
from worker.knowledge.indexing import IndexBuild
from worker.knowledge.store import KnowledgeStore

REPO = Path(__file__).resolve().parents[1]
SAMPLE_BOOK = REPO / "book" / "docs"
CORPORA = REPO / ".." / "shared" / "corpora"
DIM = 64


class IsolatedSettings(Settings):
    """Settings from explicit values only: a developer's environment (a real COHERE_API_KEY, say) must
    not leak into tests."""

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, *args, **kwargs):  # type: ignore[no-untyped-def,override]
        return (init_settings,)


def knowledge_settings(tmp_path: Path, **overrides: object) -> Settings:
    """Settings for the knowledge base alone: a data dir under ``tmp_path``, the sample book, small vectors."""
    values: dict[str, object] = {
        "data_dir": tmp_path / "data",
        "book_source": str(SAMPLE_BOOK),
        "cohere_embed_dimension": DIM,
    }
    values.update(overrides)
    return IsolatedSettings(**values)  # type: ignore[arg-type]


class HashEmbedder:
    """A deterministic stand-in for an embedding model: hashed, normalised bag of words."""

    def __init__(self, dim: int = DIM) -> None:
        self.dim = dim
        self.batches: list[int] = []

    def vector(self, text: str) -> list[float]:
        values = [0.0] * self.dim
        for word in re.findall(r"[a-z0-9]+", text.lower()):
            values[zlib.crc32(word.encode()) % self.dim] += 1.0
        values[0] += 0.01  # never the zero vector
        norm = math.sqrt(sum(v * v for v in values))
        return [v / norm for v in values]

    async def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.batches.append(len(texts))
        return [self.vector(text) for text in texts]


# --- books on disk ---


def write_file(root: Path, rel: str, text: str | bytes) -> Path:
    """Write ``text`` (bytes as they are) to ``root/rel``, creating folders."""
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def write_book(root: Path, files: dict[str, str | bytes]) -> Path:
    """A docs folder at ``root`` holding ``files`` (relative path -> content)."""
    for rel, text in files.items():
        write_file(root, rel, text)
    return root


def chapter(title: str, *sections: tuple[str, str]) -> str:
    """A Markdown chapter with front matter, a title and one ``##`` section per (heading, text)."""
    body = "\n\n".join(f"## {heading}\n\n{text}" for heading, text in sections)
    return f"---\ntitle: {title}\n---\n\n# {title}\n\n{body}\n"


SMALL_BOOK = {
    "01-basics/01-actuators.md": chapter(
        "Actuators",
        ("Electric motors", "Brushless motors turn current into torque for each humanoid joint."),
        ("Hydraulics", "Hydraulic cylinders give large forces for heavy legs."),
    ),
    "01-basics/02-sensors.md": chapter(
        "Sensors",
        ("Encoders", "Encoders report joint angles to the controller many times a second."),
        ("Inertial units", "An inertial measurement unit senses acceleration and rotation of the torso."),
    ),
    "02-control/01-balance.md": chapter(
        "Balance",
        ("Support polygon", "The centre of pressure must stay inside the support polygon of the feet."),
        ("Stepping", "A capture step moves the foot where the robot can stop safely."),
    ),
}
"""Three chapters, two sections each: six chunks, each findable by its own words."""


def index_build(store: KnowledgeStore, source: Path | str, **options: Any) -> IndexBuild:
    """An ``IndexBuild`` of ``source`` published under ``/docs``; ``options`` as ``IndexBuild`` takes them."""
    return IndexBuild(store, source=str(source), base_url="/docs", **options)


SITEMAP_NS = "http://www.sitemaps.org/schemas/sitemap/0.9"


def sitemap(locations: Iterable[str]) -> Response:
    """A sitemap listing ``locations``, as a site serves it."""
    urls = "".join(f"<url><loc>{location}</loc></url>" for location in locations)
    return Response(f'<urlset xmlns="{SITEMAP_NS}">{urls}</urlset>', media_type="application/xml")


def sitemap_index(locations: Iterable[str]) -> Response:
    """A sitemap index pointing at the sitemaps at ``locations``."""
    entries = "".join(f"<sitemap><loc>{location}</loc></sitemap>" for location in locations)
    return Response(f'<sitemapindex xmlns="{SITEMAP_NS}">{entries}</sitemapindex>', media_type="application/xml")


async def top_doc(store: KnowledgeStore, question: str) -> str:
    """The document of the best keyword match for ``question`` ("" when nothing matches)."""
    passages = await store.search(question, None, 1)
    return passages[0].doc if passages else ""


# --- durable memory ---


def a_source(source_id: str = "s1") -> Source:
    return Source(
        id=source_id,
        doc="intro.md",
        title="Introduction",
        heading="What is Physical AI",
        url="/docs/intro#what-is-physical-ai",
        snippet="Physical AI is…",
        score=0.5,
    )


def a_turn_record(**overrides: Any) -> TurnRecord:
    now = time.time()
    values: dict[str, Any] = {
        "turn_id": uuid.uuid4().hex,
        "conversation_id": uuid.uuid4().hex,
        "reader_id": None,
        "question": "What is Physical AI?",
        "selected_text": None,
        "answer": "Physical AI is AI that acts in the world.",
        "sources": [a_source()],
        "citations": [CitationRecord(start=0, end=11, text="Physical AI", source_ids=["s1"])],
        "provider": "offline",
        "status": "done",
        "first_delta_ms": 12.5,
        "total_ms": 80.0,
        "asked_at": now - 0.08,
        "finished_at": now,
    }
    values.update(overrides)
    return TurnRecord(**values)


async def a_reader(database: Database) -> tuple[str, str]:
    """A new reader's (id, token)."""
    created = await create_reader(database.sessions)
    return created.reader_id, created.reader_token


async def stored_turns(settings: Settings, records: list[TurnRecord]) -> None:
    """``records`` in a migrated database on ``settings``, closed again: what an earlier process left."""
    earlier = Database(settings)
    try:
        await migrate(earlier.engine)
        await write_turns(earlier.sessions, records)
    finally:
        await earlier.close()


def passage(
    *, text: str, doc: str = "02-ros2/01-nodes-and-topics.md", heading: str = "Topics", score: float = 1.0
) -> Passage:
    """A retrieved passage of the sample book, as ``KnowledgeStore.search`` returns them."""
    return Passage(
        id=f"{doc}#{heading}",
        doc=doc,
        title="Nodes and Topics in ROS 2",
        heading=heading,
        url=f"/docs/{doc.removesuffix('.md')}#{heading.lower().replace(' ', '-')}",
        text=text,
        score=score,
    )
