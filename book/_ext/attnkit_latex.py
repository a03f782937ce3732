"""Fixes to the LaTeX of the book's PDFs (tools/build_pdf.sh), found by building them.

* An underscore in a text box of a formula (``\\text{weighted_sum}``) is an underscore for
  MathJax, which reads the box's text literally, but a subscript, outside math mode and
  so an error (``Missing $ inserted``), for LaTeX. The PDF gets ``\\text{weighted\\_sum}``;
  the sources, the HTML and the translations keep the formula as written.
* The chapters keep the book's numbers: the introduction's sections (Who this book is
  for, ...), which Sphinx makes the PDF's first chapters, are unnumbered, and the
  numbering starts at the first chapter of the first part, as in the HTML.
* The table of contents is headed "Contents" (目录 in the Chinese edition), not with the
  caption of the root's first toctree, as Sphinx does (it headed it "Foundations").
"""

from __future__ import annotations

import re
from typing import Any

from docutils import nodes
from sphinx.locale import _
from sphinx.transforms.post_transforms import SphinxPostTransform

# a text-mode box without nested braces (\mathrm and \operatorname are math mode)
_TEXT_BOX = re.compile(r"(\\(?:text|textrm|textit|textbf|texttt|mbox)\{)([^{}]*)\}")
_BARE_UNDERSCORE = re.compile(r"(?<!\\)_")


def escape_text_underscores(latex: str) -> str:
    """``_`` -> ``\\_`` inside the text boxes of a formula, nowhere else."""
    return _TEXT_BOX.sub(
        lambda m: m.group(1) + _BARE_UNDERSCORE.sub(r"\\_", m.group(2)) + "}", latex
    )


class TextUnderscoresForLatex(SphinxPostTransform):
    """Escape the underscores of formula text boxes, for the LaTeX builder only."""

    default_priority = 400
    builders = ("latex",)

    def run(self, **kwargs: Any) -> None:
        for node in list(self.document.findall(nodes.math)) + list(
            self.document.findall(nodes.math_block)
        ):
            source = node.astext()
            fixed = escape_text_underscores(source)
            if fixed != source:
                node.children = []
                node += nodes.Text(fixed)


# before the introduction: its chapters unnumbered (still in the table of contents)
UNNUMBERED = r"\edef\attnkitsecnumdepth{\the\value{secnumdepth}}\setcounter{secnumdepth}{-1}"
# before the first chapter of the first part
NUMBERED = r"\setcounter{secnumdepth}{\attnkitsecnumdepth}\setcounter{chapter}{0}"


class BookChapterNumbers(SphinxPostTransform):
    """On the whole book as the LaTeX builder assembles it (the root with every document
    inlined): the introduction unnumbered, the chapters numbered from 1."""

    default_priority = 400
    builders = ("latex",)

    def run(self, **kwargs: Any) -> None:
        from sphinx import addnodes

        first_chapter = next(
            (
                node
                for node in self.document.findall(addnodes.start_of_file)
                if node["docname"].startswith("notebooks/")
            ),
            None,
        )
        if first_chapter is None:  # one document, not the assembled book
            return
        first_chapter.parent.insert(
            first_chapter.parent.index(first_chapter), nodes.raw("", NUMBERED, format="latex")
        )
        self.document.insert(0, nodes.raw("", UNNUMBERED, format="latex"))


def contents_heading(app) -> None:
    """The LaTeX builder heads the table of contents with Sphinx's own word for it."""
    if app.builder.name == "latex":
        app.builder.get_contentsname = lambda indexfile: _("Contents")


def setup(app) -> dict[str, Any]:
    app.add_post_transform(TextUnderscoresForLatex)
    app.add_post_transform(BookChapterNumbers)
    app.connect("builder-inited", contents_heading)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
