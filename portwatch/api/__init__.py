"""The REST API (issue 7): ``base`` holds what every endpoint shares, ``urls`` mounts them."""
