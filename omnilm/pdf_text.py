"""PDF -> clean paragraphs that remember their pages.

Extraction: poppler's `pdftotext` where installed (15-20x faster), pdfplumber
otherwise. Cleaning: `(cid:NN)` placeholders, ligatures, odd spaces, running
headers/footers and page numbers (lines repeating at the top or bottom of pages),
hyphenation across line breaks, lines joined back into paragraphs, and optionally
the references section. Every expected failure is a UserError naming the file."""
import re
import shutil
import subprocess
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from omnilm.errors import UserError
from omnilm.paths import display

EXTRACTORS = ("auto", "pdftotext", "pdfplumber")
LIGATURES = {"\ufb00": "ff", "\ufb01": "fi", "\ufb02": "fl", "\ufb03": "ffi", "\ufb04": "ffl",
             "\ufb05": "st", "\ufb06": "st"}
ODD_SPACES = dict.fromkeys(map(ord, "\u00a0\u2002\u2003\u2009\u202f\u3000\t"), " ")
INVISIBLE = dict.fromkeys(map(ord, "\u00ad\u200b\u200c\u200d\u2060\ufeff"))  # soft hyphen, zero widths
CID = re.compile(r"\(cid:\d+\)")
PAGE_NUMBER = re.compile(r"^(page\s+)?(\d+|[ivx]{1,5})(\s*(of|/)\s*\d+)?$|^[-\u2013\u2014]\s*\d+\s*[-\u2013\u2014]$", re.I)
REFERENCES = re.compile(r"^(\d+\.?\s+)?(references|bibliography|works cited|literature cited)$", re.I)
AFTER_REFERENCES = re.compile(r"^(appendix|appendices|supplementary)\b", re.I)
# what only a piece of a reference entry holds: a year, a link, a DOI, an arXiv id, a number in brackets
ENTRY_PIECE = re.compile(r"\b(1[5-9]|20)\d\d[a-z]?\b|https?://|\bdoi\b|arxiv|^\[\d+\]", re.I)
REFERENCES_DROPPED = "references only (--keep-references keeps them)"
EDGE_LINES = 2          # lines at the top and at the bottom of a page where running headers/footers live
SHORT_LINE = 0.7        # a line shorter than this share of a full line ends its paragraph
# a numbered title starts with a letter: Latin, or any non-ASCII one (Korean "2 실험")
SECTION_HEADING = re.compile(r"^((\d+(\.\d+)*|[A-Z]|[IVX]+)\.?\s+([A-Z]|[^\W\d_\x00-\x7f])[^.!?]*|abstract|references"
                             r"|bibliography|acknowledge?ments?|appendix( [A-Z])?)$", re.I)
WORD = re.compile(r"[A-Za-z]+(?:-[A-Za-z]+)*")
CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3000-\u303f\uff00-\uffef"  # kana, Han, CJK punctuation
HANGUL = "\uac00-\ud7a3\u1100-\u11ff\u3130-\u318f"
NO_SPACE_SCRIPT = re.compile(f"[{CJK}]")     # Chinese and Japanese put no space between words
SPACED_CJK = re.compile(f"[{HANGUL}0-9]")     # Korean does, between words (eojeol)


# ---- extraction ------------------------------------------------------------------

