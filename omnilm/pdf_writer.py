"""A small pure-Python PDF writer: text pages in the standard Times fonts, rules,
filled boxes. Enough to render the demo paper (and crafted test PDFs) as a real,
deterministic PDF; not a general typesetter.

Text is WinAnsi-encoded, codes 1 and 2 remapped to the fi/fl ligatures (as LaTeX has
them); a run with a character these fonts lack (Korean...) uses omnilm.pdf_unicode_font."""
import zlib

from omnilm import pdf_unicode_font as unicode_font

# Advance widths (1/1000 em) of the printable ASCII codes 32..126, from the metrics of
# the standard Type1 fonts (every PDF viewer has them built in).
_ASCII_WIDTHS = {
    "Times-Roman": (
        "250 333 408 500 500 833 778 180 333 333 500 564 250 333 250 278 "
        "500 500 500 500 500 500 500 500 500 500 278 278 564 564 564 444 921 "
        "722 667 667 722 611 556 722 722 333 389 722 611 889 722 722 556 722 667 556 611 722 722 944 722 722 611 "
        "333 278 333 469 500 333 "
        "444 500 444 500 444 333 500 500 278 278 500 278 778 500 500 500 500 333 389 278 500 500 722 500 500 444 "
        "480 200 480 541"),
    "Times-Bold": (
        "250 333 555 500 500 1000 833 278 333 333 500 570 250 333 250 278 "
        "500 500 500 500 500 500 500 500 500 500 333 333 570 570 570 500 930 "
        "722 667 722 722 667 611 778 778 389 500 778 667 944 722 778 611 778 722 556 667 722 722 1000 722 722 667 "
        "333 278 333 581 500 333 "
        "500 556 444 556 444 333 500 556 278 333 556 278 833 556 500 556 556 444 389 333 556 500 722 500 500 444 "
        "394 220 394 520"),
}
# A few WinAnsi characters beyond ASCII: code, width in Roman, width in Bold.
_EXTRA = {"\u2013": (0x96, 500, 500), "\u2014": (0x97, 1000, 1000), "\u2018": (0x91, 333, 333),
          "\u2019": (0x92, 333, 333), "\u201c": (0x93, 444, 500), "\u201d": (0x94, 444, 500),
          "\u2022": (0x95, 350, 350), "\u00e9": (0xE9, 444, 444)}
LIGATURES = {"fi": (1, 556), "fl": (2, 556)}  # code, width (same in both fonts)
FONTS = {"F1": "Times-Roman", "F2": "Times-Bold"}
ROMAN, BOLD = "F1", "F2"
A4 = (595.0, 842.0)


def _width_tables():
    tables = {}
    for key, name in FONTS.items():
        widths = {32 + i: int(w) for i, w in enumerate(_ASCII_WIDTHS[name].split())}
        for code, roman, bold in _EXTRA.values():
            widths[code] = bold if name == "Times-Bold" else roman
        for code, w in LIGATURES.values():
            widths[code] = w
        tables[key] = widths
    return tables


WIDTHS = _width_tables()


def encode(text, ligatures=True):
    """Text -> font codes (bytes); fi/fl become ligature codes."""
    out = bytearray()
    i = 0
    while i < len(text):
        pair = text[i:i + 2]
        if ligatures and pair in LIGATURES:
            out.append(LIGATURES[pair][0])
            i += 2
            continue
        ch = text[i]
        if 32 <= ord(ch) <= 126:
            out.append(ord(ch))
        elif ch in _EXTRA:
            out.append(_EXTRA[ch][0])
        else:
            raise ValueError(f"character {ch!r} has no glyph in the standard fonts this writer uses")
        i += 1
    return bytes(out)


def text_width(text, font=ROMAN, size=10.0):
    try:
        return sum(WIDTHS[font][c] for c in encode(text)) * size / 1000.0
    except ValueError:  # Page.text shows it in the Unicode font, so it is measured in that
        return unicode_font.width(text, WIDTHS[ROMAN]) * size / 1000.0


def _num(x):
    s = f"{x:.3f}".rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def _pdf_string(data):
    out = bytearray(b"(")
    for b in data:
        if b in (0x28, 0x29, 0x5C):  # ( ) \ need escaping
            out += b"\\" + bytes([b])
        elif b < 32 or b > 126:
            out += f"\\{b:03o}".encode()
        else:
            out.append(b)
    return bytes(out + b")")


