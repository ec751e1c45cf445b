"""Limits of the scan engine, named once."""

# Most addresses one target may expand to.
MAX_TARGET_ADDRESSES = 65_536
# Most items (addresses, networks, ranges, hostnames) in one target field.
MAX_TARGET_ITEMS = 1_000
# Addresses per chunk: one chunk is one nmap process and one Celery task.
DEFAULT_CHUNK_SIZE = 256
# NSE scripts a profile may run: read-only information gathering ("safe"
# category). Anything else is refused when a profile is saved and again when
# nmap options are built.
NSE_SCRIPT_ALLOWLIST = {
    "banner": "Service banners",
    "http-title": "Titles of web pages",
    "http-server-header": "HTTP Server headers",
    "ssl-cert": "TLS certificate subject and validity",
    "ssh-hostkey": "SSH host key fingerprints",
}
# Longest script output kept per script and port.
SCRIPT_OUTPUT_MAX = 2_000
# Longest PEM certificate ssl-cert's structured output may carry (characters):
# a 4096-bit RSA certificate with many SANs is about 3 KB; anything longer is
# not read (the port simply has no certificate recorded).
CERTIFICATE_PEM_MAX = 16_384
# Largest nmap XML file an import accepts (bytes).
DEFAULT_IMPORT_MAX_BYTES = 100 * 1024 * 1024
# Longest error text kept from nmap's stderr.
ERROR_TEXT_MAX = 4_000
# One address listed more than once in a scan file (scans.merge): the most
# hostnames, script outputs per port, and summary ranges its merge keeps.
MERGED_HOSTNAMES_MAX = 64
MERGED_SCRIPTS_MAX = 32
MERGED_SUMMARY_RANGES_MAX = 4_096
# Fast discovery (scans.discovery): a profile's masscan rate in packets per
# second when it names none. Low enough not to flood a modest link; admins
# raise it per profile, up to MASSCAN_MAX_RATE (a setting).
MASSCAN_DEFAULT_RATE = 1_000
# Probes of the sweep's host discovery, beside ICMP echo: a SYN to each of
# these ports, any answer (SYN-ACK or RST) counting as "alive", as nmap's
# default discovery counts its SYN to 443 and ACK to 80.
MASSCAN_DISCOVERY_PORTS = "80,443"
