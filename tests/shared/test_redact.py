"""Sources shown to people: credentials and query values never, the rest of the address always."""

from __future__ import annotations

import logging
import string

from hypothesis import given
from hypothesis import strategies as st

from shared.logs import SecretMaskingFilter
from shared.redact import MASK, display_source, mask_urls
from shared.reindex import ReindexProgress

# Secrets drawn from letters no host, path or parameter name below uses, so "not in" cannot be a coincidence.
SECRET_CHARS = string.ascii_uppercase + string.digits + "-._~!$"
secrets = st.text(SECRET_CHARS, min_size=4, max_size=20)
names = st.text(string.ascii_lowercase, min_size=1, max_size=8)
hosts = st.lists(names, min_size=1, max_size=3).map(".".join) | st.just("[::1]")
ports = st.none() | st.integers(1, 65535)
paths = st.lists(names, max_size=4).map(lambda parts: "".join(f"/{p}" for p in parts))


@st.composite
def secret_urls(draw: st.DrawFn) -> tuple[str, str, list[str]]:
    """(a URL carrying secrets, the part of it that must stay, the secrets)."""
    scheme = draw(st.sampled_from(["http", "https", "HTTPS"]))
    port = draw(ports)
    kept = f"{scheme}://{draw(hosts)}{'' if port is None else f':{port}'}{draw(paths)}"
    user, password = draw(names), draw(secrets)
    userinfo = draw(st.sampled_from([f"{user}:{password}@", f"{password}@", ""]))
    parameters = draw(st.lists(st.tuples(names, secrets), max_size=3))
    query = "&".join(f"{name}={value}" for name, value in parameters)
    fragment = draw(st.none() | secrets)
    url = kept.replace("://", f"://{userinfo}", 1)
    url += f"?{query}" if query else ""
    url += f"#{fragment}" if fragment is not None else ""
    hidden = [password] if userinfo else []
    return url, kept, [*hidden, *(value for _, value in parameters), *([fragment] if fragment else [])]


@given(secret_urls())
def test_a_url_keeps_its_address_and_loses_its_secrets(case: tuple[str, str, list[str]]) -> None:
    url, kept, hidden = case
    shown = display_source(url)
    assert shown.startswith(kept)
    for secret in hidden:
        assert secret not in shown
    assert display_source(shown) == shown


@given(st.text(string.printable.replace(":", "")))
def test_a_folder_path_is_shown_as_it_is(path: str) -> None:
    assert display_source(path) == path


def test_query_names_stay_and_values_go() -> None:
    url = "https://reader:pw-1234@book.example:8443/docs/sitemap.xml?token=abc123&lang=&flag#part"
    assert display_source(url) == f"https://book.example:8443/docs/sitemap.xml?token={MASK}&lang=&{MASK}#{MASK}"
    assert display_source("http://book.example/sitemap.xml") == "http://book.example/sitemap.xml"


def test_a_url_cut_off_inside_its_password_shows_no_part_of_it() -> None:
    """A library shortens its log lines (arq's argument lists): ``user:secr…`` is not a host and port."""
    assert display_source("http://reader:secr…") == f"http://{MASK}"
    assert display_source("http://[::1]:8080/x") == "http://[::1]:8080/x"


@given(secret_urls(), st.sampled_from(["from %s)", "({'source': '%s'})", 'GET %s "HTTP/1.1 200 OK"']))
def test_urls_inside_text_are_shown_without_secrets(case: tuple[str, str, list[str]], template: str) -> None:
    url, kept, hidden = case
    masked = mask_urls(template % url)
    assert kept in masked
    for secret in hidden:
        assert secret not in masked


def test_the_log_filter_masks_urls_in_messages_and_tracebacks() -> None:
    url = "https://reader:pw-5678@book.example/sitemap.xml?token=tok-9999"
    try:
        raise RuntimeError(f"fetching {url} failed")
    except RuntimeError as exc:
        record = logging.LogRecord("t", logging.WARNING, __file__, 1, "reading %s", (url,), (type(exc), exc, None))
    assert SecretMaskingFilter([]).filter(record)
    shown = record.getMessage() + (record.exc_text or "")
    assert "book.example/sitemap.xml" in shown
    assert "pw-5678" not in shown and "tok-9999" not in shown


def test_a_progress_report_holds_the_shown_source() -> None:
    progress = ReindexProgress(job_id="j", source="https://u:pw-5678@book.example/sitemap.xml?token=tok-9999")
    progress.skip("https://u:pw-5678@book.example/sitemap.xml?token=tok-9999", "sitemap: HTTP 404")
    raw = progress.model_dump_json()
    assert "pw-5678" not in raw and "tok-9999" not in raw
    assert progress.source == f"https://book.example/sitemap.xml?token={MASK}"
    assert ReindexProgress.model_validate_json(raw) == progress