class Page:
    """One page's content stream, built from text runs and drawing calls (points, origin bottom-left)."""

    def __init__(self, size=A4):
        self.size = size
        self.ops = []
        self.unicode_chars = set()  # what the Unicode font must map back to text

    def text(self, x, y, text, font=ROMAN, size=10.0, word_spacing=0.0):
        tw = f"{_num(word_spacing)} Tw "  # always set: Tw outlives BT/ET
        try:
            data = encode(text)
        except ValueError:  # a character the Times fonts lack: the whole run goes in the Unicode font
            self.ops.append(unicode_font.text_op(x, y, text, size, word_spacing))
            self.unicode_chars.update(text)
            return
        self.ops.append(b"BT /%s %s Tf %s%s %s Td %s Tj ET" % (
            font.encode(), _num(size).encode(), tw.encode(), _num(x).encode(), _num(y).encode(),
            _pdf_string(data)))

    def line(self, x1, y1, x2, y2, width=0.5):
        self.ops.append(f"{_num(width)} w {_num(x1)} {_num(y1)} m {_num(x2)} {_num(y2)} l S".encode())

    def box(self, x, y, w, h, gray=0.0):
        """A filled rectangle (a scanned page is made of these: ink with no text layer)."""
        self.ops.append(f"{_num(gray)} g {_num(x)} {_num(y)} {_num(w)} {_num(h)} re f 0 g".encode())

    def content(self):
        return b"\n".join(self.ops)


def _info_string(text):
    try:
        return _pdf_string(encode(text, ligatures=False))
    except ValueError:
        return unicode_font.info_string(text)


def write_pdf(pages, info=None, password_protected=False, compress=True):
    """The bytes of a PDF holding `pages` (deterministic: no dates, fixed IDs).

    password_protected: adds a standard security handler whose user password is not
    empty (its check value matches no password), as a PDF needing a password has."""
    objects = []  # index i holds object number i + 1

    def add(body):
        objects.append(body)
        return len(objects)

    encoding = add(b"<< /Type /Encoding /BaseEncoding /WinAnsiEncoding /Differences [1 /fi /fl] >>")
    fonts = {key: add(b"<< /Type /Font /Subtype /Type1 /BaseFont /%s /Encoding %d 0 R >>" % (name.encode(), encoding))
             for key, name in FONTS.items()}
    chars = set().union(*(page.unicode_chars for page in pages))
    if chars:  # only then, so a Latin-only PDF keeps its bytes
        fonts[unicode_font.KEY] = unicode_font.add_font(add, chars, WIDTHS[ROMAN], compress)
    font_dict = b" ".join(b"/%s %d 0 R" % (k.encode(), n) for k, n in fonts.items())
    pages_num = len(objects) + 2 * len(pages) + 1
    kids = []
    for page in pages:
        data = page.content()
        if compress:
            data = zlib.compress(data, 9)
        stream = add(b"<< /Length %d%s >>\nstream\n" % (len(data), b" /Filter /FlateDecode" if compress else b"")
                     + data + b"\nendstream")
        kids.append(add(b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 %s %s] /Resources << /Font << %s >> >> "
                        b"/Contents %d 0 R >>" % (pages_num, _num(page.size[0]).encode(), _num(page.size[1]).encode(),
                                                  font_dict, stream)))
    assert add(b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(b"%d 0 R" % k for k in kids), len(kids))) \
        == pages_num
    catalog = add(b"<< /Type /Catalog /Pages %d 0 R >>" % pages_num)
    trailer = b"/Root %d 0 R" % catalog
    if info:
        fields = b" ".join(b"/%s %s" % (k.encode(), _info_string(v)) for k, v in info.items())
        trailer += b" /Info %d 0 R" % add(b"<< " + fields + b" >>")
    if password_protected:
        check = b"<" + b"5a" * 32 + b">"
        trailer += b" /Encrypt %d 0 R /ID [<%s> <%s>]" % (
            add(b"<< /Filter /Standard /V 1 /R 2 /Length 40 /P -44 /O %s /U %s >>" % (check, check)),
            b"0123456789abcdef" * 2, b"0123456789abcdef" * 2)

    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % off for off in offsets)
    out += b"trailer\n<< /Size %d %s >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, trailer, xref)
    return bytes(out)


# ---- line breaking -------------------------------------------------------------

_VOWELS = set("aeiouy")
_KEEP_TOGETHER = {"th", "ch", "sh", "ph", "wh", "gh", "ck", "qu", "ng",
                  "tr", "pr", "br", "cr", "dr", "gr", "fr", "pl", "bl", "cl", "fl", "gl", "sl", "sc"}
HYPHEN_MIN_LETTERS = 8