def check_pdf_file(path):
    """Refuse what is not a readable PDF file before any extractor runs."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{display(path)} does not exist")
    if not path.is_file():
        raise UserError(f"{display(path)} is not a file")
    if path.stat().st_size == 0:
        raise UserError(f"{display(path)} is empty (0 bytes)")
    with open(path, "rb") as f:
        head = f.read(1024)
    if b"%PDF-" not in head:  # the spec allows a little junk before the header
        raise UserError(f"{display(path)} is not a PDF (no %PDF- header; it starts with {head[:16]!r})")


def list_pdfs(pdf):
    """The PDF files that --pdf names: the file itself, or a folder's *.pdf (any case:
    PAPER.PDF too), each checked by check_pdf_file. The one rule for stage 10 and the pipeline."""
    pdf = Path(pdf)
    if not pdf.exists():
        raise UserError(f"--pdf {display(pdf)} does not exist")
    if pdf.is_dir():
        files = sorted(f for f in pdf.iterdir() if f.suffix.lower() == ".pdf" and f.is_file())
        if not files:
            raise UserError(f"--pdf {display(pdf)} is a folder with no .pdf files")
    else:
        files = [pdf]
    for f in files:
        check_pdf_file(f)
    return files


def choose_extractor(name="auto"):
    if name not in EXTRACTORS:
        raise UserError(f"--extractor {name}: choose one of {', '.join(EXTRACTORS)}")
    if name == "auto":
        return "pdftotext" if shutil.which("pdftotext") else "pdfplumber"
    if name == "pdftotext" and not shutil.which("pdftotext"):
        raise UserError("--extractor pdftotext: pdftotext is not installed (apt-get install poppler-utils)")
    return name


def extract_pages(path, extractor="auto", progress=None):
    """Raw text of every page (a list, one string per page) and the extractor used.
    `progress(n)` is called as pages are done."""
    check_pdf_file(path)
    extractor = choose_extractor(extractor)
    pages = _with_pdftotext(path) if extractor == "pdftotext" else _with_pdfplumber(path, progress)
    if extractor == "pdftotext" and progress:
        progress(len(pages))
    if not pages:
        raise UserError(f"{display(path)} is damaged: it has no readable pages")
    return pages, extractor


def _with_pdftotext(path):
    # -raw: content-stream order, which keeps table rows whole and leaves hyphenation to
    # our cleaning (as pdfplumber's text); pages end with a form feed.
    run = subprocess.run(["pdftotext", "-raw", "-enc", "UTF-8", "-eol", "unix", str(path), "-"],
                         capture_output=True, text=True, errors="replace")
    if run.returncode != 0:
        message = run.stderr.strip().splitlines()
        if "password" in run.stderr.lower():
            raise _encrypted(path)
        raise UserError(f"{display(path)} is damaged or truncated and cannot be read "
                        f"(pdftotext: {message[-1] if message else 'exit ' + str(run.returncode)})")
    return run.stdout.split("\f")[:-1]


def _with_pdfplumber(path, progress=None):
    import pdfplumber
    from pdfminer.pdfdocument import PDFEncryptionError, PDFPasswordIncorrect

    try:
        with pdfplumber.open(path) as pdf:
            pages = []
            for page in pdf.pages:
                pages.append(page.extract_text() or "")
                page.flush_cache()  # keep memory flat on long documents
                if progress:
                    progress(1)
            return pages
    except Exception as e:  # pdfplumber wraps pdfminer's errors; look at the cause
        cause = getattr(e, "args", [None])[0] if type(e).__name__ == "PdfminerException" else e
        if isinstance(cause, (PDFPasswordIncorrect, PDFEncryptionError)):
            raise _encrypted(path)
        raise UserError(f"{display(path)} is damaged or truncated and cannot be read "
                        f"(pdfminer: {type(cause).__name__} {cause})".rstrip())


def _encrypted(path):
    return UserError(f"{display(path)} is encrypted and needs a password; "
                     f"save an unprotected copy first (e.g. qpdf --decrypt --password=... in.pdf out.pdf)")


# ---- cleaning --------------------------------------------------------------------

@dataclass
class Paragraph:
    text: str
    page_starts: list  # [(offset in text, page number)], offsets ascending

    def pages(self, start=0, end=None):
        """Pages that the characters text[start:end] came from."""
        end = len(self.text) if end is None else end
        found = [page for i, (offset, page) in enumerate(self.page_starts)
                 if offset < end and (i + 1 == len(self.page_starts) or self.page_starts[i + 1][0] > start)]
        return sorted(set(found))

    @property
    def is_heading(self):
        return len(self.text) < 80 and "\n" not in self.text and not self.text.rstrip().endswith(
            (".", ",", ";", ":", "?", "!")) and self.text[:1].isalnum()


@dataclass
class CleanDocument:
    paragraphs: list
    pages: int
    stats: Counter = field(default_factory=Counter)
    dropped_pages: dict = field(default_factory=dict)  # page -> why it gave no text

    @property
    def text(self):
        return "\n\n".join(p.text for p in self.paragraphs)


def normalize_line(line, stats):
    """Characters only: cid placeholders, ligatures, invisible and odd spaces."""
    line, n = CID.subn("", line)
    stats["cid_placeholders_removed"] += n
    n = sum(line.count(lig) for lig in LIGATURES)
    if n:
        stats["ligatures_expanded"] += n
        for lig, plain in LIGATURES.items():
            line = line.replace(lig, plain)
    line = line.translate(INVISIBLE).translate(ODD_SPACES)
    return " ".join(line.split())


def _edge_key(line):
    return re.sub(r"\d+", "#", line.lower())


def find_running_lines(pages):
    """Keys of lines that repeat at the top or bottom of many pages (headers, footers),
    counted on odd and even pages apart too: a journal's header alternates between
    them (authors on one side, the title on the other)."""
    if len(pages) < 2:
        return set()
    running = set()
    for group in (pages, pages[0::2], pages[1::2]):
        seen = Counter()
        for lines in group:
            seen.update({_edge_key(ln) for ln in lines[:EDGE_LINES] + lines[-EDGE_LINES:]})
        need = max(2, (len(group) + 1) // 2)
        running |= {key for key, n in seen.items() if n >= need}
    return running


def strip_page_furniture(pages, stats):
    """Drop running headers/footers and page numbers from the edges of every page."""
    running = find_running_lines(pages)
    cleaned = []
    for lines in pages:
        keep = list(lines)
        for edge in (range(min(EDGE_LINES, len(lines))),
                     range(max(0, len(lines) - EDGE_LINES), len(lines))):
            for i in edge:
                if _edge_key(lines[i]) in running or PAGE_NUMBER.match(lines[i]):
                    keep[i] = None
        stats["header_footer_lines_removed"] += keep.count(None)
        cleaned.append([ln for ln in keep if ln is not None])
    return cleaned


def dehyphenate(left, right, vocabulary):
    """Join a word split across a line break: True drops the hyphen, False keeps it
    (a real compound such as Vector-Encoded or 6-layer)."""
    head = re.search(r"([A-Za-z]+)-$", left)
    tail = re.match(r"[A-Za-z]+", right)
    if not head or not tail:
        return False
    a, b = head.group(1), tail.group(0)
    if (a + b).lower() in vocabulary:
        return True
    if f"{a}-{b}".lower() in vocabulary:
        return False
    if a.lower() in vocabulary and b.lower() in vocabulary and len(a) > 2 and len(b) > 2:
        return False  # two words seen on their own: a compound broken at its hyphen
    return b[0].islower()


def _vocabulary(pages):
    """Words of the document, whole and hyphenated; the pieces of a word split at a
    line end are left out (they are what is being decided)."""
    vocab = set()
    lines = [ln for page in pages for ln in page if ln]
    for n, line in enumerate(lines):
        words = WORD.findall(line)
        if line.endswith("-") and words:
            words = words[:-1]
        if n and lines[n - 1].endswith("-") and words and line.startswith(words[0]):
            words = words[1:]
        for w in words:
            vocab.add(w.lower())
            vocab.update(part.lower() for part in w.split("-"))
    return vocab


def line_width(line):
    """Length in columns, a wide character (Hangul, CJK) counting two: a full line of
    Korean then measures like a full line holding English words, not as a short one."""
    return len(line) + sum(unicodedata.east_asian_width(ch) in ("W", "F") for ch in line)


def full_line_length(pages):
    lengths = sorted(line_width(ln) for lines in pages for ln in lines)
    return lengths[int(0.8 * (len(lengths) - 1))] if lengths else 0


def _cjk_glue(pages, full):
    """glue(left, line) -> True where a line break fell inside a word of a script that
    wraps per character: always between Chinese or Japanese characters; in Korean when
    the document wraps per character (its lines end at one width, not at word ends)
    and the two pieces are not both words seen on their own elsewhere ("정|확도가").
    A sentence's end before the break is never glued (the line ends in punctuation)."""
    lines = [ln for page in pages for ln in page if ln]
    ends = [line_width(ln) for ln, nxt in zip(lines, lines[1:]) if nxt and SPACED_CJK.search(ln[-1:])
            and line_width(ln) >= SHORT_LINE * full]
    # per character, a line ends less than one wide character short of the widest; at word
    # ends, anywhere up to a word short
    per_character = len(ends) >= 3 and sum(w >= max(ends) - 2 for w in ends) >= 0.8 * len(ends)
    seen = Counter(w.rstrip(".,;:!?") for ln in lines for w in ln.split())

    def glue(left, line):
        a, b = left[-1:], line[:1]
        if NO_SPACE_SCRIPT.match(a) and NO_SPACE_SCRIPT.match(b):
            return True
        if not (per_character and SPACED_CJK.match(a) and SPACED_CJK.match(b)):
            return False
        head, tail = left.split()[-1], line.split()[0].rstrip(".,;:!?")
        return not (seen[head] > 1 and seen[tail] > 1)  # each piece counts itself once

    return glue


