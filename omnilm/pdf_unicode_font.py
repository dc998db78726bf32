"""Text the standard Latin fonts cannot show (Korean, CJK, Greek, Cyrillic...) as a real
PDF font: a Type0 font with Identity-H encoding whose CIDs are the Unicode code points.

No glyphs are embedded and there is one weight (a bold run is shown regular): this
is for a text layer, what stage 10 reads, not for print; poppler's renderer draws no
glyph for such a font. The ToUnicode CMap written here is what lets extractors
(poppler's pdftotext, pdfminer under pdfplumber) give back the exact characters:
without it an Identity font means nothing and pdfminer prints (cid:N) placeholders."""
import unicodedata
import zlib

KEY = "U1"                   # its name in a page's font resources, beside F1/F2
BASE_FONT = "OmniLM-Unicode"
WIDE = 1000                  # Hangul, CJK ideographs, full-width forms: one em
NARROW = 500                 # other letters without a Latin width


def can_show(text):
    """True when every character fits a two-byte code (the Basic Multilingual Plane)
    and is not a control character or a lone surrogate."""
    return all(ord(ch) <= 0xFFFF and unicodedata.category(ch) not in ("Cc", "Cs") for ch in text)


def char_width(ch, latin):
    """Advance width in 1/1000 em; `latin` maps the Roman font's codes to widths, so
    digits, spaces and ASCII in a Korean line keep their Times widths."""
    if unicodedata.east_asian_width(ch) in ("W", "F"):
        return WIDE
    return latin.get(ord(ch), NARROW) if ord(ch) < 127 else NARROW


def width(text, latin):
    return sum(char_width(ch, latin) for ch in text)


def _num(x):
    s = f"{x:.3f}".rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def text_op(x, y, text, size, word_spacing=0.0):
    """A whole BT..ET text object showing `text` at (x, y) in this font (Tw reset: it
    outlives ET, and the Latin runs set their own)."""
    return b"BT /%s %s Tf 0 Tw %s %s Td %s ET" % (KEY.encode(), _num(size).encode(), _num(x).encode(),
                                                  _num(y).encode(), show(text, size, word_spacing))


def show(text, size, word_spacing=0.0):
    """The text-showing operator for `text` in this font. Tw only widens single-byte
    spaces, so justification is done by a TJ shift after each space instead."""
    if not can_show(text):
        bad = next(ch for ch in text if not can_show(ch))
        raise ValueError(f"character {bad!r} (U+{ord(bad):04X}) cannot be written: only the Basic Multilingual "
                         f"Plane, without control characters, is supported")
    if not word_spacing:
        return b"<%s> Tj" % text.encode("utf-16-be").hex().upper().encode()
    shift = _num(-word_spacing * 1000 / size)
    parts = [b"<%s>" % word.encode("utf-16-be").hex().upper().encode() for word in text.split(" ")]
    space = b"<0020> %s " % shift.encode()
    return b"[" + space.join(parts) + b"] TJ"


def to_unicode_cmap(chars):
    """A ToUnicode CMap mapping each used two-byte code to the same code point."""
    codes = sorted({ord(ch) for ch in chars})
    lines = [b"/CIDInit /ProcSet findresource begin", b"12 dict begin", b"begincmap",
             b"/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def",
             b"/CMapName /Adobe-Identity-UCS def", b"/CMapType 2 def",
             b"1 begincodespacerange", b"<0000> <FFFF>", b"endcodespacerange"]
    for start in range(0, len(codes), 100):  # at most 100 entries a block, as the CMap syntax requires
        block = codes[start:start + 100]
        lines.append(b"%d beginbfchar" % len(block))
        lines += [b"<%04X> <%04X>" % (c, c) for c in block]
        lines.append(b"endbfchar")
    lines += [b"endcmap", b"CMapName currentdict /CIDInit /ProcSet findresource defineresource pop",
              b"end", b"end"]
    return b"\n".join(lines)


def add_font(add, chars, latin, compress=True):
    """Adds the font's objects through `add(body) -> object number`; returns the Type0
    font's number."""
    codes = sorted({ord(ch) for ch in chars})
    widths = b" ".join(b"%d [%d]" % (c, char_width(chr(c), latin)) for c in codes)
    descriptor = add(b"<< /Type /FontDescriptor /FontName /%s /Flags 4 /FontBBox [0 -200 1000 900] "
                     b"/ItalicAngle 0 /Ascent 880 /Descent -120 /CapHeight 700 /StemV 80 >>" % BASE_FONT.encode())
    cid_font = add(b"<< /Type /Font /Subtype /CIDFontType2 /BaseFont /%s "
                   b"/CIDSystemInfo << /Registry (Adobe) /Ordering (Identity) /Supplement 0 >> "
                   b"/FontDescriptor %d 0 R /CIDToGIDMap /Identity /DW %d /W [%s] >>"
                   % (BASE_FONT.encode(), descriptor, WIDE, widths))
    data = zlib.compress(to_unicode_cmap(chars), 9) if compress else to_unicode_cmap(chars)
    cmap = add(b"<< /Length %d%s >>\nstream\n%s\nendstream"
               % (len(data), b" /Filter /FlateDecode" if compress else b"", data))
    return add(b"<< /Type /Font /Subtype /Type0 /BaseFont /%s /Encoding /Identity-H "
               b"/DescendantFonts [%d 0 R] /ToUnicode %d 0 R >>" % (BASE_FONT.encode(), cid_font, cmap))


def info_string(text):
    """A document-information string (title, author) in UTF-16 with its byte-order mark."""
    return b"<FEFF%s>" % text.encode("utf-16-be").hex().upper().encode()
