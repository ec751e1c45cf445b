"""Limits of the certificates app, named once."""

from scans.constants import CERTIFICATE_PEM_MAX

# Longest PEM parsed (the reader keeps no longer one anyway).
PEM_MAX = CERTIFICATE_PEM_MAX
# Longest subject or issuer (RFC 4514 text) and serial kept.
NAME_MAX = 500
# Longest subject alternative name kept, and most of them.
SAN_MAX = 255
SANS_MAX = 100
# An RSA key shorter than this is weak (NIST SP 800-131A).
WEAK_RSA_BITS = 2048
# Signatures over these hashes are weak: collisions are practical.
WEAK_SIGNATURE_HASHES = ("sha1", "md5")
# Rows a page or an API page shows.
PAGE_SIZE = 50
