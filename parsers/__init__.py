"""Parsers: HL7 v2 tokenizing, typed views, response encoding and MLLP framing.

Pure. The only package that imports python-hl7 or hl7apy; must not import any
other Cairn package.
"""

__all__: list[str] = []