def join_paragraphs(pages, stats):
    """Lines -> paragraphs: a blank line, a short line or a reference entry ends one;
    words hyphenated across a line end are joined back."""
    vocabulary = _vocabulary(pages)
    full = full_line_length(pages)
    glue_cjk = _cjk_glue(pages, full)
    paragraphs, text, starts = [], "", []

    def close():
        nonlocal text, starts
        if text:
            paragraphs.append(Paragraph(text, starts))
        text, starts = "", []

    for page_no, lines in enumerate(pages, 1):
        for line in lines:
            if not line:
                close()
                continue
            short = line_width(line) < SHORT_LINE * full
            heading = short and SECTION_HEADING.match(line)
            if heading or re.match(r"^\[\d+\]\s", line):  # a heading or reference entry starts afresh
                close()
            if not text:
                offset, text = 0, line
            elif text.endswith("-") and dehyphenate(text, line, vocabulary):
                offset, text = len(text) - 1, text[:-1] + line
                stats["hyphenations_joined"] += 1
            else:
                glue = "" if re.search(r"[A-Za-z0-9]-$", text) or glue_cjk(text, line) else " "
                offset, text = len(text) + len(glue), text + glue + line
            if not starts or starts[-1][1] != page_no:
                starts.append((offset, page_no))
            if heading or short:
                close()
    close()
    return paragraphs


