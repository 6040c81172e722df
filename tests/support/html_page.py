"""An HTML page parsed for the tests: its elements, with their attributes and own text."""

from __future__ import annotations

from dataclasses import dataclass
from html.parser import HTMLParser


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    text: str = ""


class Page(HTMLParser):
    """A parsed page: every element with its attributes and its own text, and all the text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[Element] = []
        self.texts: list[str] = []
        self._open: list[Element] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {name: value or "" for name, value in attrs})
        self.elements.append(element)
        if tag not in ("meta", "link", "br", "img", "input"):
            self._open.append(element)

    def handle_endtag(self, tag: str) -> None:
        for index in range(len(self._open) - 1, -1, -1):
            if self._open[index].tag == tag:
                del self._open[index:]
                break

    def handle_data(self, data: str) -> None:
        self.texts.append(data)
        if self._open:
            self._open[-1].text += data

    @classmethod
    def of(cls, html: str) -> Page:
        page = cls()
        page.feed(html)
        page.close()
        return page

    def find(self, tag: str | None = None, **attrs: str) -> list[Element]:
        """Elements of that tag having those attributes (`data_status` for data-status)."""
        wanted = {name.replace("_", "-"): value for name, value in attrs.items()}
        return [
            e
            for e in self.elements
            if (tag is None or e.tag == tag)
            and all(e.attrs.get(name) == value for name, value in wanted.items())
        ]

    def having(self, attribute: str) -> list[Element]:
        return [e for e in self.elements if attribute in e.attrs]

    def figures(self) -> dict[str, str]:
        return {
            e.attrs["data-status"]: e.attrs["data-value"]
            for e in self.having("data-status")
            if "data-value" in e.attrs
        }

    def by_priority(self) -> dict[int, tuple[int, int, int]]:
        return {
            int(e.attrs["data-priority"]): (
                int(e.attrs["data-assets"]),
                int(e.attrs["data-with-copy"]),
                int(e.attrs["data-at-target"]),
            )
            for e in self.find("tr")
            if "data-priority" in e.attrs
        }