def hyphen_points(word):
    """Where `word` may break at a line end, as lengths of the first piece (which keeps
    any hyphen it ends on): after an explicit hyphen, or between syllables of a long
    lowercase word (a rough rule: V-CV and VC-CV, never inside th, tr, qu...)."""
    points = [i + 1 for i, ch in enumerate(word[:-1]) if ch == "-" and i >= 1 and word[i + 1].isalpha()]
    core = word.rstrip(".,;:)")
    if len(core) >= HYPHEN_MIN_LETTERS and core.isalpha() and core.islower():
        for i in range(3, len(core) - 2):
            a, b, c = core[i - 1], core[i], core[i + 1]
            if b in _VOWELS or c not in _VOWELS:
                continue
            if a in _VOWELS or (core[i - 2] in _VOWELS and a + b not in _KEEP_TOGETHER):
                points.append(i)
    return sorted(set(points))


def break_lines(text, font, size, width, first_indent=0.0, hyphenate=True, loose=0.08):
    """Greedy line breaking. A line that would be left looser than `loose` of its
    width gets the next word split at a hyphenation point, as TeX output has it.
    Returns [(line_text, available_width)]."""
    words = text.split()
    space = text_width(" ", font, size)
    lines, current, avail = [], [], width - first_indent
    i = 0
    while i < len(words):
        word = words[i]
        used = text_width(" ".join(current), font, size) if current else -space
        if not current or used + space + text_width(word, font, size) <= avail:
            current.append(word)
            i += 1
            continue
        room = avail - used - space
        if hyphenate and room > loose * avail:
            fitting = [p for p in hyphen_points(word)
                       if text_width(word[:p] + ("" if word[p - 1] == "-" else "-"), font, size) <= room]
            if fitting:
                p = fitting[-1]
                current.append(word[:p] + ("" if word[p - 1] == "-" else "-"))
                words[i] = word[p:]
        lines.append((" ".join(current), avail))
        current, avail = [], width
    if current:
        lines.append((" ".join(current), avail))
    return lines


# ---- page flow ----------------------------------------------------------------

class FlowLayout:
    """Blocks flowing down pages between margins, with a running header (every page
    after the first) and a page number in every footer."""

    def __init__(self, header_left="", header_right="", size=A4, margins=(84, 84, 84, 78)):
        self.size = size
        self.left, self.right, self.top, self.bottom = margins
        self.width = size[0] - self.left - self.right
        self.header_left, self.header_right = header_left, header_right
        self.pages = []
        self.new_page()

    def new_page(self):
        self.pages.append(Page(self.size))
        self.y = self.size[1] - self.top

    def need(self, height):
        if self.y - height < self.bottom:
            self.new_page()

    def skip(self, height):
        if self.y < self.size[1] - self.top:  # no blank space at the top of a page
            self.y -= height

    def paragraph(self, text, font=ROMAN, size=11.0, leading=None, indent=0.0, first_indent=0.0,
                  justify=True, hyphenate=True, align="left", hanging=0.0):
        leading = leading or size * 1.3
        width = self.width - 2 * indent
        lines = break_lines(text, font, size, width - hanging, first_indent - hanging, hyphenate)
        for n, (line, avail) in enumerate(lines):
            self.need(leading)
            self.y -= leading
            x = self.left + indent + (width - avail)
            natural = text_width(line, font, size)
            spacing = 0.0
            if align == "center":
                x = self.left + (self.width - natural) / 2
            elif justify and n < len(lines) - 1 and line.count(" "):
                spacing = (avail - natural) / line.count(" ")
            self.pages[-1].text(x, self.y, line, font, size, spacing)

    def table(self, rows, size=10.0, leading=14.0, pad=14.0):
        """A centered table with booktabs-style rules; first row bold, numeric columns right-aligned."""
        ncols = len(rows[0])
        fonts = [BOLD] + [ROMAN] * (len(rows) - 1)
        widths = [max(text_width(r[c], f, size) for r, f in zip(rows, fonts)) + pad for c in range(ncols)]
        numeric = [all(r[c].replace(",", "").replace(".", "").isdigit() for r in rows[1:]) for c in range(ncols)]
        x0 = self.left + (self.width - sum(widths)) / 2
        self.need(leading * len(rows) + 8)
        page = self.pages[-1]
        page.line(x0, self.y, x0 + sum(widths), self.y, 0.8)
        for r, (row, font) in enumerate(zip(rows, fonts)):
            self.y -= leading
            x = x0
            for c, cell in enumerate(row):
                cx = x + widths[c] - pad / 2 - text_width(cell, font, size) if numeric[c] else x + pad / 2
                page.text(cx, self.y, cell, font, size)
                x += widths[c]
            if r == 0:
                page.line(x0, self.y - 4, x0 + sum(widths), self.y - 4, 0.5)
        self.y -= 6
        page.line(x0, self.y, x0 + sum(widths), self.y, 0.8)

    def render(self, info=None):
        total = len(self.pages)
        for n, page in enumerate(self.pages, 1):
            top = self.size[1] - self.top + 24
            if n > 1 and (self.header_left or self.header_right):
                page.text(self.left, top, self.header_left, ROMAN, 9)
                page.text(self.size[0] - self.right - text_width(self.header_right, ROMAN, 9), top,
                          self.header_right, ROMAN, 9)
                page.line(self.left, top - 4, self.size[0] - self.right, top - 4, 0.4)
            label = f"{n} of {total}"
            page.text((self.size[0] - text_width(label, ROMAN, 9)) / 2, self.bottom - 34, label, ROMAN, 9)
        return write_pdf(self.pages, info=info)


