"""Terminology check of the Chinese edition: the glossary is the term base.

The glossary (``book/glossary.md``) names, for each technical term, the Chinese used in
the Chinese machine-learning literature: ``Multi-head attention (多头注意力)``; several
variants separated by commas (``Beam search (束搜索, 集束搜索)``); none where Chinese
texts keep the English name (``Transformer``). Its table 中文 → English adds the variants
the source text uses (多头自注意力 → Multi-head attention). From these this check builds
the term base and reads every *translated* message of the catalogues:

* when the English of a message contains a glossary term (longest term first, plurals
  included; the expansion that opens an abbreviation's definition, "Rotary position
  embedding" for RoPE, counts as that term; formulas, code and roles are not prose and
  are skipped), its Chinese must
  contain one of the term's Chinese forms; or the English term itself where the glossary
  gives no Chinese, where the term is an abbreviation (RoPE, FLOP, BLEU) or where the
  glossary says Chinese texts keep the English word. A Chinese form ending in 机制
  ("mechanism") also counts without it (注意力机制 → 注意力);
* no translation uses 变压器 (a transformer in electrical engineering) for Transformer.

The check looks for the Chinese form anywhere in the translation: it proves that the
glossary's term is there, not that every occurrence uses it (a one-character form such as
键 is also found inside 关键). A reviewer still reads the translation.

    python tools/check_terms.py            # the zh_CN catalogues; exit 1 on a problem
    python tools/check_terms.py --terms    # print the term base
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

FORBIDDEN = {"变压器": "Transformer stays Transformer (变压器 is the electrical device)"}
_CJK = re.compile(r"[\u3400-\u9fff]")
_KEEP_ENGLISH = re.compile(r"keep the English|left in English", re.IGNORECASE)
# Not prose: formulas, inline code, roles (with their targets), link targets, HTML tags.
_NOT_PROSE = re.compile(
    r"\{[a-z][\w:.-]*\}`[^`]*`|`[^`\n]+`|(?<![\\$])\$(?:[^$\\]|\\.)+?\$|\]\([^)]*\)|<[^>]+>"
)


@dataclass
class Term:
    english: str  # as the glossary spells it
    chinese: list[str] = field(default_factory=list)  # accepted Chinese forms
    keep_english: bool = False  # the English term is an accepted translation
    case_sensitive: bool | None = None  # default: abbreviations (ZeRO is not "zero")

    def accepted(self) -> list[str]:
        forms = list(self.chinese)
        forms += [f[: -len("机制")] for f in self.chinese if f.endswith("机制")]
        if self.keep_english or not any(_CJK.search(f) for f in self.chinese):
            forms.append(self.english)
        return forms

    def pattern(self) -> re.Pattern:
        words = [re.escape(w) for w in re.split(r"[\s]+", self.english)]
        body = r"[\s-]+".join(words).replace(r"\-", r"[-\s]?").replace("–", "[–-]")
        exact = (
            _is_abbreviation(self.english) if self.case_sensitive is None else self.case_sensitive
        )
        flags = 0 if exact else re.IGNORECASE
        if exact and self.english[0].isalpha():  # at the start of a sentence: Pre-LN
            first = self.english[0]
            body = f"[{first.lower()}{first.upper()}]" + body[1:]
        return re.compile(rf"(?<![\w-]){body}(?:s|es)?(?![\w-])", flags)


def _is_abbreviation(english: str) -> bool:
    """RoPE, FLOP, BLEU, ZeRO, bfloat16, [CLS] token, KV cache: kept in Chinese texts."""
    first = english.split()[0]
    return sum(c.isupper() for c in first) >= 2 or any(c.isdigit() for c in first)


def term_base(glossary: Path) -> list[Term]:
    """The glossary's terms with their accepted Chinese forms (longest English first)."""
    text = glossary.read_text(encoding="utf-8")
    block = re.search(r"```\{glossary\}\n(.*?)\n```", text, re.DOTALL)
    if block is None:
        raise ValueError(f"{glossary}: no ```{{glossary}} block")
    terms: dict[str, Term] = {}
    entries = re.split(r"\n(?=\S)", block.group(1))
    for entry in entries:
        head, _, definition = entry.partition("\n")
        head = head.strip()
        if not head or head.startswith(":"):
            continue
        match = re.fullmatch(r"(.+?) \((.+)\)", head)
        english, inside = (match.group(1), match.group(2)) if match else (head, "")
        forms = [f.strip() for f in inside.split(",") if f.strip()]
        chinese = [f for f in forms if _CJK.search(f)]
        # Latin forms in the parentheses are abbreviations Chinese texts use (CNN, ViT, BF16)
        abbreviations = [f for f in forms if not _CJK.search(f)]
        term = Term(
            english,
            chinese + abbreviations,
            keep_english=bool(_KEEP_ENGLISH.search(definition)) or _is_abbreviation(english),
        )
        terms[head] = term
        # An abbreviation's definition may open with its expansion ("Rotary position
        # embedding: ..."): the same term, so its words are not terms of their own.
        expansion = re.match(r"\s*([A-Z][A-Za-z -]+):", definition)
        if (
            expansion
            and _is_abbreviation(english)
            and expansion.group(1)[0].lower() == english[0].lower()
        ):
            terms[f"{head} = {expansion.group(1)}"] = Term(
                expansion.group(1),
                [*term.chinese, english],
                keep_english=True,
                case_sensitive=False,
            )
    # The table 中文 → English: more Chinese forms of the same terms.
    for zh, target in re.findall(r"^\| ([^|{]+?) \| \{term\}`[^`<]*<([^>`]+)>`", text, re.M):
        if target in terms and zh not in terms[target].chinese:
            terms[target].chinese.append(zh)
    base = []
    for term in terms.values():
        parts = re.split(r", | and ", term.english)
        if len(parts) > 1 and len(term.chinese) >= len(parts):
            # "Query, key and value (查询, 键, 值)": one term per part, in order
            base += [
                Term(e, [c], keep_english=_is_abbreviation(e)) for e, c in zip(parts, term.chinese)
            ]
        else:
            base.append(term)
    base.sort(key=lambda t: -len(t.english))
    return base


