"""The files a report page refers to: copied into a folder beside the page, or inlined.

Every file gets one URL, relative to the page (``<page stem>_files/<name>``) or a
``data:`` URI, so the page works offline and a file named twice is placed once.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
import hashlib
import html
import os
from pathlib import Path
import re
import shutil
import tempfile
from urllib.parse import quote

from plant_disease_ros.training.report_html import LinkResolver

MIME_TYPES = {'.png': 'image/png', '.jpg': 'image/jpeg', '.jpeg': 'image/jpeg',
              '.svg': 'image/svg+xml', '.gif': 'image/gif', '.json': 'application/json',
              '.geojson': 'application/geo+json', '.geojsons': 'application/geo+json-seq',
              '.csv': 'text/csv', '.md': 'text/markdown', '.txt': 'text/plain'}


def is_picture(path: Path) -> bool:
    """Return whether ``path`` is a picture a page shows (by its suffix)."""
    return MIME_TYPES.get(Path(path).suffix.lower(), '').startswith('image/')


class Assets:
    """Copies files beside the page (or inlines them) and returns the URL to use."""

    def __init__(self, page: Path, inline: bool = False, staging: Path | None = None) -> None:
        """Keep assets of ``page`` in ``<page stem>_files/`` (or inline them).

        With ``staging`` the files are copied there instead, while the URLs name
        ``<page stem>_files/``: the caller moves the folder into place once the page is
        complete, so a failed run leaves the previous report whole.
        """
        self.page = page
        self.inline = inline
        self.folder = page.parent / f'{page.stem}_files'
        self.target = staging if staging is not None else self.folder
        self._urls: dict[Path, str] = {}
        self._names: set[str] = set()
        self._scratch: tempfile.TemporaryDirectory | None = None

    def scratch(self) -> Path:
        """Return a temporary folder for pictures made on the fly (gone after cleanup)."""
        if self._scratch is None:
            self._scratch = tempfile.TemporaryDirectory(prefix='plant_disease_report_')
        return Path(self._scratch.name)

    def cleanup(self) -> None:
        """Remove the scratch folder."""
        if self._scratch is not None:
            self._scratch.cleanup()
            self._scratch = None

    def url(self, path: str | os.PathLike, inline: bool | None = None) -> str:
        """Return the URL of ``path`` for the page, copying or inlining it once."""
        source = Path(path).resolve()
        if source in self._urls:
            return self._urls[source]
        if not source.is_file():
            raise FileNotFoundError(f'{source} is not a file')
        if self.inline if inline is None else inline:
            mime = MIME_TYPES.get(source.suffix.lower(), 'application/octet-stream')
            url = f'data:{mime};base64,' + base64.b64encode(source.read_bytes()).decode()
        else:
            self.target.mkdir(parents=True, exist_ok=True)
            name = self._unique_name(source)
            shutil.copyfile(source, self.target / name)
            # The page's name may hold '#', '?' or '%' (field day #3.html): quoted, or
            # every picture would break.
            url = f'{quote(self.folder.name)}/{quote(name)}'
        self._urls[source] = url
        return url

    def link(self, path: str | os.PathLike, text: str | None = None) -> str:
        """Return HTML linking to the data file ``path`` (``text``: the link's, escaped).

        A self-contained page (``inline``) names the file instead: a data file inlined in
        a link (a GeoJSON of a field day, a table) would make the page many times larger
        for a click nobody needs to make offline.
        """
        shown = html.escape(text if text is not None else Path(path).name)
        if self.inline:
            return f'<code>{shown}</code>'
        return f'<a href="{html.escape(self.url(path))}">{shown}</a>'

    def _unique_name(self, source: Path) -> str:
        name = re.sub(r'[^\w.-]', '_', source.name)
        if name in self._names:
            digest = hashlib.sha256(str(source).encode()).hexdigest()[:8]
            name = f'{Path(name).stem}_{digest}{Path(name).suffix}'
        self._names.add(name)
        return name

    def shown(self, path: str | os.PathLike) -> bool:
        """Return whether ``path`` has been placed on the page already."""
        return Path(path).resolve() in self._urls

    def resolver(self, folders: Sequence[Path],
                 roots: Sequence[Path] | None = None) -> LinkResolver:
        """Return a resolver of relative references against ``folders``, first found wins.

        Only a file whose path, ``..`` taken out without following links, lies inside one
        of ``roots`` (default: ``folders``) is resolved: a card's ``../../etc/passwd``
        must not copy any readable file into the report, while its run's
        ``../training_curves.png`` or an evaluation folder that is a link to another disk
        stay pictures.
        """
        inside = [Path(os.path.abspath(root)) for root in (roots if roots is not None
                                                            else folders)]

        def resolve(target: str) -> str | None:
            relative = target.split('#', 1)[0].split('?', 1)[0]
            if not relative:
                return None
            for folder in folders:
                candidate = Path(os.path.normpath(os.path.abspath(Path(folder) / relative)))
                if candidate.is_file() and any(candidate.is_relative_to(root)
                                               for root in inside):
                    if self.inline and not is_picture(candidate):
                        return None  # a link keeps its text; no data file inlined
                    return self.url(candidate)
            return None
        return resolve