# ---- the paper's markdown -------------------------------------------------------

def parse_paper(markdown):
    """The demo paper's markup -> (title, header_lines, blocks); a block is (kind, payload)
    with kind in heading, subheading, paragraph, table, references."""
    title, header, blocks = None, [], []
    for chunk in markdown.strip().split("\n\n"):
        lines = [ln.strip() for ln in chunk.strip().splitlines() if ln.strip()]
        if not lines:
            continue
        first = lines[0]
        if title is not None and not header and not blocks and not first.startswith("#"):
            header = lines  # authors, institute, report number under the title
            continue
        if first.startswith("# "):
            title, header = first[2:].strip(), lines[1:]
        elif first.startswith("### "):
            blocks.append(("subheading", first[4:].strip()))
            lines = lines[1:]
        elif first.startswith("## "):
            blocks.append(("heading", first[3:].strip()))
            lines = lines[1:]
        if not lines or first.startswith("# "):
            continue
        if lines[0].startswith("|"):
            cells = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines]
            blocks.append(("table", [r for r in cells if not all(set(c) <= set("-: ") for c in r)]))
        elif lines[0].startswith("[") and all(ln.startswith("[") for ln in lines):
            blocks.append(("references", lines))
        else:
            blocks.append(("paragraph", " ".join(lines)))
    if title is None:
        raise ValueError("the paper has no '# Title' line")
    return title, header, blocks


def render_paper(markdown, body_size=11.5):
    """The demo paper as PDF bytes: title block, abstract, numbered sections, a table,
    references, running header and page numbers. Same bytes for the same source."""
    title, header, blocks = parse_paper(markdown)
    leading = body_size * 1.45
    report = header[-1] if header else ""
    layout = FlowLayout(header_left=title.split(":")[0], header_right=report)
    layout.paragraph(title, BOLD, 17, leading=22, align="center", justify=False, hyphenate=False)
    layout.skip(10)
    for n, line in enumerate(header):
        layout.paragraph(line, ROMAN, 12 if n == 0 else 10.5, align="center", justify=False, hyphenate=False)
    layout.skip(16)
    after_heading, in_abstract = True, False
    for kind, payload in blocks:
        if kind in ("heading", "subheading"):
            in_abstract = payload.lower() == "abstract"
            size = 13 if kind == "heading" else 11.5
            layout.skip(14 if kind == "heading" else 8)
            layout.need(size * 1.4 + 3 * leading)  # keep a heading with its first lines
            layout.paragraph(payload, BOLD, size, leading=size * 1.5, justify=False, hyphenate=False,
                             align="center" if in_abstract else "left")
            layout.skip(3)
            after_heading = True
        elif kind == "paragraph":
            if in_abstract:
                layout.paragraph(payload, ROMAN, body_size - 1, leading=leading - 1.5, indent=28)
            else:
                layout.paragraph(payload, ROMAN, body_size, leading=leading, first_indent=0 if after_heading else 16)
            after_heading = False
        elif kind == "table":
            layout.skip(10)
            layout.table(payload)
            layout.skip(12)
            after_heading = True
        elif kind == "references":
            for ref in payload:
                layout.paragraph(ref, ROMAN, body_size - 1.5, leading=(body_size - 1.5) * 1.35, hanging=20,
                                 justify=False, hyphenate=False)
                layout.skip(3)
    return layout.render(info={"Title": title, "Author": header[0] if header else ""}), len(layout.pages)
