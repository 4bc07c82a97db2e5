"""
``.. bench-report:: path/to/report.md``: render a Markdown report written
by ``nemesis-bkg bench`` (headings, bullet lists, paragraphs, pipe tables)
as reStructuredText, so the benchmark pages show the files the command
wrote, figure for figure, without retyping them. The top-level ``#`` title
is left out (the page has its own); ``##`` headings become rubrics.
"""

import re
from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import Directive
from docutils.statemachine import StringList

_INLINE_CODE = re.compile(r"(?<!`)`([^`]+)`(?!`)")


def _inline(text):
    return _INLINE_CODE.sub(r"``\1``", text.strip())


def _cell(text):
    text = _inline(text)
    if not text:
        return "\\ "
    # A lone "-" or "+" (no value) would start a bullet list inside the table.
    if text[0] in "-+*" and (len(text) == 1 or text[1] == " "):
        return "\\" + text
    return text


def _table_rows(lines):
    rows = []
    for line in lines:
        cells = line.strip().strip("|").split("|")
        if all(re.fullmatch(r"\s*:?-{3,}:?\s*", cell) for cell in cells):
            continue  # the header separator
        rows.append([_cell(cell) for cell in cells])
    return rows


def markdown_to_rst(text):
    """Convert the subset of Markdown the benchmark reports use to reST lines."""
    lines = text.splitlines()
    out = []
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.startswith("|"):
            block = []
            while index < len(lines) and lines[index].startswith("|"):
                block.append(lines[index])
                index += 1
            rows = _table_rows(block)
            out += ["", ".. list-table::", "   :header-rows: 1", "   :class: bench-table", ""]
            for row in rows:
                out.append(f"   * - {row[0]}")
                out += [f"     - {cell}" for cell in row[1:]]
            out.append("")
            continue
        if line.startswith("## "):
            out += ["", f".. rubric:: {_inline(line[3:])}", ""]
        elif line.startswith("# "):
            pass
        elif line.startswith("- "):
            out.append(f"- {_inline(line[2:])}")
        else:
            out.append(_inline(line))
        index += 1
    return out


class BenchReport(Directive):
    """Include a benchmark Markdown report, converted to reST."""

    required_arguments = 1

    def run(self):
        env = self.state.document.settings.env
        relative, path = env.relfn2path(self.arguments[0])
        env.note_dependency(relative)
        text = Path(path).read_text(encoding="utf-8")
        content = StringList(markdown_to_rst(text), source=path)
        holder = nodes.container()
        self.state.nested_parse(content, self.content_offset, holder)
        return list(holder.children)


def setup(app):
    app.add_directive("bench-report", BenchReport)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
