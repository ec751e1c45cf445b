"""Limits of the inventory's domain, named once."""

PORT_MIN = 1
PORT_MAX = 65535

# Most comma-separated items in one port field.
MAX_PORT_ITEMS = 1_000

# Name of the zone every host and target belongs to until an admin makes more.
DEFAULT_ZONE = "default"

# Longest text kept from a scanned host (hostname, product, version): nmap
# passes on whatever a remote service announces.
HOSTNAME_MAX_LENGTH = 255
SERVICE_TEXT_MAX_LENGTH = 255