def prose(text: str) -> str:
    return _NOT_PROSE.sub(" ", text)


def message_problems(english: str, chinese: str, terms: list[Term]) -> list[str]:
    """Terminology problems of one translated message."""
    problems = [f"uses {word}: {why}" for word, why in FORBIDDEN.items() if word in prose(chinese)]
    rest = prose(english)
    chinese_prose = prose(chinese)
    for term in terms:
        pattern = term.pattern()
        if not pattern.search(rest):
            continue
        rest = pattern.sub(" ", rest)  # a longer term covers its parts
        forms = term.accepted()
        if not any(f.lower() in chinese_prose.lower() for f in forms):
            problems.append(f"{term.english!r} must be one of {forms}")
    return problems


def check_catalogues(po_dir: Path, glossary: Path) -> list[str]:
    """Terminology problems of every translated message of the catalogues under po_dir."""
    from i18n_catalogues import is_translated, messages, read_catalogues

    terms = term_base(glossary)
    out = []
    for document, catalogue in read_catalogues(po_dir).items():
        for message in messages(catalogue):
            if not is_translated(message):
                continue
            for problem in message_problems(message.id, message.string, terms):
                short = " ".join(message.id.split())[:60]
                out.append(f"{document}: terminology: {problem} in {short!r}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--terms", action="store_true", help="print the term base and stop")
    parser.add_argument(
        "--catalogues", type=Path, default=ROOT / "book" / "locales" / "zh_CN" / "LC_MESSAGES"
    )
    parser.add_argument("--glossary", type=Path, default=ROOT / "book" / "glossary.md")
    args = parser.parse_args(argv)
    if args.terms:
        for term in term_base(args.glossary):
            print(f"{term.english}: {' | '.join(term.accepted())}")
        return 0
    problems = check_catalogues(args.catalogues, args.glossary)
    for problem in problems:
        print(problem)
    print(f"==> {len(problems)} terminology problem(s)" if problems else "==> terminology OK")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