def drop_references(paragraphs, stats):
    """Paragraphs less the entries of every reference list. A list runs from its heading
    to the next heading that is no piece of an entry: an appendix ("A. Modularization
    examples"), the next paper's title or section of a PDF that holds several, all kept."""
    kept, dropping = [], False
    for p in paragraphs:
        text = p.text.strip()
        if REFERENCES.match(text):
            dropping = True
            stats["reference_lists"] += 1
        elif dropping and (AFTER_REFERENCES.match(text) or (p.is_heading and not ENTRY_PIECE.search(text))):
            dropping = False
        elif dropping:
            stats["reference_entries_dropped"] += 1
        if dropping:
            stats["reference_chars_dropped"] += len(p.text)
        else:
            kept.append(p)
    return kept


def clean_pages(raw_pages, keep_references=False):
    """Raw page texts -> CleanDocument (paragraphs with pages, counts of what was fixed,
    and why any page gave nothing)."""
    stats = Counter()
    pages = [[normalize_line(ln, stats) for ln in raw.splitlines()] for raw in raw_pages]
    no_text = {n for n, lines in enumerate(pages, 1) if not any(lines)}
    # blank lines stay (pdftotext marks blocks with them) but not at the page edges
    pages = [_trim_blank(lines) for lines in pages]
    pages = strip_page_furniture(pages, stats)
    paragraphs = join_paragraphs(pages, stats)
    before = {pg for p in paragraphs for pg in p.pages()}
    if not keep_references:
        paragraphs = drop_references(paragraphs, stats)
    used = {pg for p in paragraphs for pg in p.pages()}
    dropped = {}
    for n in range(1, len(pages) + 1):
        if n in no_text:
            dropped[n] = "no text layer (a scanned or image-only page)"
        elif n not in before:
            dropped[n] = "only a running header/footer or page number"
        elif n not in used:
            dropped[n] = REFERENCES_DROPPED
    return CleanDocument(paragraphs, len(pages), stats, dropped)


def _trim_blank(lines):
    lines = list(lines)
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    return lines
